"""Classifiers: `model=classifier_mlp` (784-500-10, the Fashion-MNIST report) and `model=classifier_cnn`.

The MLP's hidden stack is named `hidden`, like the MLP VAE's encoder, so its trained layers can
start a VAE (`model.encoder_init`), and its checkpoints serve as feature networks for metrics.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.trust.registry import buildable


def _classes(num_classes: int) -> int:
    if num_classes < 2:
        raise ConfigError("a classifier needs a labelled dataset (mnist, fashion_mnist, cifar10, digits, or a "
                          "folder with class subfolders); this one has no classes.")
    return num_classes


class _HiddenThenHead(nn.Module):
    """A classifier as `hidden` layers (its features) and a linear `head` (the class logits)."""

    hidden: nn.Module
    head: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer: the feature space of the classifier-based metrics."""
        return self.hidden(x)


@buildable("network")
class MLPClassifier(_HiddenThenHead):
    def __init__(self, shape: tuple[int, ...], num_classes: int, hidden: list[int] = (500,),
                 leaky_slope: float = 0.01, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(shape)
        for size in hidden:
            layers += [nn.Linear(features, size), nn.LeakyReLU(leaky_slope, inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            features = size
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(features, _classes(num_classes))


@buildable("network")
class CNNClassifier(_HiddenThenHead):
    """Two conv-BN-ReLU-pool stages and a linear head: a quick, strong baseline for 28-32 px images."""

    def __init__(self, channels: int, resolution: int, num_classes: int, width: int = 32, dropout: float = 0.25):
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, 1, 1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(dropout))
        self.head = nn.Linear(2 * width * (resolution // 4) ** 2, _classes(num_classes))
