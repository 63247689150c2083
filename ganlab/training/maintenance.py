"""What happens between training steps: log the step statistics, draw the snapshot grids, evaluate
(held-out data, metrics of fresh samples), keep checkpoints (last.pt, step_*.pt, best.pt) and stop
a run whose numbers are no longer finite. When each is due is the schedule's business."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ganlab.records import checkpoint
from ganlab.records.safe_files import disk_full, is_disk_full
from ganlab.errors import TrainingDiverged
from ganlab.metrics.measurer import Evaluator
from ganlab.training.run import TrainingState
from ganlab.training.runtime import Runtime
from ganlab.training.schedule import Schedule

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
def sample_diagnostics(samples: torch.Tensor, evaluator: Evaluator | None = None) -> dict[str, float]:
    """Mode-collapse signals on the fixed sample batch: mean pairwise distance between samples
    (it falls towards 0 as G collapses), plus the evaluator's judges (toy modes, a classifier)."""
    flat = samples.flatten(1).float()
    values = {"diagnostics/diversity": torch.pdist(flat).mean().item() if flat.shape[0] > 1 else 0.0}
    if evaluator is not None:
        values.update({f"diagnostics/{k}": v for k, v in evaluator.diagnose(samples).items()})
    return values


def best_score(rule: list[tuple[str, bool]], measured: dict[str, float]) -> list[float]:
    """The values of `rule` = [(name, higher is better), ...] as one list where larger is better
    (lower-is-better values negated): compared as a list, the first decides, the next break ties."""
    return [measured[name] if up else -measured[name] for name, up in rule if name in measured]


