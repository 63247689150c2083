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
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganlab.records import checkpoint
from ganlab.trust.build import allowed_prefixes, build as build_object
from ganlab.data.memory import DataFacts
from ganlab.errors import ConfigError
from ganlab.objectives.base import Objective
from ganlab.training.runtime import unwrap
from ganlab.training.transfer import copy_layers

log = logging.getLogger("ganlab")


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
    run_id: str | None = None  # this run's identity, in every checkpoint and its folder's run.json
    choices: dict[str, str] = field(default_factory=dict)  # the config groups it chose (model=vae_mlp, ...)

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
                "steps_per_epoch": self.steps_per_epoch, "overrides": list(self.overrides), "images": self.images,
                "run_id": self.run_id, "choices": dict(self.choices)}


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
    model = config["model"]
    weights = checkpoint.network_weights(model.get("encoder_init"), "model.encoder_init") if start_encoder else None
    objective = build_objective(model, facts, device, prefixes, weights)
    return Run(config, facts, value_range, objective, ema_copies(objective) if ema else {},
               overrides=list(overrides or []))


def build_objective(model: dict[str, Any], facts: DataFacts, device: torch.device, prefixes: tuple[str, ...],
                    encoder_weights: dict[str, dict[str, torch.Tensor]] | None = None) -> Objective:
    """Every network of `model` (the config's `model` node) for the data `facts`, on `device`, and
    the objective that trains them; `encoder_weights` (read from `model.encoder_init`) start the encoder."""
    facts_kw = asdict(facts)
    networks = {name: build_object(node, f"model.{name}", prefixes, **facts_kw).to(device)
                for name, node in model.items() if name != "objective" and _is_buildable(node)}
    if encoder_weights is not None:
        _start_encoder(networks, str(model["encoder_init"]), encoder_weights)
    return build_object(model["objective"], "model.objective", prefixes, **networks, **facts_kw)


def ema_copies(objective: Objective) -> dict[str, nn.Module]:
    """Frozen copies of the networks whose moving average the objective keeps (the generator)."""
    return {name: copy.deepcopy(objective.networks[name]).requires_grad_(False) for name in objective.ema_networks}


def _is_buildable(node: Any) -> bool:
    return isinstance(node, Mapping) and "_target_" in node


def _start_encoder(networks: dict[str, nn.Module], path: str, weights: dict[str, dict[str, torch.Tensor]]) -> None:
    """`model.encoder_init=PATH`: a classifier run's `hidden` layers start the VAE encoder's."""
    targets = [net for net in networks.values() if hasattr(net, "encoder_body")]
    if not targets:
        raise ConfigError("model.encoder_init is set, but this model has no encoder to start; it is for "
                          "model=vae_mlp / vae_conv.")
    for net in targets:
        copy_layers(net.encoder_body(), weights, path, source_prefix="hidden.", key="model.encoder_init")


# --- reading runs back ------------------------------------------------------------------------
def open(run: str | Path, which: str = "last", device: torch.device | str = "cpu",
         prefixes: tuple[str, ...] | None = None, key: str = "run") -> Run:
    """Open a finished (or running) run: its networks, EMA copies and fixed inputs on `device`,
    rebuilt from the checkpoint's own config and data facts. The stored config is shared input: it
    is checked against `prefixes`, the allow-list of the user running this command (by default
    ganlab's own), never against the `allowed_targets` stored in it (anyone can re-sign a file)."""
    path, state = checkpoint.read_run(run, which, key)
    return from_checkpoint(path, state, device, prefixes)


def from_checkpoint(path: Path, state: dict[str, Any], device: torch.device | str = "cpu",
                    prefixes: tuple[str, ...] | None = None) -> Run:
    """The run a checkpoint's verified `state` (read from `path`) holds, built as `open` does."""
    device = torch.device(device)
    prefixes = prefixes or allowed_prefixes()
    facts = _facts(state["facts"], path)
    opened = build(state["config"], facts, state["value_range"], device, prefixes,
                   ema=bool(state["ema"]), start_encoder=False)
    _load_run(opened, state, device)
    for net in (*opened.networks.values(), *opened.ema.values()):
        net.eval().requires_grad_(False)
    opened.steps_per_epoch, opened.path = state.get("steps_per_epoch"), path
    return opened


def _load_run(run: Run, state: dict[str, Any], device: torch.device) -> None:
    """Weights, EMA copies (the live weights where the checkpoint kept none), fixed inputs and step
    of a checkpoint into a freshly built `run`: what opening a run and resuming one share."""
    for name, net in run.networks.items():
        unwrap(net).load_state_dict(state["networks"][name])
    for name, net in run.ema.items():
        net.load_state_dict(state["ema"].get(name) or state["networks"][name])
    run.fixed = {name: t.to(device) for name, t in state["fixed"].items()}
    run.step = int(state["step"])


def _facts(stored: dict[str, Any], path: Path | str = "the checkpoint") -> DataFacts:
    known = {f.name for f in fields(DataFacts)}
    if set(stored) - known or "shape" not in stored:
        unknown = ", ".join(sorted(map(str, set(stored) - known))) or "and no shape"
        raise ConfigError(f"{path} holds data facts ganlab does not know ({unknown}); it was changed or written by "
                          "something else. Use an earlier checkpoints/step_*.pt.")
    return DataFacts(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})


