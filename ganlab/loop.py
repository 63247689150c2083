"""The generic training loop: run the objective's phases, step optimizers, and keep the run safe.

It knows phases, networks and optimizers by name only; which GAN (or VAE) it trains, and how a
loss is computed, is the objective's business. Maintenance (logging, sample grids, checkpoints,
the NaN guard, Ctrl-C/SIGTERM) happens between steps.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

import ganlab

from ganlab import checkpoint
from ganlab.errors import ConfigError, Interrupted, TrainingDiverged
from ganlab.logging import RunLogger
from ganlab.run import Run, with_calibrated_ema
from ganlab.runtime import HostCopy, Runtime, unwrap
from ganlab.schedule import Schedule

log = logging.getLogger("ganlab")


class Meter:
    """Sums of the per-step statistics since the last log, kept as tensors to avoid GPU syncs."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for key, value in values.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        return {key: (self.sums[key] / self.counts[key]).item() for key in self.sums}

    def synchronise(self, runtime: Runtime) -> None:
        """Average the sums over processes, so every process logs and decides on the same numbers."""
        if not runtime.distributed or not self.sums:
            return
        keys = sorted(self.sums)
        total = runtime.sum(torch.stack([self.sums[k].reshape(()) for k in keys])) / runtime.world_size
        self.sums = dict(zip(keys, total.unbind()))

    def first_diverged(self, limit: float | None) -> tuple[str, float] | None:
        """The first statistic whose mean is NaN, infinite or beyond `limit` in absolute value."""
        if not self.sums:
            return None
        keys = list(self.sums)
        means = torch.stack([self.sums[k].reshape(()) / self.counts[k] for k in keys])
        bad = ~torch.isfinite(means) | ((means.abs() > limit) if limit else torch.zeros_like(means, dtype=torch.bool))
        if not bad.any():  # one device sync for all statistics
            return None
        index = int(bad.nonzero()[0])
        return keys[index], float(means[index])

    def reset(self) -> None:
        self.sums, self.counts = {}, {}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: v.cpu() for k, v in self.sums.items()}, "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
        self.counts = dict(state["counts"])


def train_only(networks: dict[str, nn.Module], trained: str) -> None:
    """Gradients on for the network being trained only: the others' are neither computed nor kept."""
    for name, net in networks.items():
        net.requires_grad_(name == trained)


@contextmanager
def evaluating(networks: dict[str, nn.Module]) -> Iterator[None]:
    modes = {name: net.training for name, net in networks.items()}
    for net in networks.values():
        net.eval()
    try:
        yield
    finally:
        for name, net in networks.items():
            net.train(modes[name])


@torch.no_grad()
def sample_diagnostics(samples: torch.Tensor, diagnose=None) -> dict[str, float]:
    """Mode-collapse signals on the fixed sample batch: mean pairwise distance between samples
    (it falls towards 0 as G collapses), plus the run's judges (toy modes, a classifier) if any."""
    flat = samples.flatten(1).float()
    values = {"diagnostics/diversity": torch.pdist(flat).mean().item() if flat.shape[0] > 1 else 0.0}
    if diagnose is not None:
        values.update({f"diagnostics/{k}": v for k, v in diagnose(samples).items()})
    return values


# optimizer settings that pick kernels (runtime.fused, the device), not what is computed
_KERNEL_CHOICES = ("fused", "foreach", "capturable")


@torch.no_grad()
def update_ema(ema: nn.Module, live: nn.Module, decay: float) -> None:
    for ema_p, live_p in zip(ema.parameters(), live.parameters()):
        ema_p.lerp_(live_p, 1.0 - decay)
    for ema_b, live_b in zip(ema.buffers(), live.buffers()):  # kept in step; recalibrated before use
        ema_b.copy_(live_b)


