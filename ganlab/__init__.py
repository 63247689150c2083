"""ganlab: a configuration-driven experiment runner for GANs, VAEs and diffusion models.

The package reads as its layers (docs/architecture.md): `commands` (the command line and its
verbs), `trust` (vetting, the registry of buildable objects, checks, stored settings), `training`,
`objectives` (families, with their losses, penalties and augmentation), `models`, `data`, `metrics`,
`records` (checkpoints, run folders, caches, logs, pictures).
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# Modules that moved into the layers, under the dotted names configs, checkpoints and scripts
# wrote before (`_target_: ganlab.losses.Hinge`, `from ganlab.checkpoint import load`): each old
# name is the same module object as the new one, imported on first use.
_LAYERS = {
    "commands": ("cli", "launch", "options", "usage", "sample", "evaluate", "report", "search", "figures", "seeds"),
    "training": ("train", "run", "loop", "step", "maintenance", "schedule", "runtime", "replay", "drawing", "transfer"),
    "objectives": ("losses", "penalties", "augment"),
    "trust": ("vetting", "build", "registry", "bounds", "checks", "stored", "paths"),
    "records": ("checkpoint", "rundir", "cache", "logging", "plots", "safe_files", "sweeps", "faults"),
}
MOVED = {f"ganlab.{module}": f"ganlab.{layer}.{module}" for layer, modules in _LAYERS.items() for module in modules}
MOVED.update({"ganlab.metrics.measuring": "ganlab.training.measuring",  # it wires a run's measuring
              "ganlab.models.sync_batchnorm": "ganlab.training.sync_batchnorm",  # how a run executes
              "ganlab.records.transfer": "ganlab.training.transfer"})  # there one release; copying layers builds a run


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        self._own_spec = module.__spec__  # the import system sets the old name's spec on it
        return module

    def exec_module(self, module):
        module.__spec__ = self._own_spec  # already executed under its new name; it keeps that spec


if not any(isinstance(finder, _OldNames) for finder in sys.meta_path):
    sys.meta_path.append(_OldNames())
