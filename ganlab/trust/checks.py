"""Value checks on the composed config, run before anything is built.

Rules go by key name, so a size or rate in any group (and in groups added later) is covered:
a bad value stops the run with the key, the value and the fix, not a traceback from torch.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ganlab.errors import ConfigError
from ganlab.records.checkpoint import Saved

log = logging.getLogger("ganlab")

# key name -> (lowest allowed, whether the lowest is allowed, an example of a good value)
# (A list's entries go by the list's name: model.generator.hidden[1] is a `hidden` size. The
# networks' constructors trust these checks and do not repeat them.)
POSITIVE = {"crop": 140, "collapse_patience": 10, "batch_size": 64, "lr": 2e-4, "steps": 2000, "epochs": 10, "resolution": 32, "latent_dim": 100,
            "width": 64, "hidden": 256, "widths": 64, "outputs": 1, "pack": 1, "latent_size": 4,
            "n_critic": 1, "g_steps": 1, "log_every": 25, "ckpt_every": 250, "sample_count": 64}
NON_NEGATIVE = {"sample_every": 250, "snapshot_every": 1000, "keep_last": 3, "weight_decay": 0.0, "num_workers": 2, "workers": 2,
                "memory_limit_gb": 4, "eval_every": 500}
FRACTIONS = {"ema_decay": 0.999, "dropout": 0.3}  # in [0, 1)
INTEGERS = {"crop", "collapse_patience", "workers", "eval_every", "batch_size", "steps", "resolution", "latent_dim", "width", "hidden", "widths", "outputs", "pack",
            "latent_size", "n_critic", "g_steps", "log_every",
            "sample_every", "ckpt_every", "sample_count", "snapshot_every", "keep_last", "num_workers"}


def check_values(cfg: DictConfig) -> None:
    """Raise ConfigError for the first out-of-range size, rate or interval anywhere in `cfg`."""
    for path, value in _leaves(cfg, ""):
        name = re.sub(r"\[\d+\]$", "", path.rsplit(".", 1)[-1])
        if value is None or name not in POSITIVE | NON_NEGATIVE | FRACTIONS:
            continue
        example = (POSITIVE | NON_NEGATIVE | FRACTIONS)[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (name in INTEGERS and not isinstance(value, int)):
            kind = "an integer" if name in INTEGERS else "a number"
            raise ConfigError(f"{path}={value!r} must be {kind}; set e.g. {path}={example}.")
        if name in POSITIVE and value <= 0:
            raise ConfigError(f"{path}={value!r} must be positive; set e.g. {path}={example}.")
        if name in NON_NEGATIVE and value < 0:
            raise ConfigError(f"{path}={value!r} must be zero or more; set e.g. {path}={example}.")
        if name in FRACTIONS and not 0 <= value < 1:
            raise ConfigError(f"{path}={value!r} must be in [0, 1); set e.g. {path}={example} (0 turns it off).")


def _leaves(node: Any, path: str):
    """(dotted key, resolved value) pairs; a plain `${other.key}` reference is reported at its source."""
    if isinstance(node, DictConfig):
        for key in node.keys():
            if OmegaConf.is_missing(node, key):
                child = f"{path}.{key}" if path else str(key)
                raise ConfigError(f"{child} is required and has no value; set it on the command line, "
                                  f"e.g. {child}=<value> (a path, for a file or folder).")
            if not _is_reference(node, key):
                yield from _leaves(node[key], f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            if not _is_reference(node, i):
                yield from _leaves(node[i], f"{path}[{i}]")
    else:
        yield path, node


def _is_reference(container: DictConfig | ListConfig, key: Any) -> bool:
    raw = container._get_node(key)._value()
    return isinstance(raw, str) and re.fullmatch(r"\$\{[^:{}]+\}", raw) is not None




TOP_LEVEL = {"seed", "name", "device", "resume", "resume_from", "allowed_targets", "progress", "metrics", "paths", "dataset", "model", "loss",
             "optimizer", "schedule", "runtime", "augment"}
KNOWN_CHILDREN = {
    "loss": {"adversarial", "penalties", "constraints", "gamma"},
    "metrics": {"classifier", "names", "n", "best", "inception_weights"},
}


def check_top_level(cfg: DictConfig) -> None:
    """The top-level switches have one type each; a wrong one is named before anything reads it."""
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed={seed!r} must be an integer; set e.g. seed=0.")
    progress = cfg.get("progress", True)
    if not isinstance(progress, bool):
        raise ConfigError(f"progress={progress!r} must be true or false; set progress=false to print one line per "
                          "log step instead of the bar.")
    extra = cfg.get("allowed_targets") or []
    if not isinstance(extra, (list, ListConfig)) or not all(isinstance(p, str) and p for p in extra):
        raise ConfigError(f"allowed_targets={extra!r} must be a list of module names, e.g. allowed_targets=[mypkg].")


def check_known_keys(cfg: DictConfig, schedule_keys: set[str]) -> None:
    """A key that nothing reads is a typo (`+schedule.stepz=5`): name it and the keys that exist.

    Nodes with a `_target_` are checked against their constructor when built; here the containers
    that no constructor reads: the top level, `schedule` (whose keys the training schedule reads:
    `schedule_keys`), `loss`, `metrics` and `model`'s entries.
    """
    known = {**KNOWN_CHILDREN, "schedule": set(schedule_keys)}
    _refuse_unknown("", cfg.keys(), TOP_LEVEL)
    for group, names in known.items():
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            _refuse_unknown(f"{group}.", node.keys(), names)
    model = cfg.get("model") or {}
    referenced = set(re.findall(r"\$\{model\.(\w+)", OmegaConf.to_yaml(model, resolve=False)))
    for key, node in model.items():
        if key not in ("objective", "encoder_init") and key not in referenced and not (isinstance(node, DictConfig) and "_target_" in node):
            raise ConfigError(f"model.{key} is not a setting of this model: nothing reads it. Its networks are "
                              f"{sorted(k for k, v in model.items() if isinstance(v, DictConfig))}; "
                              "set their options as model.<network>.<option>.")


def _refuse_unknown(prefix: str, keys, names: set[str]) -> None:
    import difflib

    for key in keys:
        if key not in names:
            near = difflib.get_close_matches(str(key), sorted(names), n=1)
            hint = f"Did you mean {prefix}{near[0]}? " if near else ""
            raise ConfigError(f"{prefix}{key} is not a ganlab setting: nothing reads it. {hint}The settings here are: "
                              f"{', '.join(sorted(names))}. Remove it (or fix its spelling).")


def check_resumable(saved: Saved, config: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """A stored run (`saved`, a checkpoint's reader) may be continued with `config` when the seed is
    the same (a resumed run continues its own random stream); returns each setting that differs from
    the stored config, {key: (stored, now)}."""
    seed = config.get("seed")
    if saved.seed is not None and int(seed) != int(saved.seed):
        raise ConfigError(f"resume: seed={seed} differs from the run's seed={saved.seed}; a resumed run continues its "
                          "own random stream. Start a new run for another seed.")
    return config_changes(saved.config, config)


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Flattened `key: (old, new)` for the values that differ between a run's stored config and now
    (`resume` itself excluded)."""
    before, after = flatten(old), flatten(new)
    return {key: (before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())
            if key != "resume" and before.get(key) != after.get(key)}


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        return {k: v for key, child in node.items() for k, v in flatten(child, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def check_loss_fits(cfg: DictConfig, prefixes: tuple[str, ...]) -> None:
    """A GAN objective needs an adversarial loss; a VAE's or classifier's loss, D steps or augmentation
    would silently be ignored."""
    from ganlab.trust.paths import config_groups

    reads_loss = _objective_class(cfg, prefixes).needs_adversarial_loss
    if cfg.get("loss") and not reads_loss:
        raise ConfigError("a loss was chosen, but this model trains its own objective and ignores it (VAEs and "
                          "classifiers set theirs under model.objective); drop the loss= override.")
    if not reads_loss:
        for key in ("n_critic", "g_steps"):
            if cfg.schedule.get(key, 1) != 1:
                raise ConfigError(f"schedule.{key}={cfg.schedule[key]} counts a GAN's D or G updates, but this model "
                                  "trains its own objective, which has one phase; drop the override.")
        policy = list((cfg.get("augment") or {}).get("policy") or [])
        if policy:
            raise ConfigError(f"augment.policy={policy} augments a discriminator's inputs, but this model has no "
                              "discriminator (it trains its own objective); drop augment= and augment.policy.")
    if reads_loss and not cfg.get("loss"):
        raise ConfigError("loss=none, but this model is a GAN and needs an adversarial loss; pick one of "
                          f"{', '.join(o for o in config_groups()['loss'] if o != 'none')} (e.g. loss=bce).")


def held_out_split(config: dict[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """Held-out data must be held out: a model evaluated on the test split (VAEs, classifiers) trains
    on split=train where the data set's default is split=all; the config says so (what is stored)."""
    if not (_objective_class(config, prefixes).wants_evaluation and config["dataset"].get("split") == "all"):
        return config
    log.info("dataset.split=all would train on the test images too: training on split=train, evaluating "
             "on the held-out split=test")
    return {**config, "dataset": {**config["dataset"], "split": "train"}}


def _objective_class(config: dict[str, Any] | DictConfig, prefixes: tuple[str, ...]) -> type:
    """The class `model.objective._target_` names (what kind of model this is), before anything is built."""
    from ganlab.trust.build import resolve_target

    return resolve_target(config["model"]["objective"].get("_target_"), "model.objective._target_", prefixes)


def resume_setting(config: dict[str, Any]) -> Any:
    """`resume` (false/true/auto/PATH), or `resume_from=PATH`, the warm start's own key."""
    warm = config.get("resume_from")
    if warm in (None, "", False):
        return config["resume"]
    if config["resume"] not in (False, "false", None, ""):
        raise ConfigError(f"resume={config['resume']} and resume_from={warm} are both set; resume continues this "
                          "folder's run, resume_from starts a new run from another checkpoint. Keep one.")
    return str(warm)


# Settings every run states in TensorBoard's HParams, typed or not: a run that kept the default shows
# the value instead of a blank cell beside the runs that changed it.
HPARAM_KEYS = ("seed", "optimizer.lr", "dataset.batch_size", "dataset.resolution", "schedule.steps",
               "schedule.n_critic", "schedule.ema_decay", "augment.p")


def hparam_values(config: dict[str, Any], choices: dict[str, str], typed: dict[str, str]) -> dict[str, Any]:
    """What HParams shows of a run: the usual keys, the config groups' `choices` and what was `typed`,
    each typed key with its resolved value (300, not the text '300': a number column sorts and filters
    as one, beside runs that left the key at its default)."""
    flat = flatten(config)
    return {**{key: flat[key] for key in HPARAM_KEYS if flat.get(key) is not None}, **choices,
            **{key: flat.get(key, text) for key, text in typed.items()}}
