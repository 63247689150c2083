"""A run's stored settings, read back as data: never a command line.

`resume=true` continues a run from the settings it stored (its newest intact checkpoint's
resolved config, else its `.hydra/config.yaml`), read as a plain dict: no stored string is ever
parsed as an override or a Hydra flag, so nothing in a shared run folder can name a config
folder, a primary config, a rerun pickle or a Hydra option. What the user typed now is merged on
top: the keys the typed overrides change (compared with a composition of the overrides the run
was already started with) replace the stored ones. The result then passes the same checks as a
typed config (the registry, the known keys, the values).

Some settings never come from a run folder: who may widen the buildable set, where data and
caches live, whether to download. They take the value composed now from ganlab's configs and
the command line (`TYPED_ONLY`).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from ganlab.errors import ConfigError

log = logging.getLogger("ganlab")

# Keys a stored config may not set: they always take the value composed now.
TYPED_ONLY = ("allowed_targets", "resume", "resume_from", "paths")
# Data set keys that reach outside the run (downloads, cache folders), with the value every ganlab
# config gives them (unresolved): only the command line sets another. The vetting refuses a preset
# that does; resume puts them back to these, unless typed now.
DATASET_TYPED_ONLY = {"download": False, "cache_dir": "${paths.data}/.cache"}


def read(run_dir: Path) -> tuple[dict[str, Any], list[str], dict[str, str]] | None:
    """(the run's stored resolved config, the overrides it records for people to read, the config
    groups it chose), or None when the folder holds neither a checkpoint nor `.hydra/config.yaml`."""
    from ganlab.records import checkpoint
    from ganlab.records.rundir import read_run_id

    found = checkpoint.load_latest(Path(run_dir) / "checkpoints", run_id=read_run_id(run_dir))
    if found is not None:
        state, path = found
        saved = checkpoint.Saved(state)
        config, overrides, choices = saved.config, saved.overrides, saved.choices
        source = path
    else:
        source = Path(run_dir) / ".hydra" / "config.yaml"
        if not _is_file(source):
            return None
        config = read_yaml(source)
        overrides = read_yaml(source.with_name("overrides.yaml")) if _is_file(source.with_name("overrides.yaml")) \
            else []
        choices = None
        if not isinstance(config, dict):
            raise ConfigError(f"{source} does not hold a run's settings (its config is {type(config).__name__}, not a "
                              "mapping). Start a new run, or point hydra.run.dir at another run.")
        where = checkpoint.interpolation_in(config)  # (a checkpoint's config is checked when it is loaded)
        if where:  # a stored config is resolved: a ${...} would be evaluated (an environment variable, a resolver)
            raise ConfigError(f"{source} holds an interpolation at {where}; a run's stored settings are plain values "
                              "and are never resolved. Type that setting on the command line, or start a new run.")
    shown = [o for o in overrides if isinstance(o, str)] if isinstance(overrides, list) else []
    chosen = {str(k): str(v) for k, v in choices.items() if isinstance(v, str)} if isinstance(choices, dict) else {}
    return config, shown, chosen


def _is_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def read_yaml(path: Path) -> Any:
    """A YAML file of a run folder as plain data (bounded, no tags, no FIFOs)."""
    import yaml

    from ganlab.trust.bounds import BoundedLoader, TooLarge
    from ganlab.records.safe_files import read_text

    loader = BoundedLoader(read_text(path))
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except TooLarge as exc:  # it names the file itself
        raise ConfigError(f"{exc} Remove that file, or start a new run.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} could not be read as YAML data ({' '.join(str(exc).split())}). Remove that file, "
                          "or start a new run.") from None
    finally:
        loader.dispose()


def merged(stored: dict[str, Any], now: dict[str, Any], baseline: dict[str, Any], typed: list[str]) -> dict[str, Any]:
    """The stored config with what the user typed now on top.

    `now`: the config composed from the typed overrides; `baseline`: composed from those typed
    overrides the run was already started with. A key whose value differs between the two was
    changed by what the user typed now, and takes its value from `now`."""
    result = copy.deepcopy(stored)
    for path, value in _changes(now, baseline):
        _set(result, path, copy.deepcopy(value))
    for key in TYPED_ONLY:
        if key in now:
            result[key] = copy.deepcopy(now[key])
        else:
            result.pop(key, None)

    if isinstance(result.get("dataset"), dict):
        typed_keys = {override_key(o) for o in typed}
        result["dataset"] = stored_dataset(result["dataset"], str((now.get("paths") or {}).get("data", "data")),
                                           {k: v for k, v in (now.get("dataset") or {}).items()
                                            if f"dataset.{k}" in typed_keys})
    return result


def stored_dataset(dataset: dict[str, Any], data_root: str, typed: dict[str, Any] = (), verb: str = "resume") \
        -> dict[str, Any]:
    """A stored `dataset` node, safe to build here: its keys that reach outside the run (downloads,
    cache folders) take ganlab's values under `data_root`, unless `typed` now. Resume and eval
    build a stored data set through this."""
    dataset, typed = dict(dataset), dict(typed)
    for key, unresolved in DATASET_TYPED_ONLY.items():
        if key not in dataset:
            continue
        wanted = typed[key] if key in typed else \
            unresolved.replace("${paths.data}", data_root) if isinstance(unresolved, str) else unresolved
        if dataset[key] != wanted and key not in typed:
            log.info("%s: dataset.%s=%r from the stored settings is not used (%r): type it to set it", verb, key,
                     dataset[key], wanted)
        dataset[key] = wanted
    return dataset


_GONE = object()


def _changes(now: Any, baseline: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """(key path, value now) for each difference; a node whose `_target_` changed is replaced whole."""
    if isinstance(now, dict) and isinstance(baseline, dict) and now.get("_target_") == baseline.get("_target_"):
        found = []
        for key in [*now, *(k for k in baseline if k not in now)]:
            found += _changes(now.get(key, _GONE), baseline.get(key, _GONE), (*path, key))
        return found
    return [] if now == baseline else [(path, now)]


def _set(tree: dict[str, Any], path: tuple, value: Any) -> None:
    for key in path[:-1]:
        child = tree.get(key)
        if not isinstance(child, dict):
            child = tree[key] = {}
        tree = child
    if value is _GONE:
        tree.pop(path[-1], None)
    else:
        tree[path[-1]] = value


# Containers whose keys this version knows from its own configs (the others hold networks by name).
KNOWN_FROM_NOW = ("schedule", "metrics", "runtime", "paths")


def drop_unknown(config: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """A run stored by another ganlab version may hold keys this one does not know: each is dropped
    with a warning naming it (the run continues), instead of a refusal nothing typed could lift."""
    from ganlab.trust.build import HYDRA_KEYS, READ_BY_GANLAB, accepted_keywords
    from ganlab.trust.checks import TOP_LEVEL
    from ganlab.trust.registry import lookup

    def drop(node: dict[str, Any], key: str, where: str) -> None:
        log.warning("resume: the stored setting %s is not known to this ganlab version; it is dropped", where)
        node.pop(key)

    for key in [k for k in config if k not in TOP_LEVEL]:
        drop(config, key, key)
    for group in KNOWN_FROM_NOW:
        if isinstance(config.get(group), dict) and isinstance(now.get(group), dict):
            for key in [k for k in config[group] if k not in now[group]]:
                drop(config[group], key, f"{group}.{key}")

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            found = lookup(node["_target_"]) if isinstance(node.get("_target_"), str) else None
            accepted = accepted_keywords(found[1]) if found else None
            for key in list(node):
                where = f"{path}.{key}" if path else str(key)
                if accepted is not None and key not in accepted | HYDRA_KEYS | READ_BY_GANLAB.get(path, set()):
                    drop(node, key, where)
                else:
                    walk(node[key], where)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    walk(config, "")
    return config


# --- the command line, read as data ------------------------------------------------------------------
def override_key(override: str) -> str:
    """The key (or group) an override sets: `+a.b=1` -> `a.b`."""
    return override.split("=", 1)[0].lstrip("+~")


def typed_settings(overrides: list[str]) -> dict[str, str]:
    """{key: value} of the key=value overrides typed (flags such as --cfg left out)."""
    return {override_key(o): o.split("=", 1)[1] for o in overrides if "=" in o and not o.startswith("-")}


def setting_overrides(overrides: list[str]) -> list[str]:
    """The key=value overrides that set up the run: not Hydra's own settings, not flags."""
    return [o for o in overrides if "=" in o and not o.startswith("-") and not override_key(o).startswith("hydra")]


def override_values(overrides: list[str]) -> dict[str, str]:
    """The run's setting overrides as {key: value} (what HParams show)."""
    return {override_key(o): o.split("=", 1)[1] for o in setting_overrides(overrides)}
