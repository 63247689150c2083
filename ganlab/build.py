"""Building objects from config: `hydra.utils.instantiate` behind a `_target_` allow-list.

A shared YAML file must not be able to call `os.system`, so every `_target_` in the composed
config is checked before anything is built: its dotted path must start with an allowed prefix,
may not pass through private names, and must resolve to an object defined in an allowed module
(`torch.nn.modules.module.os.system` starts with `torch.nn.` but is `posix.system`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import hydra.errors
import hydra.utils
from hydra._internal.utils import _locate
from omegaconf import DictConfig, ListConfig, OmegaConf

from ganlab.errors import ConfigError

DEFAULT_ALLOWED = ("ganlab.", "torch.nn.", "torch.optim.", "torchvision.")


def allowed_prefixes(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The default prefixes plus the user's `allowed_targets` (a module name allows its submodules)."""
    return DEFAULT_ALLOWED + tuple(p if p.endswith(".") else p + "." for p in extra)


def _is_allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any((name + ".").startswith(p) for p in prefixes)


def resolve_target(target: Any, key: str, prefixes: tuple[str, ...]) -> Any:
    """Import a `_target_` after checking it against the allow-list; raise ConfigError if refused."""
    listed = ", ".join(prefixes)
    fix = f"Allowed prefixes: {listed}. To allow your own module, add it to `allowed_targets` in the config."
    if not isinstance(target, str) or not _is_allowed(target, prefixes):
        raise ConfigError(f"Refused `{key}: {target}`: targets must start with an allowed prefix. {fix}")
    if any(part.startswith("_") for part in target.split(".")):
        raise ConfigError(f"Refused `{key}: {target}`: targets may not use private or dunder names. {fix}")
    try:
        obj = _locate(target)
    except ImportError as exc:
        raise ConfigError(f"`{key}: {target}` could not be imported ({exc}). Check the spelling.") from None
    module = getattr(obj, "__module__", None) or ""
    if inspect.ismodule(obj) or not _is_allowed(module, prefixes):
        raise ConfigError(f"Refused `{key}: {target}`: it resolves to `{module}.{getattr(obj, '__name__', obj)}`, "
                          f"outside the allowed modules. {fix}")
    return obj


def check_targets(node: Any, prefixes: tuple[str, ...], path: str = "") -> None:
    """Walk a config tree and check every `_target_` in it (Hydra builds nested ones by itself)."""
    if isinstance(node, (DictConfig, Mapping)):
        items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else node.items()
        for key, value in items:
            child = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                resolve_target(value, child, prefixes)
            else:
                check_targets(value, prefixes, child)
    elif isinstance(node, (ListConfig, list, tuple)):
        for i, value in enumerate(node):
            check_targets(value, prefixes, f"{path}[{i}]")


def build(node: DictConfig, key: str, prefixes: tuple[str, ...], /, *args: Any, **facts: Any) -> Any:
    """Instantiate `node` (found at config `key`), passing the `facts` its constructor accepts.

    Facts are things known from the data or from other objects (resolution, channels, parameters
    of a network); a value set in the YAML file wins over a fact of the same name.
    """
    check_targets(node, prefixes, key)
    target = resolve_target(node["_target_"], f"{key}._target_", prefixes)
    accepted = _accepted_keywords(target)
    kwargs = {k: v for k, v in facts.items() if (accepted is None or k in accepted) and k not in node}
    try:
        return hydra.utils.instantiate(node, *args, _convert_="all", **kwargs)
    except hydra.errors.InstantiationException as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"Could not build `{key}` ({node['_target_']}): {cause}") from None


def _accepted_keywords(target: Any) -> set[str] | None:
    """The keyword names `target` takes, or None when it takes **kwargs (then every fact is passed)."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def to_plain(node: Any) -> Any:
    """A resolved config as plain Python containers (what checkpoints and metadata store)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node
