"""The metric registry and what every metric receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ganlab.errors import ConfigError


@dataclass
class Inputs:
    """What an evaluation hands every metric.

    `generated`: N samples as uint8 images (N, C, H, W) or float points (N, 2); `generated_labels`:
    the labels a conditional model was asked for (else None). `real()` gives held-out real samples
    in the same form (and their labels); `real_key` names them for caches. The feature networks
    (`classifier`, `inception_weights`) and the toy `mixture` are None when not at hand.
    """

    generated: torch.Tensor
    generated_labels: torch.Tensor | None
    real: Callable[[], tuple[torch.Tensor, torch.Tensor | None]] | None
    real_key: str
    device: torch.device
    cache_dir: Path
    classifier: Any = None  # metrics.classifier.Judge
    inception_weights: str | None = None
    mixture: Any = None  # data.toys.GaussianMixture
    protocol: dict[str, Any] = field(default_factory=dict)  # filled by metrics: feature networks, real counts
    inception_precision: str = "auto"  # the offline network's pass: auto, fp32 or bf16 (nvidia_inception)


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[[Inputs], dict[str, float]]
    needs: str  # classifier | inception | inception_features | toy | stacked
    higher_is_better: dict[str, bool]  # for each value it returns


METRICS: dict[str, Metric] = {}


def register(name: str, needs: str, higher_is_better: dict[str, bool]):
    """Decorator: `@register("toy", needs="toy", higher_is_better={"modes_covered": True, ...})`."""

    def add(function: Callable[[Inputs], dict[str, float]]):
        METRICS[name] = Metric(name, function, needs, higher_is_better)
        return function

    return add


# Logged values outside the metrics (a held-out evaluation's, a diagnostic's) whose larger value is
# better; every other logged value (losses, MSE) is better when lower, except those without a direction.
HIGHER_IS_BETTER = ("accuracy", "diversity")
NO_DIRECTION = ("kl", "kl_per_dim")  # a VAE's KL: neither lower nor higher is simply better


def known_direction(value_name: str) -> bool | None:
    """Whether a larger `value_name` (a metric's output, e.g. classifier_fd) is better; None when no
    metric returns it."""
    for metric in METRICS.values():
        if value_name in metric.higher_is_better:
            return metric.higher_is_better[value_name]
    return None


def series_direction(series_name: str) -> bool | None:
    """Whether a larger value of any logged series (`metrics/classifier_fd`, `eval/accuracy`,
    `loss/D`) is better; None for a series without a direction (a VAE's KL)."""
    leaf = series_name.rsplit("/", 1)[-1]
    if leaf in NO_DIRECTION:
        return None
    higher = known_direction(leaf)
    return leaf in HIGHER_IS_BETTER if higher is None else higher


def training_plan(names: list[str] | str, best: str | None, has_classifier: bool, is_toy: bool,
                  per_channel: bool) -> tuple[list[str], list[tuple[str, bool]], list[str]]:
    """(the metrics to measure during training, the rule that keeps best.pt as [(value, higher is
    better), ...], the values they log) from `metrics.names` (a list or auto) and `metrics.best`."""
    names = available(has_classifier, False, is_toy, per_channel) if names == "auto" else list(names or [])
    if not names:
        return [], [], []
    check_names(names, "metrics.names")
    values = [k for n in names for k in METRICS[n].higher_is_better]
    if best and best not in values:
        raise ConfigError(f"metrics.best={best} is not measured; the metrics measured give {', '.join(values)}.")
    # metrics.best decides alone; by default the first metric's values in order (ties broken by the next)
    rule = [(best, direction(best))] if best else list(METRICS[names[0]].higher_is_better.items())
    return names, rule, values


def direction(value_name: str) -> bool:
    """`known_direction`, for a name the user chose (metrics.best): an unknown one is a ConfigError."""
    higher = known_direction(value_name)
    if higher is not None:
        return higher
    raise ConfigError(f"metrics.best={value_name!r} is not a value any metric returns; they are "
                      f"{', '.join(sorted(k for m in METRICS.values() for k in m.higher_is_better))}.")


def available(has_classifier: bool, has_inception: bool, is_toy: bool, per_channel: bool = False,
              has_features: bool = False) -> list[str]:
    """What can be computed here and now (`metrics=auto`). `has_inception`: torch-fidelity's weights
    (all Inception metrics); `has_features`: Inception features only (the offline network: no IS);
    `per_channel`: the classifier judges each channel (Stacked MNIST), which only stacked_modes can use."""
    ready = {"classifier": has_classifier and not per_channel, "inception": has_inception,
             "inception_features": has_inception or has_features, "toy": is_toy,
             "stacked": has_classifier and per_channel}
    return [name for name, metric in METRICS.items() if ready[metric.needs]]


def check_names(names: list[str], key: str) -> None:
    """Every name is a metric; a value one returns (class_kl) or a near miss (classifer_fd) is named."""
    import difflib

    unknown = [n for n in names if n not in METRICS]
    if unknown:
        hints = []
        for name in unknown:
            measured_by = [m.name for m in METRICS.values() if name in m.higher_is_better and m.name != name]
            near = difflib.get_close_matches(str(name), list(METRICS), n=1)
            if measured_by:
                hints.append(f"{name} is a value the metric {' / '.join(measured_by)} logs: name that metric")
            elif near:
                hints.append(f"{name}: did you mean {near[0]}?")
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise ConfigError(f"{key}: {unknown} are not metrics{hint}; the metrics are {', '.join(METRICS)}.")


def run_metrics(names: list[str], inputs: Inputs) -> dict[str, float]:
    """Compute each named metric; a metric whose feature network is missing says which key sets it."""
    check_names(names, "metrics")
    inputs.protocol["requested"] = list(names)
    values: dict[str, float] = {}
    for name in names:
        metric = METRICS[name]
        missing = {"classifier": inputs.classifier is None, "toy": inputs.mixture is None,
                   "inception": False, "inception_features": False, "stacked": False}[metric.needs]
        if missing:
            fix = "classifier=PATH (metrics.classifier=PATH in training), a classifier run's checkpoint" \
                if metric.needs == "classifier" else "a 2-d toy run (dataset=ring or grid)"
            raise ConfigError(f"metric {name} needs {fix}.")
        values.update(metric.compute(inputs))
    return values
