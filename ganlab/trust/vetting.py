"""Vetting: the whole composed config, Hydra's own `hydra.*` part included, is checked before
Hydra acts on any of it.

Hydra acts on its part of the config as soon as it is composed: it instantiates `hydra.callbacks`,
configures logging from `hydra.job_logging` / `hydra.hydra_logging` (handlers, factories, files),
creates and writes output folders, and builds the sweeper and launcher. So the check cannot wait
for the job: every composition (the primary one, each sweep job's, `--cfg`, `--help`) goes through
`VettingConfigLoader.load_configuration`, which returns only a config it has vetted, and Hydra
runs exactly that object.

What may set what is decided by where a value came from, not by scanning files:
* the whole `hydra` node must equal the one ganlab's own configs plus the typed command line
  produce, key by key, `overrides` included. The vetting composes a second, *trusted* config from
  those alone (ganlab's configs, Hydra's and its plugins', and only the hydra and allowed_targets
  overrides the user typed) and refuses any difference, naming the key and where it came from.
  Presets, `--config-dir` and `hydra.searchpath` folders and files pulled in by a `defaults:`
  list can therefore not widen the allow-list nor configure Hydra, whatever YAML tricks they use.
  Nothing is ever read back from a run folder as overrides: a run's stored settings are data
  (`stored.py`).
* settings that reach outside the run (`paths`, `stored.DATASET_TYPED_ONLY`: where data and
  caches live, downloads) are set only by ganlab's configs and the command line.
* a defaults entry may not leave the config search path (`..`).
* every `_target_` of the resolved job config is in the buildable set (`build.check_targets`),
  Hydra callbacks included; `--experimental-rerun` (it unpickles a file) is refused.
* the input is bounded before it is expanded (`bounds.py`): YAML aliases, interpolations.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from ganlab.trust.bounds import TooLarge, check_config_work, install_yaml_bound
from ganlab.trust.build import allowed_prefixes, check_targets, resolve_target, to_plain
from ganlab.errors import ConfigError, Refused
from ganlab.trust.stored import DATASET_TYPED_ONLY

# Parts of `hydra` that Hydra sets itself at composition, overwriting whatever a file said (the
# overrides are compared with the command line separately; the search path with what was typed).
# runtime.choices is only updated by Hydra: it names the options picked (shown, never acted on).
COMPUTED = {("runtime", "choices"), ("runtime", "config_sources"), ("runtime", "version"), ("runtime", "version_base"),
            ("runtime", "cwd"), ("overrides",), ("job", "override_dirname"), ("job", "config_name"), ("searchpath",)}
# Where Hydra's own output subfolder would go: ganlab writes `.hydra/` itself once a command is accepted.
OUTPUT_SUBDIR = None


@dataclass
class Origins:
    """Where the overrides of this command came from."""

    primary_is_users: bool = False  # --config-name / --config-path: the user named their own primary config
    runs_jobs: bool = True  # False for --cfg, --help, --info: nothing is recorded


_ORIGINS = Origins()
# For each run or sweep folder this command resolved: the folders (it and its parents) that did
# not exist before, innermost first. A refused command removes only those, and only when empty.
MISSING: dict[Path, list[Path]] = {}


def set_origins(origins: Origins) -> None:
    global _ORIGINS
    _ORIGINS = origins
    MISSING.clear()


class VettingConfigLoader(ConfigLoaderImpl):
    """Hydra's config loader, returning only vetted configs (see the module docstring)."""

    def __init__(self, config_search_path) -> None:
        super().__init__(config_search_path=config_search_path)
        self.origins = copy.deepcopy(_ORIGINS)  # travels with the loader into a launcher's workers

    def load_configuration(self, config_name, overrides, run_mode, from_shell=True,
                           validate_sweep_overrides=True) -> DictConfig:
        try:
            cfg = super().load_configuration(config_name=config_name, overrides=overrides, run_mode=run_mode,
                                             from_shell=from_shell, validate_sweep_overrides=validate_sweep_overrides)
        except TooLarge as exc:
            raise Refused(f"Refused a config file: {exc}") from None
        except yaml.constructor.ConstructorError as exc:  # e.g. a !!python/... tag: configs are plain data
            text = " ".join(str(exc).split())
            raise Refused(f"Refused a config file that is not plain YAML data ({text}). ganlab reads configs as plain "
                          "values: remove the tag (!!python/... and other tags are never honoured).") from None
        except yaml.YAMLError as exc:
            text = " ".join(str(exc).split())
            raise Refused(f"A config file is not valid YAML ({text}). Fix the file at the line and column named.") \
                from None
        try:
            check_config_work(cfg)
            trusted = self._trusted(config_name, list(overrides), run_mode)
            vet(cfg, trusted, list(overrides))
        except ConfigError as exc:
            raise Refused(str(exc)) from None
        _pin_output_folders(cfg, run_mode)
        if run_mode == RunMode.MULTIRUN:
            planned = [self.load_sweep_config(cfg, job) for job in sweep_jobs(cfg)]  # all vetted before any starts
            if self.origins.runs_jobs and "MULTIRUN" in str(cfg.hydra.get("mode")):  # not Hydra's mode probe
                _record_plan(cfg, planned)
                _make_study_folder(cfg)
        return cfg

    def _trusted(self, config_name, overrides: list[str], run_mode) -> DictConfig:
        """The config composed from trusted sources only: ganlab's (or the user's named) primary
        config, Hydra's and its plugins' own configs, and the typed hydra / allowed_targets overrides."""
        search_path = copy.deepcopy(self.config_search_path)
        if not self.origins.primary_is_users:
            search_path.config_search_path = [p for p in search_path.config_search_path
                                              if p.provider != "command-line"]
        kept = [o for o in overrides if _is_trusted_setting(o)]
        try:
            return ConfigLoaderImpl(config_search_path=search_path).load_configuration(
                config_name=config_name, overrides=kept, run_mode=run_mode, validate_sweep_overrides=False)
        except Exception as exc:  # noqa: BLE001 - Hydra raises several kinds for a missing option
            choices = [o for o in kept if "/" in o.split("=", 1)[0]] or kept  # the options it could not find
            raise ConfigError(f"Refused {', '.join(choices)}: {str(exc).splitlines()[0]} Hydra's own settings (hydra.*, "
                              "hydra/... options) may only come from Hydra, its installed plugins and ganlab's configs, "
                              "not from a --config-dir or hydra.searchpath folder.") from None


    def _load_single_config(self, default, repo):
        path = str(default.config_path or "")
        if ".." in path.replace("\\", "/").split("/"):
            raise Refused(f"Refused the defaults entry {path!r}{_parent_of(default)}: a group path may not leave the "
                          "config search path (..). Put the file in a config folder and add that folder with "
                          "--config-dir on the command line.")
        return super()._load_single_config(default, repo)


