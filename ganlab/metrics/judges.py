"""Classifier-based metrics of generated images: which classes a GAN produces, and how clearly.

A trained classifier run (e.g. `experiment=fashion_classifier_mlp`) is the feature network:
`metrics.classifier=PATH` rebuilds its network from the checkpoint's own config (ganlab/run.py) and judges the
fixed sample batch at every sample step. Logged as diagnostics/*:
  classes_covered   classes that are the top prediction for at least one sample (collapse: few)
  class_entropy     entropy of the predicted class histogram / log(K) (1 = all classes equally often)
  classifier_score  exp(E_x KL(p(y|x) || p(y))), the Inception Score with this classifier
"""

from __future__ import annotations

import torch

from ganlab.metrics.classifier import class_statistics
from ganlab.plots import to_unit


class ClassifierMetrics:
    """`network`: a trained classifier (see `run.open_classifier`); `rescale`: map [-1, 1] samples to
    the [0, 1] pixels it was trained on."""

    def __init__(self, network: torch.nn.Module, rescale: bool):
        self.network, self.rescale = network, rescale

    @torch.no_grad()
    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        images = to_unit(samples, "tanh") if self.rescale else samples
        return class_statistics(torch.softmax(self.network(images), dim=1))[0]
