"""Building objects from config: `hydra.utils.instantiate` behind a `_target_` allow-list.

A shared YAML file, an override or a config stored in a checkpoint must not be able to run code,
so what is checked is exactly what is built: a node is first resolved (interpolations and
resolvers such as `${oc.create:...}` evaluated), every `_target_` of the resolved tree is
checked, and that same resolved tree is handed to `instantiate`. A target must
* be a public dotted name inside the allowed modules (ganlab's building blocks, `torch.nn`
  modules, `torch.optim` optimizers, torchvision transforms and models), and
* resolve to an object of an allowed kind defined there: `torch.nn.modules.module.os.system`
  starts with `torch.nn.` but is `posix.system`, and `torchvision.datasets.utils.download_url`
  is a file-system helper, not something a config needs to build.
Users widen the list with `allowed_targets=[mypackage]` (on the command line or in their own
primary config; presets, replayed overrides and checkpoints may not: see `vetting.py`).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import hydra.errors
import hydra.utils
from hydra._internal.utils import _locate
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganlab.errors import ConfigError

# The modules whose objects configs build, and what kind of object each may give.
GANLAB_MODULES = ("ganlab.models.", "ganlab.objectives.", "ganlab.losses.", "ganlab.penalties.", "ganlab.augment.", "ganlab.data.",
                  "ganlab.metrics.")
DEFAULT_ALLOWED = (*GANLAB_MODULES, "torch.nn.", "torch.optim.", "torchvision.transforms.", "torchvision.models.")


def allowed_prefixes(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The default prefixes plus the user's `allowed_targets` (a module name allows its submodules)."""
    return DEFAULT_ALLOWED + tuple(p if p.endswith(".") else p + "." for p in extra)


def _is_allowed(name: str, prefixes: Iterable[str]) -> bool:
    return any((name + ".").startswith(p) for p in prefixes)


def _allowed_kind(obj: Any, module: str, prefixes: tuple[str, ...]) -> bool:
    """Within the default modules only the kinds configs need; user modules are trusted whole."""
    import torch

    if _is_allowed(module, prefixes[len(DEFAULT_ALLOWED):]):
        return True
    if module.startswith("torch.nn."):
        return inspect.isclass(obj) and issubclass(obj, torch.nn.Module)
    if module.startswith("torch.optim."):
        return inspect.isclass(obj) and issubclass(obj, (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler))
    if module.startswith("torchvision.transforms."):
        return inspect.isclass(obj)
    if module.startswith("torchvision.models."):
        import torchvision.models

        return (inspect.isclass(obj) and issubclass(obj, torch.nn.Module)) or \
            getattr(obj, "__name__", "") in torchvision.models.list_models()
    return _is_allowed(module, GANLAB_MODULES)


def resolve_target(target: Any, key: str, prefixes: tuple[str, ...]) -> Any:
    """Import a `_target_` after checking it against the allow-list; raise ConfigError if refused."""
    fix = (f"Allowed: {', '.join(prefixes)} (networks, optimizers, transforms and ganlab's building blocks "
           "only). To allow your own module, pass allowed_targets=[mymodule] on the command line.")
    if not isinstance(target, str) or not _is_allowed(target, prefixes):
        raise ConfigError(f"Refused `{key}: {target}`: targets must start with an allowed prefix. {fix}")
    if any(part.startswith("_") for part in target.split(".")):
        raise ConfigError(f"Refused `{key}: {target}`: targets may not use private or dunder names. {fix}")
    try:
        obj = _locate(target)
    except ImportError as exc:
        raise ConfigError(f"`{key}: {target}` could not be imported ({exc}). Check the spelling.") from None
    module = getattr(obj, "__module__", None) or ""
    if inspect.ismodule(obj) or not _is_allowed(module, prefixes) or not _allowed_kind(obj, module, prefixes):
        raise ConfigError(f"Refused `{key}: {target}`: it resolves to `{module}.{getattr(obj, '__name__', obj)}`, "
                          f"which is not an object configs may build. {fix}")
    return obj


