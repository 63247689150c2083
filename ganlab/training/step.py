"""One training step: the objective's phases in order, each `repeats` times (a phase with an
`interval` only every N steps), its optimizer stepped after each update, the learning rates of the
schedule, the adaptive rule's extra updates, then the EMA.

It knows phases, networks and optimizers by name only: which GAN (or VAE) it trains, and how a loss
is computed, is the objective's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.training.runtime import HostCopy, Runtime
from ganlab.training.schedule import Schedule


@dataclass
class Done:
    """What a step did: the statistics of each update (in order) and how many real images it read."""

    records: list[dict[str, torch.Tensor]]
    images: int


def train_only(networks: dict[str, nn.Module], trained: str) -> None:
    """Gradients on for the network being trained only: the others' are neither computed nor kept."""
    for name, net in networks.items():
        net.requires_grad_(name == trained)


@torch.no_grad()
def update_ema(ema: nn.Module, live: nn.Module, decay: float) -> None:
    for ema_p, live_p in zip(ema.parameters(), live.parameters()):
        ema_p.lerp_(live_p, 1.0 - decay)
    for ema_b, live_b in zip(ema.buffers(), live.buffers()):  # kept in step; recalibrated before use
        ema_b.copy_(live_b)


class Step:
    """Runs step `i` of `objective` with `optimizers` on `batches`; keeps `ema` copies of its networks."""

    def __init__(self, objective, optimizers: dict[str, torch.optim.Optimizer], batches, schedule: Schedule,
                 runtime: Runtime, batch_size: int, ema: dict[str, nn.Module]):
        self.objective, self.optimizers, self.batches = objective, optimizers, batches
        self.schedule, self.runtime, self.batch_size, self.ema = schedule, runtime, batch_size, ema
        self.networks = objective.networks
        self.scaler = runtime.scaler()
        self.gaps: HostCopy | None = None  # the adaptive rule's loss gaps of the last step, on their way to the host
        for optimizer in optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        rule = schedule.adaptive
        if rule:
            names = {p.name for p in objective.phases}
            for role in ("phase", "rival"):
                if getattr(rule, role) not in names:
                    raise ConfigError(f"schedule.adaptive.{role}={getattr(rule, role)!r} is not a phase of "
                                      f"this objective; its phases are {sorted(names)} (or set phase: null).")

    def __call__(self, step: int) -> Done:
        self._set_learning_rates(step)
        self.objective.begin_step(step)
        rule = self.schedule.adaptive
        last_gaps = self.gaps.values() if self.gaps is not None else []
        done = Done([], 0)
        batch, last_loss, gaps = None, {}, []
        for phase in self.objective.phases:
            if step % phase.interval:
                continue
            for repeat in range(phase.repeats):
                batch = self._inputs(phase, batch, reuse=repeat == 0 and phase.name == self.objective.reuses_latent)
                last_loss[phase.name] = self._update(phase, batch, done)
            if not (rule and rule.phase == phase.name and rule.rival in last_loss):
                continue
            # One step late, so that the host never waits for the device (see AdaptiveRule).
            gaps.append(last_loss[phase.name] - last_loss[rule.rival])
            extra = rule.extra_updates(last_gaps)
            for _ in range(extra):
                batch = self._inputs(phase, batch, reuse=False)
                last_loss[phase.name] = self._update(phase, batch, done)
                gaps.append(last_loss[phase.name] - last_loss[rule.rival])
            done.records.append({f"schedule/extra_{phase.name}": torch.tensor(float(extra))})
        if gaps:  # one decision for every process: the gaps averaged over them
            self.gaps = HostCopy(self.runtime.sum(torch.stack(gaps)) / self.runtime.world_size)
        if self.ema:
            beta = self.schedule.ema_beta(step, self.batch_size)
            for name, ema in self.ema.items():
                update_ema(ema, self.networks[name], beta)
        return done

    def _inputs(self, phase, batch, reuse: bool) -> dict[str, torch.Tensor]:
        """This process's shard of the next global batch (or the last one, for a phase that draws no
        data), with fresh latent codes unless the phase reuses the previous phase's."""
        if phase.uses_data or batch is None:
            batch = {key: self.runtime.shard(value) for key, value in next(self.batches).items()}
        if self.objective.latent_inputs and not reuse:
            codes = self.objective.latent(self.batch_size, device=self.runtime.device)
            batch = {**batch, "latent": self.runtime.shard(codes)}
        return batch

    def _update(self, phase, batch, done: Done) -> torch.Tensor:
        """One optimizer step of `phase` on `batch`; returns the detached loss."""
        if phase.uses_data:
            done.images += self.batch_size
        optimizer = self.optimizers[phase.network]
        train_only(self.networks, phase.network)
        optimizer.zero_grad(set_to_none=True)
        with self.runtime.autocast():
            loss, stats = self.objective.loss(phase.name, batch)
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        self.runtime.average_gradients(self.networks[phase.network])
        if self.schedule.grad_clip:
            if self.scaler:
                self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.networks[phase.network].parameters(), self.schedule.grad_clip)
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        self.objective.after_step(phase.name)
        # a statistic already named by its family (augment/p) keeps its name; the others go under the phase's
        done.records.append({f"loss/{phase.name}": loss,
                             **{k if "/" in k else f"{phase.name}/{k}": v for k, v in stats.items()}})
        return loss.detach()

    def _set_learning_rates(self, step: int) -> None:
        factor = self.schedule.lr_factor(step)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def state_dict(self) -> dict[str, Any]:
        return {"adaptive_gaps": self.gaps.values() if self.gaps is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        gaps = state.get("adaptive_gaps")
        self.gaps = HostCopy(torch.tensor(gaps)) if gaps is not None else None
