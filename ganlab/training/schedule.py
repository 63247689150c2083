"""How long to train and how often to do maintenance: the `schedule` group as a dataclass."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from ganlab.errors import ConfigError


@dataclass(frozen=True)
class AdaptiveRule:
    """Extra updates of `phase` while its loss exceeds `rival`'s by `margin`, at most `max_extra` a step."""

    phase: str
    rival: str = "D"
    margin: float = 1.0
    max_extra: int = 3

    def extra_updates(self, last_gaps: list[float]) -> int:
        """How many extra updates of `phase` to run now, from the gaps (phase loss minus rival loss)
        after each update of `phase` at the previous step: extra update k runs while the gap after
        update k still exceeded the margin. One step late, so that the host never waits for the device."""
        extra = 0
        while extra < min(self.max_extra, len(last_gaps)) and last_gaps[extra] > self.margin:
            extra += 1
        return extra


@dataclass
class Schedule:
    """How long to train and how often to do maintenance, counted in steps (all phases once)."""

    steps: int
    log_every: int = 50
    sample_every: int = 500  # and at the end; 0 = the final grid only
    ckpt_every: int = 500
    snapshot_every: int = 0  # periodic checkpoints/step_XXXXXX.pt beside last.pt; 0 = none
    keep_last: int = 3  # how many periodic checkpoints to keep
    ema_decay: float = 0.0  # EMA of the objective's ema_networks (the generator) per step at this batch size; 0 = off
    ema_kimg: float | None = None  # or its half-life in thousands of images (StyleGAN2-ADA); wins over ema_decay
    ema_rampup: float | None = 0.05  # warm-up: the half-life is at most this fraction of the images seen
    sample_count: int = 64  # size of the fixed sample batch
    lr_decay: str = "none"  # none, or linear: to 0 at the last step, from lr_decay_start * steps on
    lr_decay_start: float = 0.0
    adaptive: AdaptiveRule | dict[str, Any] | None = None  # see configs/schedule; phase null = off
    eval_every: int = 0  # evaluate on held-out data every N steps (and at the end); 0 = at the end only
    divergence_limit: float | None = 1.0e6  # a logged loss or statistic (D's logits) beyond this diverged
    collapse_patience: int | None = None  # stop (exit 3) after this many log steps in a row of a collapse
    warmup_steps: int = 0  # learning rates rise linearly from 0 over the first N steps (DDPM: 5000)
    grad_clip: float | None = None  # clip each update's gradient norm to this (DDPM: 1.0); null = off

    def __post_init__(self):
        if self.lr_decay not in ("none", "linear"):
            raise ConfigError(f"schedule.lr_decay={self.lr_decay!r} is not known; use none or linear.")
        if not 0 <= self.lr_decay_start < 1:
            raise ConfigError(f"schedule.lr_decay_start={self.lr_decay_start} must be in [0, 1); "
                              "it is the fraction of steps trained at the full rate.")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"schedule.warmup_steps={self.warmup_steps!r} must be a whole number >= 0 (0 = off).")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"schedule.grad_clip={self.grad_clip} must be positive (e.g. 1.0), or null for none.")
        if not isinstance(self.adaptive, (dict, AdaptiveRule, type(None))):
            raise ConfigError(f"schedule.adaptive={self.adaptive!r} is a group of settings, not a switch; turn the rule "
                              "on with schedule.adaptive.phase=G (and schedule.adaptive.rival, margin, max_extra).")
        if isinstance(self.adaptive, dict):
            self.adaptive = AdaptiveRule(**self.adaptive) if self.adaptive.get("phase") is not None else None

    @property
    def uses_ema(self) -> bool:
        return self.ema_decay > 0 or bool(self.ema_kimg)

    def ema_beta(self, step: int, batch_size: int) -> float:
        """The EMA's decay for the update after `step` steps of `batch_size` images: a half-life in
        images, so it does not change with the batch size, capped during warm-up so that the EMA of
        a young G is not the random initial one."""
        half_life = self.ema_kimg * 1000 if self.ema_kimg else batch_size * math.log(0.5) / math.log(self.ema_decay)
        if self.ema_rampup:
            half_life = min(half_life, (step + 1) * batch_size * self.ema_rampup)
        return 0.5 ** (batch_size / max(half_life, 1e-8))

    def lr_factor(self, step: int) -> float:
        """Multiplier of every base learning rate at `step` (0-based, before the step runs)."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        start = self.lr_decay_start * self.steps
        if self.lr_decay == "none" or step < start:
            return warm
        return warm * max(0.0, 1.0 - (step - start) / max(1.0, self.steps - start))


def schedule_from(settings: dict[str, Any], batches_per_epoch: int, batches_per_step: int) -> Schedule:
    """The `schedule` group's settings (plain values) as a Schedule: `epochs` become steps, and
    eval_every defaults to once per epoch. Keys no Schedule field reads (n_critic, g_steps: the
    objective's) are left out."""
    known = {f.name for f in fields(Schedule)}
    kept = {k: v for k, v in settings.items() if k in known}
    if settings.get("epochs"):
        kept["steps"] = max(1, math.ceil(settings["epochs"] * batches_per_epoch / batches_per_step))
    if kept.get("eval_every") is None:  # default: once per epoch
        kept["eval_every"] = max(1, batches_per_epoch // batches_per_step)
    return Schedule(**kept)


def schedule_keys() -> set[str]:
    """The keys a config's `schedule` node may hold: the Schedule's fields and what `schedule_from` reads."""
    from dataclasses import fields

    return {f.name for f in fields(Schedule)} | {"epochs", "n_critic", "g_steps"}
