"""A run as an object: build it from (config, data facts, device), or open one from its run
directory or a checkpoint, without its data set.

This is the only module that knows a checkpoint's layout beyond `checkpoint.py`'s save / verify:
`train`, resume, `ganlab sample` / `report`, `metrics.classifier` and `model.encoder_init` all go
through it. A checkpoint holds the data facts (shape, resolution, channels, classes or attribute
names) and the value range, so a run opens on a machine without its data, on CPU when it was
trained on a GPU.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganlab import checkpoint
from ganlab.build import allowed_prefixes, build as build_object, resolve_target
from ganlab.data.memory import DataFacts
from ganlab.errors import ConfigError
from ganlab.objectives.base import Objective
from ganlab.transfer import copy_layers


@dataclass
class Run:
    """Networks, objective, EMA copies and fixed inputs of one run, plus what it was trained on."""

    config: dict[str, Any]
    facts: DataFacts
    value_range: str
    objective: Objective
    ema: dict[str, nn.Module] = field(default_factory=dict)
    fixed: dict[str, torch.Tensor] = field(default_factory=dict)
    step: int = 0
    steps_per_epoch: float | None = None
    path: Path | None = None  # the checkpoint it was opened from
    overrides: list[str] = field(default_factory=list)  # the command line it was started with
    images: int | None = None  # how many images (or points) it trains on

    @property
    def networks(self) -> dict[str, nn.Module]:
        return self.objective.networks

    def sampling_networks(self, ema: str | bool = "auto") -> dict[str, nn.Module]:
        """The networks to draw samples with: EMA copies when the run has them (ema=auto/true), their
        BatchNorm statistics re-estimated for their own weights."""
        if ema is True and not self.ema:
            raise ConfigError("ema=true but this run has no EMA weights (schedule.ema_decay was 0); use ema=auto.")
        if ema in ("auto", True):
            return with_calibrated_ema(self.objective, self.networks, self.ema, self.fixed, seed=self.step)
        return dict(self.networks)

    def metadata(self) -> dict[str, Any]:
        """What a checkpoint stores beside the weights so the run opens without its data."""
        return {"config": self.config, "facts": asdict(self.facts), "value_range": self.value_range,
                "steps_per_epoch": self.steps_per_epoch, "overrides": list(self.overrides), "images": self.images}


def with_calibrated_ema(objective: Objective, networks: dict[str, nn.Module], ema: dict[str, nn.Module],
                        fixed: dict[str, torch.Tensor], seed: int, passes: int = 4) -> dict[str, nn.Module]:
    """`networks` with the EMA copies in place. The EMA generator's running BatchNorm statistics are
    the live G's (they do not fit the averaged weights), so they are re-estimated on `passes` fresh
    batches of codes drawn from a generator of their own (the training RNG is untouched)."""
    sampler = objective.sampler
    net = ema.get(sampler)
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats] if net is not None else []
    if norms:
        device, rng = next(net.parameters()).device, torch.Generator().manual_seed(seed)
        labels = fixed.get("labels")
        count = len(labels) if labels is not None else 64
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the passes
        net.train()
        with torch.no_grad():
            for _ in range(passes):
                objective.decode({sampler: net}, objective.latent(count, rng).to(device), labels)
        net.eval()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return {**networks, **ema}


def build(config: dict[str, Any], facts: DataFacts, value_range: str, device: torch.device,
          prefixes: tuple[str, ...], ema: bool = False, start_encoder: bool = True,
          overrides: list[str] | None = None) -> Run:
    """Build every network of `config["model"]` (the run's resolved config, as plain values) for the
    data `facts`, then the objective that trains them (`start_encoder`: apply `model.encoder_init`,
    which a reopened run does not need)."""
    facts_kw, model = asdict(facts), config["model"]
    networks = {name: build_object(node, f"model.{name}", prefixes, **facts_kw).to(device)
                for name, node in model.items() if name != "objective" and _is_buildable(node)}
    encoder_init = model.get("encoder_init")
    if encoder_init and start_encoder:
        _start_encoder(networks, str(encoder_init))
    objective = build_object(model["objective"], "model.objective", prefixes, **networks, **facts_kw)
    copies = {name: copy.deepcopy(objective.networks[name]).requires_grad_(False)
              for name in objective.ema_networks} if ema else {}
    return Run(config, facts, value_range, objective, copies, overrides=list(overrides or []))


def objective_class(target: str | None, prefixes: tuple[str, ...]) -> type:
    """The class `model.objective._target_` names, before anything is built (what kind of model this is)."""
    return resolve_target(target, "model.objective._target_", prefixes)


def _is_buildable(node: Any) -> bool:
    return isinstance(node, Mapping) and "_target_" in node


def _start_encoder(networks: dict[str, nn.Module], path: str) -> None:
    """`model.encoder_init=PATH`: a classifier run's `hidden` layers start the VAE encoder's."""
    targets = [net for net in networks.values() if hasattr(net, "encoder_body")]
    if not targets:
        raise ConfigError("model.encoder_init is set, but this model has no encoder to start; it is for "
                          "model=vae_mlp / vae_conv.")
    weights = network_weights(path, "model.encoder_init")
    for net in targets:
        copy_layers(net.encoder_body(), weights, path, source_prefix="hidden.", key="model.encoder_init")


# --- reading runs back ------------------------------------------------------------------------
def checkpoint_path(run: str | Path, which: str = "last", key: str = "run") -> Path:
    """`which`: last, best, step_N (or step_000N), or a path; `run` a run directory or a checkpoint."""
    run = Path(run).expanduser()
    if run.is_file():
        return run
    if not run.is_dir():
        raise ConfigError(f"{key}={run} is neither a run directory nor a checkpoint file; point it at a folder "
                          "under outputs/ (the one holding checkpoints/).")
    folder = run / "checkpoints"
    if not folder.is_dir():
        raise ConfigError(_not_a_run(run, key))
    if which in ("last", "best"):
        path = folder / f"{which}.pt"
    elif re.fullmatch(r"step_\d+", which):
        path = folder / f"step_{int(which[5:]):06d}.pt"
    else:
        path = Path(which).expanduser()
    if not path.is_file():
        present = sorted(p.stem for p in folder.glob("*.pt"))
        if not present:
            raise ConfigError(f"{key}={run} has no checkpoint yet: it stopped before its first one "
                              "(schedule.ckpt_every). Continue it with ganlab train resume=true "
                              f"hydra.run.dir={run}, or pick a run that has checkpoints/last.pt.")
        hint = ("best.pt is kept when metrics run during training (schedule.eval_every with metrics)"
                if which == "best" else f"this run has: {', '.join(present)}")
        raise ConfigError(f"checkpoint={which}: {path} does not exist; {hint}.")
    return path


def _not_a_run(folder: Path, key: str) -> str:
    """Why `folder` is not a run: a sweep's folder (naming its jobs), a run that never started, or neither."""
    jobs = sorted(p.parent.name for p in folder.glob("*/checkpoints"))
    if jobs:
        shown = ", ".join(jobs[:6]) + (f" and {len(jobs) - 6} more" if len(jobs) > 6 else "")
        return (f"{key}={folder} is a sweep's folder, not one run; pass one of its runs: {shown} "
                f"(e.g. {key}={folder / jobs[0]}).")
    if (folder / "metrics.jsonl").is_file() or (folder / ".hydra").is_dir():
        return (f"{key}={folder} is a run that has no checkpoint yet (it stopped before its first one, "
                "schedule.ckpt_every); continue it with resume=true, or pick another run.")
    return (f"{key}={folder} is not a run folder (it has no checkpoints/); point it at a folder under outputs/ "
            "that holds checkpoints/, or at a checkpoint file.")


def network_weights(path: str | Path, key: str) -> dict[str, dict[str, torch.Tensor]]:
    """Each network's state dict from a checkpoint, verified."""
    return checkpoint.load(path, key)["networks"]


def open(run: str | Path, which: str = "last", device: torch.device | str = "cpu",
         prefixes: tuple[str, ...] | None = None, key: str = "run") -> Run:
    """Open a finished (or running) run: its networks, EMA copies and fixed inputs on `device`,
    rebuilt from the checkpoint's own config and data facts. The stored config is shared input: it
    is checked against `prefixes`, the allow-list of the user running this command (by default
    ganlab's own), never against the `allowed_targets` stored in it (anyone can re-sign a file)."""
    path = checkpoint_path(run, which, key)
    state = checkpoint.load(path, key)
    device = torch.device(device)
    prefixes = prefixes or allowed_prefixes()
    facts = _facts(state["facts"])
    opened = build(state["config"], facts, state["value_range"], device, prefixes,
                   ema=bool(state["ema"]), start_encoder=False)
    for name, net in opened.networks.items():
        net.load_state_dict(state["networks"][name])
    for name, net in opened.ema.items():
        net.load_state_dict(state["ema"][name])
    for net in (*opened.networks.values(), *opened.ema.values()):
        net.eval().requires_grad_(False)
    opened.fixed = {name: t.to(device) for name, t in state["fixed"].items()}
    opened.step, opened.steps_per_epoch, opened.path = int(state["step"]), state.get("steps_per_epoch"), path
    return opened


def _facts(stored: dict[str, Any]) -> DataFacts:
    return DataFacts(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})