class Loop:
    """Trains `run` (its objective's networks and EMA copies) with `optimizers` on `batches`."""

    def __init__(self, run: Run, optimizers: dict[str, torch.optim.Optimizer], batches,
                 schedule: Schedule, logger: RunLogger, run_dir: Path, runtime: Runtime, batch_size: int,
                 diagnose: Callable[[torch.Tensor], dict[str, float]] | None = None,
                 evaluation_batches: Callable[[], Iterator[dict[str, torch.Tensor]]] | None = None,
                 measure: Callable[[dict[str, nn.Module], dict[str, torch.Tensor], int], dict[str, float]] | None = None,
                 best: list[tuple[str, bool]] | None = None):
        """`measure(networks, fixed inputs, step)`: metrics of fresh samples every eval_every steps,
        logged as metrics/*; `best` = [(a value, whether higher is better), ...]: what keeps
        checkpoints/best.pt, the first value deciding and the next ones breaking its ties."""
        self.objective, self.optimizers, self.batches = run.objective, optimizers, batches
        self.metadata = run.metadata  # config, data facts, value range: what opens the run without its data
        self.value_range = run.value_range  # how the networks' images map to pixels (grids)
        self.schedule, self.logger, self.runtime, self.device = schedule, logger, runtime, runtime.device
        self.scaler = runtime.scaler()
        self.batch_size, self.diagnose = batch_size, diagnose
        self.evaluation_batches, self.measure, self.best_rule = evaluation_batches, measure, best
        self.best: dict[str, Any] | None = None  # {"value", "step"} of best.pt
        self.ckpt_dir = run_dir / "checkpoints"
        self.networks, self.ema = run.networks, run.ema
        self.fixed = self.objective.fixed_inputs(schedule.sample_count, self.device, self._example(schedule.sample_count))
        self.step = 0
        self._saved_step: int | None = None  # the step of the newest last.pt this run wrote or resumed from
        self.meter = Meter()
        self._stop_signal: int | None = None
        self._gaps: HostCopy | None = None  # the adaptive rule's loss gaps of the last step, on their way to the host
        for optimizer in optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        if schedule.adaptive:
            names = {p.name for p in self.objective.phases}
            for role in ("phase", "rival"):
                if getattr(schedule.adaptive, role) not in names:
                    raise ConfigError(f"schedule.adaptive.{role}={getattr(schedule.adaptive, role)!r} is not a phase of "
                                      f"this objective; its phases are {sorted(names)} (or set phase: null).")

    def _example(self, count: int) -> dict[str, torch.Tensor]:
        """Real samples for the fixed inputs: held-out ones when there are (VAE reconstructions show
        test images), else the training set's first."""
        if self.evaluation_batches is None:
            return self.batches.example(count)
        batch = next(iter(self.evaluation_batches()))
        return {key: value[:count] for key, value in batch.items()}

    # --- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format_version": checkpoint.FORMAT_VERSION,
            **self.metadata(),
            "step": self.step,
            "networks": {name: unwrap(net).state_dict() for name, net in self.networks.items()},
            "ema": {name: net.state_dict() for name, net in self.ema.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "fixed": {name: t.cpu() for name, t in self.fixed.items()},
            "batches": self.batches.state_dict(),
            "meter": self.meter.state_dict(),
            "rng": checkpoint.rng_state(),
            "best": dict(self.best) if self.best else None,
            "adaptive_gaps": self._gaps.values() if self._gaps is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, net in self.networks.items():
            unwrap(net).load_state_dict(state["networks"][name])
        for name, net in self.ema.items():
            net.load_state_dict(state["ema"].get(name) or state["networks"][name])
        for name, opt in self.optimizers.items():
            typed = [{k: v for k, v in group.items() if k not in ("params", "lr")} for group in opt.param_groups]
            opt.load_state_dict(state["optimizers"][name])
            self._apply_typed_settings(name, opt, typed)
        self.fixed = {name: t.to(self.device) for name, t in state["fixed"].items()}
        self.batches.load_state_dict(state["batches"])
        self.meter.load_state_dict(state["meter"], self.device)
        checkpoint.set_rng_state(state["rng"])
        self.best = state.get("best")
        gaps = state.get("adaptive_gaps")
        self._gaps = HostCopy(torch.tensor(gaps)) if gaps is not None else None
        self.step = self._saved_step = int(state["step"])

    def _apply_typed_settings(self, name: str, optimizer, typed: list[dict[str, Any]]) -> None:
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
                    state = optimizer.state.get(param, {})
                    if torch.is_tensor(state.get("step")):
                        state["step"] = state["step"].to(param.device)

    # --- training --------------------------------------------------------------------------
    def run(self) -> int:
        """Train from `self.step` to `schedule.steps`; returns the last step done."""
        with self._signals_saved():
            self._clock, self._images = time.perf_counter(), 0
            first = self.step
            while self.step < self.schedule.steps:
                self._train_step()
                self.step += 1
                if self.step == first + 1:
                    log.info("first step done %.1f s after start-up began", time.perf_counter() - ganlab.STARTED)
                self.logger.advance()
                try:
                    self._maintain()
                except (OSError, RuntimeError) as exc:
                    if not checkpoint.is_disk_full(exc):
                        raise
                    raise checkpoint.disk_full(self.logger.run_dir) from None
                if self.runtime.any(self._stop_signal is not None):  # a signal to one process stops all
                    self._save_last()
                    raise Interrupted(self._stop_signal or signal.SIGTERM, self.step)
        return self.step

    def _train_step(self) -> None:
        self._set_learning_rates()
        self.objective.begin_step(self.step)
        rule = self.schedule.adaptive
        last_gaps = self._gaps.values() if self._gaps is not None else []
        batch, last_loss, gaps = None, {}, []
        for phase in self.objective.phases:
            for repeat in range(phase.repeats):
                batch = self._inputs(phase, batch, reuse=repeat == 0 and phase.name == self.objective.reuses_latent)
                last_loss[phase.name] = self._update(phase, batch)
            if not (rule and rule.phase == phase.name and rule.rival in last_loss):
                continue
            # The adaptive rule, one step late so that the host never waits for the device: extra
            # update k runs while, at the previous step, the phase's loss after its update k still
            # exceeded the rival's by the margin.
            gaps.append(last_loss[phase.name] - last_loss[rule.rival])
            extra = 0
            while extra < min(rule.max_extra, len(last_gaps)) and last_gaps[extra] > rule.margin:
                batch = self._inputs(phase, batch, reuse=False)
                last_loss[phase.name] = self._update(phase, batch)
                gaps.append(last_loss[phase.name] - last_loss[rule.rival])
                extra += 1
            self.meter.add({f"schedule/extra_{phase.name}": torch.tensor(float(extra))})
        if gaps:  # one decision for every process: the gaps averaged over them
            self._gaps = HostCopy(self.runtime.sum(torch.stack(gaps)) / self.runtime.world_size)
        if self.ema:
            beta = self.schedule.ema_beta(self.step, self.batch_size)
            for name, ema in self.ema.items():
                update_ema(ema, self.networks[name], beta)

    def _inputs(self, phase, batch, reuse: bool) -> dict[str, torch.Tensor]:
        """This process's shard of the next global batch (or the last one, for a phase that draws no
        data), with fresh latent codes unless the phase reuses the previous phase's."""
        if phase.uses_data or batch is None:
            batch = {key: self.runtime.shard(value) for key, value in next(self.batches).items()}
        if self.objective.latent_inputs and not reuse:
            codes = self.objective.latent(self.batch_size, device=self.device)
            batch = {**batch, "latent": self.runtime.shard(codes)}
        return batch

    def _update(self, phase, batch) -> torch.Tensor:
        """One optimizer step of `phase` on `batch`; returns the detached loss."""
        if phase.uses_data:
            self._images += self.batch_size
        optimizer = self.optimizers[phase.network]
        train_only(self.networks, phase.network)
        optimizer.zero_grad(set_to_none=True)
        with self.runtime.autocast():
            loss, stats = self.objective.loss(phase.name, batch)
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        self.runtime.average_gradients(self.networks[phase.network])
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        self.objective.after_step(phase.name)
        self.meter.add({f"loss/{phase.name}": loss, **{f"{phase.name}/{k}": v for k, v in stats.items()}})
        return loss.detach()

    def _set_learning_rates(self) -> None:
        factor = self.schedule.lr_factor(self.step)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

    # --- maintenance -----------------------------------------------------------------------
    def _due(self, every: int) -> bool:
        return self.step == self.schedule.steps or (every > 0 and self.step % every == 0)

    def _maintain(self) -> None:
        s = self.schedule
        extra = self._sample() if self._due(s.sample_every) and self.runtime.is_main else {}
        if (self.evaluation_batches is not None or self.measure is not None) and self._due(s.eval_every) \
                and self.runtime.is_main:
            extra.update(self._evaluate())
        if self._due(s.log_every):
            self._log(extra)
        elif extra:
            self.logger.scalars(self.step, extra, progress=False)
        if self._due(s.ckpt_every):
            self._save_last()
        if s.snapshot_every > 0 and self.step % s.snapshot_every == 0:
            self._guard_finite()
            self._save(self.ckpt_dir / f"step_{self.step:06d}.pt")

    def _log(self, extra: dict[str, float]) -> None:
        self._guard_finite()
        values = {**self.meter.means(), **extra}
        self.meter.reset()
        for name, opt in self.optimizers.items():
            values[f"lr/{name}"] = opt.param_groups[0]["lr"]
        elapsed = time.perf_counter() - self._clock
        values["perf/images_per_s"] = self._images / elapsed if elapsed > 0 else 0.0
        self._clock, self._images = time.perf_counter(), 0
        self.logger.scalars(self.step, values)

    def _sample(self) -> dict[str, float]:
        """Save the snapshot grids (the EMA's, and the live networks' beside them as live_*);
        returns the diagnostics of the fixed samples the grids show."""
        networks = self._networks_for_use()
        with evaluating(networks):
            samples = self.objective.samples(self.fixed, networks)
            shown = self.objective.snapshots(self.fixed, networks, samples)
            if self.ema:
                live = self.objective.samples(self.fixed, self.networks)
                shown.update({f"live_{name}": grid for name, grid in
                              self.objective.snapshots(self.fixed, self.networks, live).items()})
        labels, names = self.fixed.get("labels"), tuple(self.metadata()["facts"].get("class_names") or ())
        for name, snapshot in shown.items():
            self.logger.images(self.step, name, snapshot, self.value_range, labels=labels, class_names=names)
        return sample_diagnostics(samples, self.diagnose) if samples is not None else {}

    def _networks_for_use(self) -> dict[str, nn.Module]:
        """The live networks with their EMA copies in place, BatchNorm statistics re-estimated."""
        return with_calibrated_ema(self.objective, self.networks, self.ema, self.fixed, seed=self.step)

    def _evaluate(self) -> dict[str, float]:
        """The objective's held-out evaluation (eval/<name>) and the metrics of fresh samples (metrics/<name>)."""
        networks = self._networks_for_use()
        values: dict[str, float] = {}
        with evaluating(networks):
            if self.evaluation_batches is not None:
                scalars, images = self.objective.evaluate(self.evaluation_batches, networks,
                                                          final=self.step == self.schedule.steps)
                for name, snapshot in images.items():
                    self.logger.images(self.step, name, snapshot, self.value_range)
                values.update({f"eval/{k}": v for k, v in scalars.items()})
            if self.measure is not None:
                measured = self.measure(networks, self.fixed, self.step)
                values.update({f"metrics/{k}": v for k, v in measured.items()})
                self._keep_best(measured)
        return values

    def _keep_best(self, measured: dict[str, float]) -> None:
        """Write checkpoints/best.pt when the chosen metric improves on the best so far; ties on it
        are broken by the rule's next values (25 of 25 toy modes at two steps: the higher quality)."""
        key, higher = self.best_rule[0]
        if key not in measured:
            return
        # larger is better for every entry: values where lower is better enter negated
        score = [measured[name] if up else -measured[name] for name, up in self.best_rule if name in measured]
        best = None if self.best is None else self.best.get("score") or [self.best["value"] * (1 if higher else -1)]
        if best is None or score > best:
            self.best = {"metric": key, "value": float(measured[key]), "step": self.step, "score": score}
            self._save(self.ckpt_dir / checkpoint.BEST)
            log.info("best %s so far: %.5g at step %d (checkpoints/best.pt)", key, measured[key], self.step)

    def _save_last(self) -> None:
        self._guard_finite()
        self._save(self.ckpt_dir / checkpoint.LAST)
        self.logger.flush()

    def _save(self, path: Path) -> None:
        """Write a checkpoint (the main process only), unless a weight or BatchNorm statistic is
        already NaN or infinite."""
        state = self.state_dict()
        bad = checkpoint.first_non_finite(state)
        if bad is not None:
            self._diverged(f"{bad} became NaN or infinite")
        if not self.runtime.is_main:
            return
        if path.name in (checkpoint.LAST, checkpoint.BEST):
            checkpoint.save_atomic(state, path)
            if path.name == checkpoint.LAST:
                self._saved_step = self.step
        else:
            checkpoint.save_periodic(state, self.ckpt_dir, self.step, self.schedule.keep_last)

    def _guard_finite(self) -> None:
        self.meter.synchronise(self.runtime)  # the same numbers, so the same decision, on every process
        bad = self.meter.first_diverged(self.schedule.divergence_limit)
        if bad is not None:
            key, value = bad
            what = "became NaN or infinite" if value != value or abs(value) == float("inf") else \
                f"reached {value:.3g}, beyond schedule.divergence_limit={self.schedule.divergence_limit:g}"
            self._diverged(f"{key} {what}")

    def _diverged(self, what: str) -> None:
        last = self.ckpt_dir / checkpoint.LAST
        kept = (f"The last good checkpoint, {last} (step {self._saved_step}), was kept; resume=true continues "
                "from it." if self._saved_step is not None and last.is_file() else "No checkpoint had been written yet.")
        raise TrainingDiverged(f"{what} at or before step {self.step}. {kept} Lower optimizer.lr, or pick a more "
                               "stable loss (e.g. loss=hinge or loss=wgan_gp).")

    @contextmanager
    def _signals_saved(self) -> Iterator[None]:
        """SIGINT / SIGTERM finish the current step, save last.pt, then raise Interrupted."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum, _frame):
            self._stop_signal = signum
            self.logger.message(f"signal {signum}: finishing step {self.step + 1}, then saving checkpoints/last.pt")

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
