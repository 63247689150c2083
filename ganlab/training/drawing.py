"""Drawing samples from a run: what to draw (latent codes, the labels a conditional model is
asked for, and how a grid lays them out) and the images themselves, in batches. `ganlab sample`
writes them to files; the metrics (`metrics/measuring.py`) measure fresh ones. Its own room: the
sample verb and the metrics both need it, and neither may import the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganlab.training import run as runs
from ganlab.errors import ConfigError
from ganlab.records.plots import to_uint8


@dataclass
class Plan:
    """What to draw: latent codes, their labels, and how a grid shows them."""

    latent: torch.Tensor
    labels: torch.Tensor | None
    columns: int
    row_labels: list[str]


def with_sampling(opened: runs.Run, sampler: str | None, steps: int | None, guidance: float | None,
                  eta: float | None) -> dict | None:
    """Draw with the sampling settings typed now (diffusion and flow runs); returns the protocol
    that draws (sampler, steps, guidance, eta), None for a model that has none."""
    typed = {k: v for k, v in (("sampler", sampler), ("steps", steps), ("guidance", guidance), ("eta", eta))
             if v is not None}
    objective = opened.objective
    if not hasattr(objective, "with_sampling"):
        if typed:
            raise ConfigError(f"{', '.join(f'{k}={v}' for k, v in typed.items())}: sampling settings are for diffusion "
                              f"and flow runs; this run trained a {type(objective).__name__}, which draws in one pass. "
                              "Drop them.")
        return None
    return objective.with_sampling(**typed).describe()


# --- what to draw -------------------------------------------------------------------------------
def plan(opened: runs.Run, n: int, labels, flip, interpolate: int, rng: torch.Generator, grid: bool = True) -> Plan:
    """Grids share one z per column across class rows; files get independent codes."""
    objective, facts = opened.objective, opened.facts
    if (labels is not None or flip) and not objective.conditional:
        raise ConfigError("labels= and flip= are for conditional runs (model=cgan or acgan); this run is not one.")
    if flip:
        return _flip_plan(opened, n, flip, rng)
    if interpolate:
        pairs = max(1, n // interpolate)
        start, end = objective.latent(pairs, rng), objective.latent(pairs, rng)
        if hasattr(objective, "interpolate"):  # start noises: spherical, and only for deterministic samplers
            walks = objective.interpolate(start, end, torch.linspace(0, 1, interpolate))
        else:
            weights = torch.linspace(0, 1, interpolate).view(1, interpolate, *[1] * (start.ndim - 1))
            walks = torch.lerp(start[:, None], end[:, None], weights).flatten(0, 1)
        rows = _class_labels(opened, pairs, labels, rng) if objective.conditional else None
        return Plan(walks, rows.repeat_interleave(interpolate) if rows is not None else None, interpolate,
                    [f"walk {i + 1}" for i in range(pairs)])
    if objective.conditional and facts.num_classes:
        classes = [int(c) for c in (labels if labels is not None else range(facts.num_classes))]
        bad = [c for c in classes if not 0 <= c < facts.num_classes]
        if bad:
            raise ConfigError(f"labels={labels}: {bad} not among this run's {facts.num_classes} classes (0 to "
                              f"{facts.num_classes - 1}).")
        per_class = max(1, math.ceil(n / len(classes)))
        count = per_class * len(classes) if grid else n
        z = objective.latent(per_class, rng) if grid else objective.latent(n, rng)
        z = z.repeat(len(classes), *[1] * (z.ndim - 1))[:count] if grid else z  # grid: one z per column
        names = [facts.class_names[c] if c < len(facts.class_names) else str(c) for c in classes]
        return Plan(z, torch.tensor(classes).repeat_interleave(per_class)[:count], per_class,
                    [f"{c}: {name}" if name != str(c) else name for c, name in zip(classes, names)])
    z = objective.latent(n, rng)
    rows = opened.fixed["labels"].cpu().repeat(math.ceil(n / len(opened.fixed["labels"])), 1)[:n] \
        if objective.conditional else None  # attribute runs: the attribute rows the run showed
    return Plan(z, rows, 8, [])


def _flip_plan(opened: runs.Run, n: int, flip: str, rng: torch.Generator) -> Plan:
    names = list(opened.facts.attribute_names)
    if not names:
        raise ConfigError(f"flip={flip} switches an attribute off and on, but this run is class-conditional (it has "
                          f"{opened.facts.num_classes} classes, no attributes); draw classes with labels=[...].")
    if flip not in names:
        raise ConfigError(f"flip={flip}: this run's attributes are {names or '(none: it is class-conditional)'}; "
                          "pick one of them.")
    columns = max(1, n // 2)
    base = opened.fixed["labels"].cpu().float()
    base = base.repeat(math.ceil(columns / len(base)), 1)[:columns]
    off, on = base.clone(), base.clone()
    off[:, names.index(flip)], on[:, names.index(flip)] = 0.0, 1.0
    z = opened.objective.latent(columns, rng)
    return Plan(torch.cat([z, z]), torch.cat([off, on]), columns, [f"{flip} off", f"{flip} on"])


def _class_labels(opened: runs.Run, count: int, labels, rng: torch.Generator) -> torch.Tensor:
    pool = torch.tensor([int(c) for c in labels]) if labels is not None else torch.arange(opened.facts.num_classes)
    return pool[torch.randint(len(pool), (count,), generator=rng)]


# --- drawing ----------------------------------------------------------------------------------------
@torch.no_grad()
def draw(opened: runs.Run, networks, codes: Plan, start: int, stop: int) -> torch.Tensor:
    device = next(networks[opened.objective.sampler].parameters()).device
    labels = codes.labels[start:stop].to(device) if codes.labels is not None else None
    return opened.objective.decode(networks, codes.latent[start:stop].to(device), labels).float().cpu()


def generate(opened: runs.Run, networks, n: int, rng: torch.Generator, batch_size: int = 500):
    """`n` fresh samples as uint8 images (N, C, H, W), or float points for the 2-d toys, with the labels
    a conditional model was asked for (classes in equal shares)."""
    codes = plan(opened, n, None, None, 0, rng, grid=False)
    batches = [draw(opened, networks, codes, start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    samples = torch.cat(batches)
    if not opened.facts.points:
        samples = to_uint8(samples, opened.value_range)
    return samples, codes.labels