def _parent_of(default) -> str:
    parent = getattr(default, "parent_base_dir", None) or getattr(default, "parent_package", None)
    return f" (in a file under {parent})" if parent else ""


def _is_trusted_setting(override: str) -> bool:
    """Overrides the trusted composition takes: Hydra's settings and allowed_targets (the rest does
    not change them), not hydra.searchpath (it would let untrusted folders in)."""
    key = override.split("=", 1)[0].lstrip("+~")
    return (key.startswith(("hydra.", "hydra/")) and key != "hydra.searchpath") or key == "allowed_targets"


def vet(cfg: DictConfig, trusted: DictConfig, overrides: list[str]) -> None:
    """Refuse what an untrusted source set in `cfg`; check every `_target_` of the job config.
    `overrides`: the command line this composition was given (what the user typed, plus the
    folders and job names ganlab adds)."""
    where = _sources(cfg, trusted)
    for path in _differences(_settings(cfg.hydra), _settings(trusted.hydra)):
        raise ConfigError(f"Refused hydra.{path}: it was set by {where}, not by you. Hydra acts on hydra.* "
                          "(callbacks, logging, output folders, search path, sweeper, launcher) before any job starts, "
                          "so only what you type and ganlab's own configs may set it. Remove it from there, or type "
                          "it on the command line if you trust it.")
    _check_overrides(cfg, overrides, where)
    typed_path = _typed_value(cfg, "hydra.searchpath")
    if OmegaConf.to_container(cfg.hydra.searchpath) != (typed_path if typed_path is not None else []):
        raise ConfigError(f"Refused hydra.searchpath={OmegaConf.to_container(cfg.hydra.searchpath)}: it was set by "
                          f"{where}. Only you add config folders, on the command line.")
    if cfg.hydra.output_subdir != OUTPUT_SUBDIR:
        raise ConfigError(f"hydra.output_subdir={cfg.hydra.output_subdir} cannot be changed: ganlab writes the run's "
                          "composed config into <run>/.hydra/ itself, once the command is accepted (a refused command "
                          "writes nothing). Drop the override.")
    mine, theirs = cfg.get("allowed_targets"), trusted.get("allowed_targets")
    if to_plain(mine) != to_plain(theirs):
        raise ConfigError(f"Refused allowed_targets={to_plain(mine)}: it was set by {where}, and only you may widen "
                          "what configs can build. Remove it from there and, if you trust that module, pass "
                          "allowed_targets=[...] on the command line.")
    _check_typed_only(cfg, trusted, overrides, where)
    prefixes = allowed_prefixes(to_plain(theirs) or [])
    job = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
    check_targets(job, prefixes)
    for name, callback in (cfg.hydra.get("callbacks") or {}).items():
        resolve_target(callback.get("_target_"), f"hydra.callbacks.{name}._target_", prefixes)


