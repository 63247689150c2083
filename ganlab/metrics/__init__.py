"""Metrics of generated samples, by name: a metric is a small function registered with the
`register` decorator, taking the evaluation's `Inputs` (generated samples, a way to the real
data, the feature networks at hand) and returning named numbers. Adding one is one function.

Families: `classifier` (a ganlab classifier run as feature network: Frechet distance, precision /
recall, class coverage and balance, classifier score, per-class accuracy of conditional models),
`toy` (modes covered, high-quality share, reverse KL on the 2-d mixtures) and `inception` (FID,
KID, IS, precision / recall through torch-fidelity, the `ganlab[metrics]` extra).
"""

from ganlab.metrics.registry import (METRICS, Inputs, Metric, available, direction, known_direction, register,
                                     run_metrics)
from ganlab.metrics import classifier, inception, toys  # noqa: F401  (they register their metrics)

__all__ = ["METRICS", "Inputs", "Metric", "available", "direction", "known_direction", "register", "run_metrics"]