def classifier_of(judge: Run, path: str | Path, key: str, facts: DataFacts) -> tuple[nn.Module, str, bool]:
    """The network of `judge`, a classifier run (`key`=`path` as typed), to judge samples of data
    shaped as `facts`, the value range it was trained on, and whether it judges each channel alone
    (a 1-channel classifier of 3-channel data)."""
    if "classifier" not in judge.networks:
        raise ConfigError(f"{key}={path} is not a classifier run's checkpoint (its networks are "
                          f"{sorted(judge.networks)}); train one, e.g. experiment=fashion_classifier_mlp.")
    judged, given = tuple(judge.facts.shape), tuple(facts.shape)
    per_channel = len(given) == 3 and judged == (1, *given[1:]) and given[0] > 1  # Stacked MNIST: a digit a channel
    if judged != given and not per_channel:
        raise ConfigError(f"{key}={path} was trained on data of shape {tuple(judge.facts.shape)}, but this run's "
                          f"data is {tuple(facts.shape)}; train the classifier on the same resolution and channels.")
    return judge.networks["classifier"], judge.value_range, per_channel


def summary(run_dir: str | Path, key: str = "report") -> dict[str, Any]:
    """A run's resolved config, steps per epoch, overrides (None when its checkpoints do not hold
    them) and best.pt record (the metric that keeps it, its best value and step), from its newest
    checkpoint (no networks built)."""
    from ganlab.records.rundir import read_run_id

    found = checkpoint.load_latest(Path(run_dir) / "checkpoints", key=key, run_id=read_run_id(run_dir))
    if found is None:
        return {"config": {}, "steps_per_epoch": None, "step": 0, "overrides": None, "best": None, "choices": {}}
    saved = checkpoint.Saved(found[0])
    return {"config": saved.config, "steps_per_epoch": saved.steps_per_epoch, "step": saved.step,
            "overrides": saved.overrides, "best": saved.best, "choices": saved.choices}


# --- a training run's checkpoint ----------------------------------------------------------------
# optimizer settings that pick kernels (runtime.fused, the device), not what is computed
_KERNEL_CHOICES = ("fused", "foreach", "capturable")


class TrainingState:
    """Everything a training checkpoint holds, and the one writer and reader of its layout: `run`
    (networks, EMA copies, fixed inputs, step, metadata), the optimizers, the data order, and the
    state of the `parts` that keep some (the step's adaptive rule, the maintenance's meter and
    best.pt record), each under its own key in `parts`."""

    def __init__(self, run: Run, optimizers: dict[str, torch.optim.Optimizer], batches, device: torch.device,
                 parts: dict[str, Any] | None = None):
        self.run, self.optimizers, self.batches, self.device = run, optimizers, batches, device
        self.parts = dict(parts or {})
        self.saved_step: int | None = None  # the step of the newest last.pt this run wrote or resumed from

    @property
    def step(self) -> int:
        return self.run.step

    @step.setter
    def step(self, value: int) -> None:
        self.run.step = value

    def state_dict(self) -> dict[str, Any]:
        run = self.run
        state = {"format_version": checkpoint.FORMAT_VERSION, **run.metadata(), "step": run.step,
                 "networks": {name: unwrap(net).state_dict() for name, net in run.networks.items()},
                 "ema": {name: net.state_dict() for name, net in run.ema.items()},
                 "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                 "optimizer_types": {name: _type_name(opt) for name, opt in self.optimizers.items()},
                 "fixed": {name: t.cpu() for name, t in run.fixed.items()},
                 "batches": self.batches.state_dict(), "rng": checkpoint.rng_state(),
                 "objective": run.objective.state_dict()}
        state["parts"] = {name: part.state_dict() for name, part in self.parts.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`; the optimizer settings typed now win over the stored ones."""
        _load_run(self.run, state, self.device)
        for name, opt in self.optimizers.items():
            stored_type = (state.get("optimizer_types") or {}).get(name)
            if stored_type is not None and stored_type != _type_name(opt):
                log.warning("resume: the %s optimizer is now %s (the run used %s): it starts fresh, without the stored "
                            "moments and step counts", name, _type_name(opt), stored_type)
                continue
            typed = [{k: v for k, v in group.items() if k not in ("params", "lr")} for group in opt.param_groups]
            try:
                opt.load_state_dict(state["optimizers"][name])
            except (KeyError, ValueError) as exc:  # a checkpoint from before types were stored: another optimizer
                log.warning("resume: the stored state of the %s optimizer does not fit %s (%s): it starts fresh",
                            name, _type_name(opt), exc)
                continue
            _apply_typed_settings(name, opt, typed)
        self.batches.load_state_dict(state["batches"])
        self.run.objective.load_state_dict(state.get("objective") or {})  # older checkpoints hold none
        for name, part in self.parts.items():  # a checkpoint of format 2 kept their keys at the top level
            part.load_state_dict(state["parts"][name] if "parts" in state else state)
        checkpoint.set_rng_state(state["rng"])
        self.saved_step = self.run.step


def _type_name(optimizer) -> str:
    kind = type(optimizer)
    return f"{kind.__module__}.{kind.__qualname__}"


def _apply_typed_settings(name: str, optimizer, typed: list[dict[str, Any]]) -> None:
    """What the user typed now wins over the optimizer settings stored in the checkpoint
    (`resume=true optimizer.lr=1e-5` must not keep the old rate); each change is logged."""
    for group, wanted in zip(optimizer.param_groups, typed):
        for key, value in wanted.items():
            if key in group and group[key] != value:
                if key not in _KERNEL_CHOICES:  # those follow the device, not the user
                    shown = "lr" if key == "initial_lr" else key
                    log.info("resume: optimizer %s: %s %s -> %s (as typed now)", name, shown, group[key], value)
                group[key] = value
        if group.get("fused") or group.get("capturable"):  # their kernels want the step count on the device
            for param in group["params"]:
                param_state = optimizer.state.get(param, {})
                if torch.is_tensor(param_state.get("step")):
                    param_state["step"] = param_state["step"].to(param.device)