def resolved(node: Any, key: str = "config") -> Any:
    """`node` with every interpolation and resolver evaluated, as a config that resolves to itself.

    A value that resolves to another interpolation (an escaped `\\${...}`) would be evaluated again
    by `instantiate`, after the check: such a value is refused.
    """
    if not isinstance(node, (DictConfig, ListConfig, Mapping, list)):
        return node
    try:
        # plain containers (a checkpoint's stored config) are read as configs too: interpolations in
        # them are evaluated once, here, and the result is what gets checked
        plain = OmegaConf.to_container(node if OmegaConf.is_config(node) else OmegaConf.create(node), resolve=True)
        fixed = OmegaConf.create(plain)
        again = OmegaConf.to_container(fixed, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"`{key}` could not be resolved: {str(exc).splitlines()[0]}. Check the "
                          "interpolations (${...}) in it.") from None
    if again != plain:
        raise ConfigError(f"Refused `{key}`: a value in it resolves to another interpolation (${{...}}), which "
                          "would be evaluated after the allow-list check. Write the value itself instead.")
    return fixed


def check_targets(node: Any, prefixes: tuple[str, ...], path: str = "") -> None:
    """Check every `_target_` in the resolved tree of `node` (Hydra builds nested ones by itself)."""
    _check_tree(resolved(node, path or "config"), prefixes, path)


def _check_tree(node: Any, prefixes: tuple[str, ...], path: str) -> None:
    if isinstance(node, (DictConfig, Mapping)):
        for key, value in node.items_ex(resolve=False) if isinstance(node, DictConfig) else node.items():
            child = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                resolve_target(value, child, prefixes)
            else:
                _check_tree(value, prefixes, child)
    elif isinstance(node, (ListConfig, list, tuple)):
        for i, value in enumerate(node):
            _check_tree(value, prefixes, f"{path}[{i}]")


def build(node: DictConfig, key: str, prefixes: tuple[str, ...], /, *args: Any, **facts: Any) -> Any:
    """Instantiate `node` (found at config `key`), passing the `facts` its constructor accepts.

    Facts are things known from the data or from other objects (resolution, channels, parameters
    of a network); a value set in the YAML file wins over a fact of the same name.
    """
    node = resolved(node, key)
    _check_tree(node, prefixes, key)
    target = resolve_target(node["_target_"], f"{key}._target_", prefixes)
    check_argument_types(target, node, key)
    accepted = _accepted_keywords(target)
    kwargs = {k: v for k, v in facts.items() if (accepted is None or k in accepted) and k not in node}
    try:
        return hydra.utils.instantiate(node, *args, _convert_="all", **kwargs)
    except hydra.errors.InstantiationException as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"Could not build `{key}` ({node['_target_']}): {cause}") from None


def check_argument_types(target: Any, node: DictConfig, key: str) -> None:
    """The constructor's signature is the schema: every key must be one of its parameters, and a
    value for a `bool`, `int`, `float` or `str` parameter must be one (`spectral_norm=maybe` must
    not turn spectral norm on)."""
    accepted = _accepted_keywords(target)
    for name in node.keys():
        if accepted is not None and not str(name).startswith("_") and name not in accepted:
            raise ConfigError(f"{key}.{name} is not a setting of {node['_target_']}: nothing reads it. Its settings "
                              f"are: {', '.join(sorted(accepted - {'self'}))}. Remove it or fix its spelling.")
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # noqa: BLE001 - untyped or unresolvable annotations: nothing to check
        return
    for name, value in node.items():
        if name.startswith("_") or name not in hints or value is None or OmegaConf.is_config(value):
            continue
        expected = _scalar_types(hints[name])
        if expected and not _fits(value, expected):
            wanted = " or ".join(t.__name__ for t in expected)
            example = {"bool": "true", "int": "1", "float": "0.5", "str": "name"}[expected[0].__name__]
            raise ConfigError(f"{key}.{name}={value!r} must be {wanted}; set e.g. {key}.{name}={example}.")


def _scalar_types(hint: Any) -> tuple[type, ...]:
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    scalars = tuple(a for a in args if a in (bool, int, float, str))
    others = [a for a in args if a not in (bool, int, float, str, type(None))]
    return () if others else scalars


def _fits(value: Any, expected: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in expected
    if isinstance(value, int):
        return int in expected or float in expected
    return isinstance(value, tuple(t for t in expected if t is not bool))


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
