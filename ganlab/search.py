"""Sweeps that search: what `ganlab train` returns to a Hydra sweeper, so that Optuna's
(`hydra/sweeper=optuna`, the `ganlab[optuna]` extra) optimises a run's metric.

The value is the best value, over the run's measurements (`schedule.eval_every`), of the metric
that keeps best.pt: `metrics.best`, else the first value of the first of `metrics.names`. A run
that diverged returns the worst value (+inf when lower is better, -inf when higher is), never NaN,
which stops Optuna's sweeper. The sweeper's direction follows the metric unless it is typed.
"""

from __future__ import annotations

import math
from typing import Any

from ganlab.errors import ConfigError


def uses_optuna(overrides: list[str]) -> bool:
    return any(o.replace(" ", "") in ("hydra/sweeper=optuna",) for o in overrides)


def metric_direction(metrics: dict[str, Any]) -> tuple[str, bool]:
    """(the metric a sweep optimises, whether higher is better), from the `metrics` settings."""
    from ganlab.metrics.registry import METRICS, direction

    best, names = metrics.get("best"), metrics.get("names")
    if best:
        return str(best), direction(str(best))
    if isinstance(names, (list, tuple)) and names and names[0] in METRICS:
        name, higher = next(iter(METRICS[names[0]].higher_is_better.items()))
        return name, higher
    raise ConfigError("an Optuna sweep optimises a metric measured during training: name it, e.g. "
                      "metrics.names=[classifier_fd] metrics.classifier=PATH schedule.eval_every=500 (or "
                      "metrics.names=[toy] on the 2-d toys), or metrics.best=NAME.")


def with_direction(overrides: list[str]) -> list[str]:
    """An Optuna sweep's overrides with `hydra.sweeper.direction` from the metric, unless typed."""
    if not uses_optuna(overrides) or any(o.startswith("hydra.sweeper.direction=") for o in overrides):
        return overrides
    from ganlab.paths import compose

    settings = [o for o in overrides if o.split("=", 1)[0].lstrip("+~").startswith(("metrics.", "experiment"))]
    from omegaconf import OmegaConf

    try:
        metrics = OmegaConf.to_container(compose(settings).metrics, resolve=True)
    except Exception as exc:  # noqa: BLE001 - a preset outside ganlab's configs, a bad value: Hydra raises several kinds
        raise ConfigError(f"could not tell which way the Optuna sweep should optimise from {', '.join(settings)} "
                          f"({str(exc).splitlines()[0]}); type it: hydra.sweeper.direction=minimize (or maximize).") \
            from None
    _, higher = metric_direction(metrics)
    return [*overrides, f"hydra.sweeper.direction={'maximize' if higher else 'minimize'}"]


def objective_value(best: dict[str, Any] | None, higher: bool | None) -> float | None:
    """The run's value for the sweeper: the best measured value; None when nothing was measured."""
    if best is None or "value" not in best:
        return None
    value = float(best["value"])
    return worst(bool(higher)) if math.isnan(value) else value


def worst(higher: bool) -> float:
    return -math.inf if higher else math.inf
