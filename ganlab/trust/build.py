"""Building objects from config: `hydra.utils.instantiate` over a closed set of names.

A shared YAML file, an override or a config stored in a checkpoint must not be able to run code
or touch files, so what is checked is exactly what is built: a node is first resolved
(interpolations and resolvers such as `${oc.create:...}` evaluated), every `_target_` of the
resolved tree is checked, at any depth and under any key, and that same resolved tree is handed
to `instantiate`. A target must be
* a name in the registry (`registry.py`: ganlab's building blocks, registered where they are
  defined, and the `torch.nn` / `torch.optim` / torchvision transform classes), standing where
  its kind may stand (a data set only as the `dataset` node), or
* an object defined in a module the user typed in `allowed_targets=[mymodule]` (on the command
  line or in their own primary config; presets, run folders and checkpoints may not: `vetting.py`).
Every key of a node with a `_target_` must be a parameter of what it builds (the constructor's
signature is the schema), and no key may start with `_` except Hydra's own `_target_`,
`_partial_`, `_convert_`, `_recursive_` and `_args_`: an unknown key is refused, never built.
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

from ganlab.trust import registry
from ganlab.errors import ConfigError

HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
# Keys of a node that ganlab reads itself before building it (the constructor never sees them).
READ_BY_GANLAB = {"dataset": {"limit"}, "optimizer": {"per_network"}}


def allowed_prefixes(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The modules the user typed in `allowed_targets` (a module allows its submodules)."""
    return tuple(p if p.endswith(".") else p + "." for p in extra)


def _is_allowed(name: str, prefixes: Iterable[str]) -> bool:
    return any((name + ".").startswith(p) for p in prefixes)


def resolve_target(target: Any, key: str, prefixes: tuple[str, ...]) -> Any:
    """The object a `_target_` names, if a config may build it there; raise ConfigError if not."""
    fix = ("`ganlab buildable` lists the names configs may build. To build from your own module, type "
           "allowed_targets=[mymodule] on the command line.")
    if not isinstance(target, str):
        raise ConfigError(f"Refused `{key}: {target!r}`: a target must be a dotted name. {fix}")
    found = registry.lookup(target)
    if found is not None:
        kind, obj = found
        where = key.rsplit("._target_", 1)[0]
        if kind in registry.ONLY_AT and where != registry.ONLY_AT[kind]:
            raise ConfigError(f"Refused `{key}: {target}`: it is a {kind}, which a config builds only as its "
                              f"`{registry.ONLY_AT[kind]}` node (choose one with {registry.ONLY_AT[kind]}=...), "
                              f"not under {where}.")
        return obj
    if not _is_allowed(target, prefixes):
        raise ConfigError(f"Refused `{key}: {target}`: it is not a name configs may build. {fix}")
    if any(part.startswith("_") for part in target.split(".")):
        raise ConfigError(f"Refused `{key}: {target}`: targets may not use private or dunder names. {fix}")
    try:
        obj = _locate(target)
    except ImportError as exc:
        raise ConfigError(f"`{key}: {target}` could not be imported ({exc}). Check the spelling.") from None
    module = getattr(obj, "__module__", None) or ""
    if inspect.ismodule(obj) or not _is_allowed(module, prefixes):
        raise ConfigError(f"Refused `{key}: {target}`: it resolves to `{module}.{getattr(obj, '__name__', obj)}`, "
                          f"outside the modules you allowed. {fix}")
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
        items = list(node.items_ex(resolve=False) if isinstance(node, DictConfig) else node.items())
        keys = {str(k) for k, _ in items}
        for key in keys:
            if key.startswith("_") and key not in HYDRA_KEYS:
                raise ConfigError(f"Refused `{path + '.' if path else ''}{key}`: keys starting with `_` are not "
                                  f"settings (only Hydra's {', '.join(sorted(HYDRA_KEYS))} are). Remove it.")
        for key, value in items:  # nested targets first: the refusal names the innermost one
            if key != "_target_":
                _check_tree(value, prefixes, f"{path}.{key}" if path else str(key))
        if "_target_" in keys:
            target = resolve_target(node["_target_"], f"{path}._target_" if path else "_target_", prefixes)
            check_argument_types(target, node, path or "config")
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
    accepted = accepted_keywords(target)
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
    accepted = accepted_keywords(target)
    for name in node.keys():
        if accepted is not None and name not in HYDRA_KEYS | READ_BY_GANLAB.get(key, set()) and name not in accepted:
            raise ConfigError(f"{key}.{name} is not a setting of {node['_target_']}: nothing reads it. Its settings "
                              f"are: {', '.join(sorted(accepted - {'self'}))}. Remove it or fix its spelling.")
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # noqa: BLE001 - untyped or unresolvable annotations: nothing to check
        return
    for name in node.keys():
        if name.startswith("_") or name not in hints or (isinstance(node, DictConfig) and OmegaConf.is_missing(node, name)):
            continue
        value = node[name]
        if value is None or OmegaConf.is_config(value):
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


def accepted_keywords(target: Any) -> set[str] | None:
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
