"""Value checks on the composed config, run before anything is built.

Rules go by key name, so a size or rate in any group (and in groups added later) is covered:
a bad value stops the run with the key, the value and the fix, not a traceback from torch.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from ganlab.errors import ConfigError

# key name -> (lowest allowed, whether the lowest is allowed, an example of a good value)
POSITIVE = {"batch_size": 64, "lr": 2e-4, "steps": 2000, "epochs": 10, "resolution": 32, "latent_dim": 100,
            "width": 64, "n_critic": 1, "g_steps": 1, "log_every": 25, "sample_every": 250,
            "ckpt_every": 250, "sample_count": 64}
NON_NEGATIVE = {"snapshot_every": 1000, "keep_last": 3, "weight_decay": 0.0, "num_workers": 2}
FRACTIONS = {"ema_decay": 0.999, "dropout": 0.3}  # in [0, 1)
INTEGERS = {"batch_size", "steps", "resolution", "latent_dim", "width", "n_critic", "g_steps", "log_every",
            "sample_every", "ckpt_every", "sample_count", "snapshot_every", "keep_last", "num_workers"}


def check_values(cfg: DictConfig) -> None:
    """Raise ConfigError for the first out-of-range size, rate or interval anywhere in `cfg`."""
    for path, value in _leaves(cfg, ""):
        name = path.rsplit(".", 1)[-1]
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


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else CPU; an unavailable device is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but no CUDA device is visible; use device=auto or device=cpu.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name} but only {torch.cuda.device_count()} CUDA device(s) exist; "
                          "use device=cuda:0.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device=mps but MPS is not available here; use device=auto or device=cpu.")
    return device