def _check_overrides(cfg: DictConfig, overrides: list[str], where: str) -> None:
    """`hydra.overrides` must be exactly the command line: Hydra appends to whatever a file put there."""
    parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("-")])
    expected = {"hydra": [o.input_line for o in parsed if o.is_hydra_override()],
                "task": [o.input_line for o in parsed if not o.is_hydra_override()]}
    for part, lines in expected.items():
        found = OmegaConf.to_container(cfg.hydra.overrides[part], resolve=False)
        if found != lines:
            extra = [o for o in found if o not in lines] or found
            raise ConfigError(f"Refused hydra.overrides.{part} = {extra}: it was set by {where}, not typed by you. The "
                              "overrides a run records are the command line it was started with. Remove it from there.")


def _check_typed_only(cfg: DictConfig, trusted: DictConfig, overrides: list[str], where: str) -> None:
    """Where data and caches live, and whether to download, come from ganlab's configs and what
    the user typed: a preset or a shared config folder may not point them elsewhere."""
    typed = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
    if OmegaConf.to_container(cfg.get("paths"), resolve=False) != OmegaConf.to_container(trusted.get("paths"),
                                                                                       resolve=False) \
            and not any(k == "paths" or k.startswith("paths.") for k in typed):
        raise ConfigError(f"Refused paths={OmegaConf.to_container(cfg.get('paths'), resolve=False)}: it was set by "
                          f"{where}. Where data and caches live is yours to say: type paths.data=... (or set "
                          "GANLAB_DATA), not a shared file.")
    dataset = cfg.get("dataset")
    for name, default in DATASET_TYPED_ONLY.items():
        key = f"dataset.{name}"
        if not isinstance(dataset, DictConfig) or name not in dataset or key in typed:
            continue
        value = dataset._get_node(name)._value()
        if value != default:
            raise ConfigError(f"Refused {key}={value!r}: it was set by {where}. "
                              + ("Downloads start only when you type dataset.download=true."
                                 if name == "download" else
                                 "Where a cache is written is yours to say: type dataset.cache_dir=... if you want it "
                                 "elsewhere."))


def _typed_value(cfg: DictConfig, key: str) -> Any:
    """The value the user typed for a hydra key (None: not typed)."""
    for line in reversed(OmegaConf.to_container(cfg.hydra.overrides.hydra, resolve=False)):  # lines, not values
        if line.split("=", 1)[0].lstrip("+~") == key:
            return OverridesParser.create().parse_override(line).value()
    return None


def _sources(cfg: DictConfig, trusted: DictConfig) -> str:
    """Names the untrusted sources of this composition, for the messages."""
    from ganlab.trust.paths import config_dir

    theirs = trusted.hydra.runtime.choices
    picked = [f"{group}={option}" for group, option in cfg.hydra.runtime.choices.items()
              if option is not None and theirs.get(group) != option
              and not (config_dir() / group / f"{option}.yaml").is_file()]  # ganlab's own options set no hydra.*
    if picked:
        return f"the config option(s) {', '.join(picked)} (or a file they include)"
    return "a config file you did not name"


