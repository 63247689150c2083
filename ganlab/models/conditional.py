"""Conditioning for any backbone: `model=cgan` (labels in G and D) and `model=acgan` (a class head on D).

The wrappers take the backbone as a partial config (`_partial_: true`) and build it with room for
the condition: G gets `latent_dim + condition_dim` inputs, a cGAN D gets `channels + condition_dim`
input channels (the label as constant maps, as in the MNIST lab), an ACGAN D gets
`1 + condition_dim` outputs (the real/fake logit, then the class or attribute logits).
The condition is a one-hot class vector, or the 0/1 attribute vector for multi-label data.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.errors import ConfigError


def condition_vector(labels: torch.Tensor, condition_dim: int) -> torch.Tensor:
    """One-hot for class indices; attribute vectors pass through as floats."""
    if labels.dtype in (torch.long, torch.int, torch.int32, torch.int64):
        return F.one_hot(labels, condition_dim).float()
    return labels.float()


def join_condition(inputs: torch.Tensor, labels: torch.Tensor, condition_dim: int) -> torch.Tensor:
    """Concatenate the condition to `inputs` along dim 1; for (N, C, H, W) inputs as constant maps."""
    condition = condition_vector(labels, condition_dim)
    if inputs.ndim == 4:
        condition = condition[:, :, None, None].expand(-1, -1, *inputs.shape[2:])
    return torch.cat([inputs, condition], dim=1)


def condition_dim_of(num_classes: int, num_attributes: int, model: str) -> int:
    if num_attributes:
        return num_attributes
    if num_classes:
        return num_classes
    raise ConfigError(f"model={model} needs labels, but this dataset has no classes or attributes; use a "
                      "labelled dataset (mnist, fashion_mnist, cifar10, celeba, folder with class folders).")


def build_backbone(backbone: Callable[..., nn.Module], **facts: Any) -> nn.Module:
    """Call a partial backbone with the facts its constructor takes (the YAML's values win)."""
    target = getattr(backbone, "func", backbone)
    fixed = getattr(backbone, "keywords", {})
    accepted = inspect.signature(target).parameters
    return backbone(**{k: v for k, v in facts.items() if k in accepted and k not in fixed})


class ConditionalGenerator(nn.Module):
    """G(z, labels): the condition is concatenated to z (as extra channels for a spatial latent)."""

    def __init__(self, backbone: Callable[..., nn.Module], shape: tuple[int, ...], latent_dim: int = 100,
                 num_classes: int = 0, num_attributes: int = 0, resolution: int = 0, channels: int = 0):
        super().__init__()
        self.condition_dim = condition_dim_of(num_classes, num_attributes, "cgan/acgan")
        self.net = build_backbone(backbone, latent_dim=latent_dim + self.condition_dim, shape=shape,
                                  resolution=resolution, channels=channels)
        self.latent_shape = (latent_dim, *self.net.latent_shape[1:])

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(join_condition(z.view(z.shape[0], *self.latent_shape), labels, self.condition_dim))


class ConditionalDiscriminator(nn.Module):
    """D(x, labels): the condition enters as constant maps stacked on the image channels."""

    def __init__(self, backbone: Callable[..., nn.Module], shape: tuple[int, ...], num_classes: int = 0,
                 num_attributes: int = 0, resolution: int = 0, channels: int = 0):
        super().__init__()
        self.condition_dim = condition_dim_of(num_classes, num_attributes, "cgan")
        if len(shape) == 3:
            self.net = build_backbone(backbone, channels=channels + self.condition_dim, resolution=resolution,
                                      shape=(channels + self.condition_dim, *shape[1:]))
        else:  # flat samples (MLP): the condition is appended to the features
            self.net = build_backbone(backbone, shape=(shape[0] + self.condition_dim,))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(join_condition(x, labels, self.condition_dim))


class AuxiliaryClassifierDiscriminator(nn.Module):
    """D(x) -> (real/fake logits (N, 1), class or attribute logits (N, condition_dim))."""

    def __init__(self, backbone: Callable[..., nn.Module], shape: tuple[int, ...], num_classes: int = 0,
                 num_attributes: int = 0, resolution: int = 0, channels: int = 0):
        super().__init__()
        self.condition_dim = condition_dim_of(num_classes, num_attributes, "acgan")
        self.net = build_backbone(backbone, outputs=1 + self.condition_dim, shape=shape, resolution=resolution,
                                  channels=channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return logits[:, :1], logits[:, 1:]
