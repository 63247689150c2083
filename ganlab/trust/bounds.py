"""Bounded input: limits checked before anything is expanded, each refused in one paragraph that
names the file and the limit.

* YAML: the size of a document after its aliases are expanded (`&a [*b, *b, ...]` doubles per
  line: 300 bytes can stand for 10^9 nodes), counted on the parsed node graph before any value is
  built; recursive aliases are refused.
* A composed config: the work its interpolations stand for, counted (not done) over the
  references between its keys (ten `${...}` per value over 8 levels is 10^8 evaluations), and
  how deep they nest.
(`metrics.jsonl` rows are bounded where they are read: `records/logging.py`.)
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from ganlab.errors import ConfigError

YAML_NODES = 200_000  # nodes of one YAML document after alias expansion (ganlab's largest preset: ~300)
CONFIG_WORK = 1_000_000  # values an interpolation-resolving pass may visit
INTERPOLATION_DEPTH = 32  # references followed in a chain


class TooLarge(yaml.YAMLError):
    """A YAML document over a bound (the message names the file and the limit)."""


class _Bounded:
    """A YAML loader's composition, refusing a document whose alias expansion exceeds `YAML_NODES`."""

    def compose_document(self):
        node = super().compose_document()
        _expanded_size(node, getattr(self, "name", "<string>"))
        return node


class BoundedLoader(_Bounded, yaml.SafeLoader):
    """PyYAML's safe loader, with the bound."""


def _expanded_size(root: yaml.Node, name: str) -> int:
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in busy:
            raise TooLarge(f"{name}: a YAML alias refers to itself (a recursive structure); configs are plain trees.")
        busy.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        busy.discard(key)
        if total > YAML_NODES:
            raise TooLarge(f"{name}: the YAML document expands to more than {YAML_NODES:,} values once its aliases "
                           "(*name) are followed; a config is a few hundred. Remove the aliases, or write the values "
                           "out.")
        sizes[key] = total
        return total

    return size(root) if root is not None else 0


def install_yaml_bound() -> None:
    """Make OmegaConf (and so Hydra) load every YAML file with `BoundedLoader`'s bound."""
    import omegaconf._utils as utils

    if getattr(utils.get_yaml_loader, "ganlab_bounded", False):
        return
    original = utils.get_yaml_loader

    def bounded_loader():
        return type("BoundedOmegaConfLoader", (_Bounded, original()), {})  # its float and key rules, bounded

    bounded_loader.ganlab_bounded = True
    utils.get_yaml_loader = bounded_loader


_REFERENCE = re.compile(r"\$\{\s*([^${}:]+?)\s*\}")


def check_config_work(cfg: DictConfig | ListConfig, where: str = "the composed config") -> None:
    """Refuse a config whose interpolations would take more than `CONFIG_WORK` steps to resolve, or
    nest deeper than `INTERPOLATION_DEPTH`, before anything resolves them."""
    values: dict[str, Any] = {}
    _flatten(OmegaConf.to_container(cfg, resolve=False), "", values)
    cost: dict[str, int] = {}
    busy: set[str] = set()

    def work(key: str, depth: int) -> int:
        if key in cost:
            return cost[key]
        if depth > INTERPOLATION_DEPTH:
            raise ConfigError(f"{where}: interpolations nest more than {INTERPOLATION_DEPTH} deep at {key}; write the "
                              "values out instead of chaining ${...} references.")
        if key in busy:
            return 1  # a cycle: OmegaConf reports it itself, in one line
        busy.add(key)
        total = 1
        for ref in _REFERENCE.findall(str(values.get(key, ""))):
            ref = ref.strip().lstrip(".")
            total += sum(work(k, depth + 1) for k in _under(values, ref)) or 1
            if total > CONFIG_WORK:
                raise ConfigError(f"{where}: resolving the interpolations (${{...}}) at {key} would take more than "
                                  f"{CONFIG_WORK:,} steps (each reference is evaluated again wherever it is used). "
                                  "Write the values out, or reference fewer times.")
        busy.discard(key)
        cost[key] = total
        return total

    grand = 0
    for key in values:
        grand += work(key, 0)
        if grand > CONFIG_WORK:
            raise ConfigError(f"{where}: resolving its interpolations (${{...}}) would take more than {CONFIG_WORK:,} "
                              f"steps (the last counted at {key}). Write the values out, or reference fewer times.")


def _flatten(node: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(node, dict):
        out[path] = None
        for key, value in node.items():
            _flatten(value, f"{path}.{key}" if path else str(key), out)
    elif isinstance(node, list):
        out[path] = None
        for i, value in enumerate(node):
            _flatten(value, f"{path}.{i}" if path else str(i), out)
    else:
        out[path] = node


def _under(values: dict[str, Any], ref: str) -> list[str]:
    """The leaf keys a reference stands for (a whole subtree when it names a node)."""
    ref = ref.replace("[", ".").replace("]", "")
    if ref in values and values[ref] is not None:
        return [ref]
    prefix = ref + "."
    return [k for k, v in values.items() if k.startswith(prefix) and v is not None][:CONFIG_WORK]