def open_classifier(path: str | Path, key: str, facts: DataFacts, device: torch.device,
                    prefixes: tuple[str, ...]) -> tuple[nn.Module, str]:
    """A classifier run's network (to judge samples of data shaped as `facts`), and the value
    range it was trained on."""
    judge = open(path, device=device, prefixes=prefixes, key=key)
    if "classifier" not in judge.networks:
        raise ConfigError(f"{key}={path} is not a classifier run's checkpoint (its networks are "
                          f"{sorted(judge.networks)}); train one, e.g. experiment=fashion_classifier_mlp.")
    if tuple(judge.facts.shape) != tuple(facts.shape):
        raise ConfigError(f"{key}={path} was trained on data of shape {tuple(judge.facts.shape)}, but this run's "
                          f"data is {tuple(facts.shape)}; train the classifier on the same resolution and channels.")
    return judge.networks["classifier"], judge.value_range


def stored_overrides(run_dir: str | Path) -> list[str] | None:
    """The overrides a run was started with, from its newest intact checkpoint (None: it has no
    checkpoint, or one written before checkpoints held them)."""
    found = checkpoint.load_latest(Path(run_dir) / "checkpoints")
    return _overrides_of(found[0]) if found else None


def _overrides_of(state: dict[str, Any]) -> list[str] | None:
    stored = state.get("overrides")
    return [str(o) for o in stored] if isinstance(stored, list) else None


def summary(run_dir: str | Path, key: str = "report") -> dict[str, Any]:
    """A run's resolved config, steps per epoch and overrides (None when its checkpoints do not
    hold them), from its newest checkpoint (no networks built)."""
    found = checkpoint.load_latest(Path(run_dir) / "checkpoints", key=key)
    if found is None:
        return {"config": {}, "steps_per_epoch": None, "step": 0, "overrides": None}
    state = found[0]
    return {"config": state["config"], "steps_per_epoch": state.get("steps_per_epoch"), "step": int(state["step"]),
            "overrides": _overrides_of(state)}