def _settings(node: DictConfig) -> dict[str, Any]:
    plain = OmegaConf.to_container(node, resolve=False)
    for path in COMPUTED:
        parent = plain
        for key in path[:-1]:
            parent = parent.get(key, {})
        parent.pop(path[-1], None)
    return plain


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            found += _differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        return found
    return [] if a == b else [path or "(root)"]


def _pin_output_folders(cfg: DictConfig, run_mode) -> None:
    """Resolve the run (or sweep) folder once and remember whether it existed, so that a refused
    command removes only folders this process created."""
    key = "run" if run_mode == RunMode.RUN else "sweep"
    try:
        folder = str(cfg.hydra[key].dir)
    except Exception:  # noqa: BLE001 - a folder made of job values resolves later (sweep jobs)
        return
    with open_dict(cfg.hydra):
        cfg.hydra[key].dir = folder
    path = Path(folder).absolute()
    if path not in MISSING:
        MISSING[path] = [p for p in (path, *path.parents) if not p.exists()]
    _check_creatable(path, f"hydra.{key}.dir")


def _check_creatable(path: Path, key: str) -> None:
    """The folder Hydra is about to create must be creatable: its nearest existing folder must take
    a new entry (/proc, a read-only mount or a file in the way would otherwise fail inside Hydra)."""
    import tempfile

    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise Refused(f"{key}={path} cannot be created: {existing} is a file, not a folder. Pick another folder.")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise Refused(f"{key}={path} cannot be created: {existing} does not take new files ({exc.strerror or exc}). "
                      "Pick a folder you can write, e.g. hydra.run.dir=outputs/myrun.") from None


def _record_plan(cfg: DictConfig, planned: list[DictConfig]) -> None:
    """Every job vetted: the sweep's plan (each job's folder and resolved config, as data) goes into
    its folder's sweep.json, what resuming the sweep walks (`sweeps.py`)."""
    from ganlab.records import sweeps

    if not planned:
        return
    jobs = []
    try:
        for num, job in enumerate(planned):
            with open_dict(job.hydra.job):
                job.hydra.job.num = num
            jobs.append({"num": num, "dir": str(job.hydra.sweep.subdir), "overrides": list(job.hydra.overrides.task),
                         "config": to_plain(OmegaConf.masked_copy(job, [k for k in job.keys() if k != "hydra"]))})
        sweep_dir = Path(str(cfg.hydra.sweep.dir))
    except Exception:  # noqa: BLE001 - a value that resolves only inside a job: the sweep runs without a record
        return
    sweeps.write_plan(sweep_dir, sweeps.plan(jobs))


def _make_study_folder(cfg: DictConfig) -> None:
    """An accepted Optuna search keeps its study in its sweep folder: SQLite needs the folder first."""
    storage = str(cfg.hydra.sweeper.get("storage") or "")
    if storage.startswith("sqlite:///"):
        Path(storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


def sweep_jobs(cfg: DictConfig) -> list[list[str]]:
    """The override lists of a basic sweep's jobs (other sweepers choose theirs as they go: each
    job is then vetted when the launcher composes it)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if "BasicSweeper" not in str(cfg.hydra.sweeper.get("_target_", "")):
        return []
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(params + list(cfg.hydra.overrides.task))
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def created_by_this_process(folder: Path) -> list[Path]:
    """`folder` and its parents that this command created, innermost first: the run folder's
    missing chain, or a sweep job's folder inside a sweep folder this command created."""
    folder = folder.absolute()
    if folder in MISSING:
        return MISSING[folder]
    for root, missing in MISSING.items():
        if root in folder.parents and root in missing:
            return [folder]
    return []


@contextlib.contextmanager
def installed():
    """Hydra composes through `VettingConfigLoader` while this is active (ganlab train's Hydra app)."""
    import hydra._internal.hydra as hydra_app

    install_yaml_bound()
    saved = hydra_app.ConfigLoaderImpl
    hydra_app.ConfigLoaderImpl = VettingConfigLoader
    try:
        yield
    finally:
        hydra_app.ConfigLoaderImpl = saved
