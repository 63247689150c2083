"""The closed set of objects a config may build, by the dotted name a `_target_` gives.

ganlab's building blocks register themselves where they are defined (`@buildable("network")`);
from torch and torchvision the kinds configs use are registered here: `torch.nn` modules,
`torch.optim` optimizers and learning-rate schedulers, `torchvision.transforms` classes.
Nothing else builds: not a helper that writes a cache, not a download, not a model constructor
that takes `weights=`, whatever module it lives in. The user widens the set only by typing
`allowed_targets=[mymodule]` on the command line (`vetting.py` enforces who may set it).

A kind says where an object may stand: a data set only as the `dataset` node itself (data sets
read folders, keep caches and may download; nothing else in a config should start one).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from ganlab import MOVED


def current_name(dotted: str) -> str:
    """`ganlab.losses.Hinge` -> `ganlab.objectives.losses.Hinge`: where a moved module lives now."""
    for old, new in MOVED.items():
        if dotted.startswith(old + "."):
            return new + dotted[len(old):]
    return dotted


def public_name(dotted: str) -> str:
    """The name configs write for a buildable object (the module's name before the layout by layer)."""
    for old, new in MOVED.items():
        if dotted.startswith(new + ".") and old.rsplit(".", 1)[-1] in _PUBLIC_MODULES:
            return old + dotted[len(new):]
    return dotted


# Modules whose old dotted names configs write in `_target_` (kept as the public names).
_PUBLIC_MODULES = ("losses", "penalties", "augment")

KINDS = ("network", "objective", "loss", "penalty", "augmentation", "dataset", "layer", "optimizer", "scheduler",
         "transform")
# Where objects of a kind may stand in a config (a dotted key); kinds not named here may stand anywhere.
ONLY_AT = {"dataset": "dataset"}
# The modules whose `@buildable` definitions make up ganlab's part of the set.
GANLAB_MODULES = ("ganlab.models", "ganlab.objectives", "ganlab.data")

_REGISTERED: dict[str, tuple[str, Any]] = {}


def buildable(kind: str) -> Callable[[Any], Any]:
    """Register the decorated class or function under its dotted name as a buildable `kind`."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")

    def register(obj: Any) -> Any:
        _REGISTERED[current_name(f"{obj.__module__}.{obj.__qualname__}")] = (kind, obj)
        return obj

    return register


def entries() -> dict[str, tuple[str, Any]]:
    """Every buildable name -> (kind, object): ganlab's registrations and the torch kinds."""
    _import_ganlab()
    return {**_torch_entries(), **_REGISTERED}


def lookup(name: str) -> tuple[str, Any] | None:
    """(kind, object) for a registered name, else None. A name from before the layout by layer
    (`ganlab.losses.Hinge`, what configs and old checkpoints write) finds the same object."""
    name = current_name(name)
    if name in _REGISTERED:
        return _REGISTERED[name]
    _import_ganlab()
    return _REGISTERED.get(name) or _torch_entries().get(name)


def _import_ganlab() -> None:
    import pkgutil

    for name in GANLAB_MODULES:
        module = importlib.import_module(name)
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            importlib.import_module(f"{name}.{info.name}")


_TORCH: dict[str, tuple[str, Any]] = {}


def _torch_entries() -> dict[str, tuple[str, Any]]:
    """`torch.nn.X` modules, `torch.optim.X` optimizers, `torch.optim.lr_scheduler.X` schedulers and
    `torchvision.transforms.X` classes, under the public names configs write."""
    if _TORCH:
        return _TORCH
    import torch
    import torchvision.transforms

    def add(namespace: Any, prefix: str, kind: str, accept: Callable[[Any], bool]) -> None:
        for attr in dir(namespace):
            obj = getattr(namespace, attr)
            if not attr.startswith("_") and inspect.isclass(obj) and accept(obj):
                _TORCH[f"{prefix}.{attr}"] = (kind, obj)

    add(torch.nn, "torch.nn", "layer", lambda c: issubclass(c, torch.nn.Module))
    add(torch.optim, "torch.optim", "optimizer", lambda c: issubclass(c, torch.optim.Optimizer) and c is not
        torch.optim.Optimizer)
    add(torch.optim.lr_scheduler, "torch.optim.lr_scheduler", "scheduler",
        lambda c: issubclass(c, torch.optim.lr_scheduler.LRScheduler) and c is not torch.optim.lr_scheduler.LRScheduler)
    add(torchvision.transforms, "torchvision.transforms", "transform", lambda c: True)
    return _TORCH


def listing() -> str:
    """The buildable names by kind (what `ganlab buildable` prints)."""
    by_kind: dict[str, list[str]] = {}
    for name, (kind, _) in entries().items():
        by_kind.setdefault(kind, []).append(public_name(name))
    lines = []
    for kind in KINDS:  # under the names configs write (ganlab.losses.*, not ganlab.objectives.losses.*)
        names = sorted(by_kind.get(kind, []))
        where = f" (only as the `{ONLY_AT[kind]}` node)" if kind in ONLY_AT else ""
        lines.append(f"{kind}{where}: {len(names)}")
        lines += [f"  {n}" for n in names]
    return "\n".join(lines)