class MaintenanceState:
    """What the maintenance carries across a resume (its part of the checkpoint): the losses summed
    since the last log step, and best.pt's record."""

    def __init__(self, device: torch.device):
        self.device, self.meter = device, Meter()
        self.best: dict[str, Any] | None = None  # {"metric", "value", "step", "score"} of best.pt

    def state_dict(self) -> dict[str, Any]:
        return {"meter": self.meter.state_dict(), "best": dict(self.best) if self.best else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.meter.load_state_dict(state["meter"], self.device)
        self.best = state.get("best")


class Maintenance:
    """Everything between steps of the training run in `state`; `logger` is where it reports, `kept`
    what it carries across a resume (a part of `state`)."""

    def __init__(self, state: TrainingState, kept: MaintenanceState, schedule: Schedule, runtime: Runtime, logger,
                 evaluator: Evaluator | None, run_dir: Path):
        self.state, self.run, self.schedule, self.runtime = state, state.run, schedule, runtime
        self.logger, self.evaluator, self.ckpt_dir = logger, evaluator, run_dir / "checkpoints"
        self.kept = kept
        self._clock, self._images = time.perf_counter(), 0
        self._unhealthy, self._warned_health = 0, False  # log steps in a row the objective called broken down

    @property
    def meter(self) -> Meter:
        return self.kept.meter

    @property
    def best(self) -> dict[str, Any] | None:
        return self.kept.best

    @best.setter
    def best(self, value: dict[str, Any] | None) -> None:
        self.kept.best = value

    def start(self) -> None:
        """The clock of images per second starts now (not when the run was built)."""
        self._clock, self._images = time.perf_counter(), 0

    def after_step(self, done) -> None:
        """Record step `state.step`'s statistics, then do what is due at it."""
        for record in done.records:
            self.meter.add(record)
        self._images += done.images
        try:
            self._maintain()
        except (OSError, RuntimeError) as exc:
            if not is_disk_full(exc):
                raise
            raise disk_full(getattr(exc, "filename", None) or self.logger.run_dir, trained=True) from None

    def _due(self, every: int) -> bool:
        step = self.state.step
        return step == self.schedule.steps or (every > 0 and step % every == 0)

    def _maintain(self) -> None:
        s, step, main = self.schedule, self.state.step, self.runtime.is_main
        extra = self._draw_grids() if self._due(s.sample_every) and main else {}
        if self.evaluator is not None and self.evaluator.evaluates and self._due(s.eval_every) and main:
            extra.update(self._evaluate())
        if self._due(s.log_every):
            self._log(extra)
        elif extra:
            self.logger.scalars(step, extra, progress=False)
        # The snapshot before last.pt: a kill between the two then leaves last.pt behind the snapshot, and
        # the resume redoes this step and its snapshot (the other order would skip it for good).
        if s.snapshot_every > 0 and step % s.snapshot_every == 0:
            self.guard_finite()
            self._save(self.ckpt_dir / f"step_{step:06d}.pt")
        if self._due(s.ckpt_every):
            self.save_last()

    def _log(self, extra: dict[str, float]) -> None:
        self.guard_finite()
        values = {**self.meter.means(), **extra}
        self.meter.reset()
        self._watch_health(values)
        for name, opt in self.state.optimizers.items():
            values[f"lr/{name}"] = opt.param_groups[0]["lr"]
        elapsed = time.perf_counter() - self._clock
        values["perf/images_per_s"] = self._images / elapsed if elapsed > 0 else 0.0
        self._clock, self._images = time.perf_counter(), 0
        self.logger.scalars(self.state.step, values)

    def _watch_health(self, values: dict[str, float]) -> None:
        """Warn once when the objective says training has broken down; stop after
        `schedule.collapse_patience` log steps of it in a row (when the user set one)."""
        problem = self.run.objective.health(values)
        self._unhealthy = self._unhealthy + 1 if problem else 0
        if problem and self._unhealthy == 1 and not self._warned_health:
            self._warned_health = True
            log.warning("step %d: %s.", self.state.step, problem)
        patience = self.schedule.collapse_patience
        if problem and patience and self._unhealthy >= patience:
            self._diverged(f"training collapsed for {self._unhealthy} log steps in a row "
                           f"(schedule.collapse_patience={patience}): {problem}")

    def _draw_grids(self) -> dict[str, float]:
        """Save the snapshot grids (the EMA's, and the live networks' beside them as live_*);
        returns the diagnostics of the fixed samples the grids show."""
        run, objective = self.run, self.run.objective
        networks = self._networks_for_use()
        with evaluating(networks):
            samples = objective.samples(run.fixed, networks)
            shown = objective.snapshots(run.fixed, networks, samples)
            if run.ema:
                live = objective.samples(run.fixed, run.networks)
                shown.update({f"live_{name}": grid for name, grid in
                              objective.snapshots(run.fixed, run.networks, live).items()})
        labels, names = run.fixed.get("labels"), tuple(run.facts.class_names or ())
        for name, snapshot in shown.items():
            self.logger.images(self.state.step, name, snapshot, run.value_range, labels=labels, class_names=names)
        return sample_diagnostics(samples, self.evaluator) if samples is not None else {}

    def _networks_for_use(self) -> dict[str, nn.Module]:
        """The live networks with their EMA copies in place, BatchNorm statistics re-estimated."""
        return self.run.sampling_networks()  # the run's step is the state's: the same calibration seed

    def _evaluate(self) -> dict[str, float]:
        """The objective's held-out evaluation (eval/<name>) and the metrics of fresh samples (metrics/<name>)."""
        run, evaluator, step = self.run, self.evaluator, self.state.step
        networks = self._networks_for_use()
        values: dict[str, float] = {}
        with evaluating(networks):
            if evaluator.held_out is not None:
                scalars, images = run.objective.evaluate(evaluator.held_out_batches, networks,
                                                         final=step == self.schedule.steps)
                for name, snapshot in images.items():
                    self.logger.images(step, name, snapshot, run.value_range)
                values.update({f"eval/{k}": v for k, v in scalars.items()})
            if evaluator.measures:
                measured = evaluator.measure(networks, run.fixed, step)
                values.update({f"metrics/{k}": v for k, v in measured.items()})
                self.keep_best(measured)
        return values

    def keep_best(self, measured: dict[str, float]) -> None:
        """Write checkpoints/best.pt when the chosen metric improves on the best so far; ties on it
        are broken by the rule's next values (25 of 25 toy modes at two steps: the higher quality)."""
        rule = self.evaluator.best_rule
        key, higher = rule[0]
        if key not in measured:
            return
        score = best_score(rule, measured)
        best = None if self.best is None else self.best.get("score") or [self.best["value"] * (1 if higher else -1)]
        if best is None or score > best:
            self.best = {"metric": key, "value": float(measured[key]), "step": self.state.step, "score": score}
            self._save(self.ckpt_dir / checkpoint.BEST)
            log.info("best %s so far: %.5g at step %d (checkpoints/best.pt)", key, measured[key], self.state.step)

    def save_last(self) -> None:
        self.guard_finite()
        self._save(self.ckpt_dir / checkpoint.LAST)
        self.logger.flush()

    def _save(self, path: Path) -> None:
        """Write a checkpoint (the main process only), unless a weight or BatchNorm statistic is
        already NaN or infinite."""
        state = self.state.state_dict()
        bad = checkpoint.first_non_finite(state)
        if bad is not None:
            self._diverged(f"{bad} became NaN or infinite")
        if not self.runtime.is_main:
            return
        if path.name in (checkpoint.LAST, checkpoint.BEST):
            checkpoint.save_atomic(state, path)
            if path.name == checkpoint.LAST:
                self.state.saved_step = self.state.step
        else:
            checkpoint.save_periodic(state, self.ckpt_dir, self.state.step, self.schedule.keep_last)

    def guard_finite(self) -> None:
        self.meter.synchronise(self.runtime)  # the same numbers, so the same decision, on every process
        bad = self.meter.first_diverged(self.schedule.divergence_limit)
        if bad is not None:
            key, value = bad
            what = "became NaN or infinite" if value != value or abs(value) == float("inf") else \
                f"reached {value:.3g}, beyond schedule.divergence_limit={self.schedule.divergence_limit:g}"
            self._diverged(f"{key} {what}")

    def _diverged(self, what: str) -> None:
        last, saved = self.ckpt_dir / checkpoint.LAST, self.state.saved_step
        kept = (f"The last good checkpoint, {last} (step {saved}), was kept; resume=true continues "
                "from it." if saved is not None and last.is_file() else "No checkpoint had been written yet.")
        raise TrainingDiverged(f"{what} at or before step {self.state.step}. {kept} Lower optimizer.lr, or pick a "
                               "more stable loss (e.g. loss=hinge or loss=wgan_gp).")
