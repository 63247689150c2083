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
from ganlab.trust.registry import buildable


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


@buildable("network")
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


@buildable("network")
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


@buildable("network")
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


# --- the projection cGAN (Miyato & Koyama 2018): cBN in G, projection in D ------------------------
class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine, then a gain and bias per class (or a linear map of the
    attribute vector): gains start at 1 and biases at 0, so it begins as plain BatchNorm."""

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, condition_dim: int):
        super().__init__()
        features = norm.num_features
        self.norm = type(norm)(features, eps=norm.eps, momentum=norm.momentum, affine=False)
        self.gain = nn.Linear(condition_dim, features, bias=False)
        self.bias = nn.Linear(condition_dim, features, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)
        self.condition: torch.Tensor | None = None  # set by the generator for each forward pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], -1, *[1] * (x.ndim - 2))
        gain, bias = 1 + self.gain(self.condition), self.bias(self.condition)
        return self.norm(x) * gain.view(shape) + bias.view(shape)


@buildable("network")
class ConditionalBatchNormGenerator(nn.Module):
    """G(z, labels) for the projection cGAN: the backbone's BatchNorm layers become conditional
    (`ConditionalBatchNorm`); z enters the backbone unchanged."""

    def __init__(self, backbone: Callable[..., nn.Module], shape: tuple[int, ...], latent_dim: int = 100,
                 num_classes: int = 0, num_attributes: int = 0, resolution: int = 0, channels: int = 0):
        super().__init__()
        self.condition_dim = condition_dim_of(num_classes, num_attributes, "cgan_pd")
        self.net = build_backbone(backbone, latent_dim=latent_dim, shape=shape, resolution=resolution,
                                  channels=channels)
        self.norms = _conditional_norms(self.net, self.condition_dim)
        if not self.norms:
            raise ConfigError("model=cgan_pd conditions G through its BatchNorm layers, but this backbone has none; "
                              "keep model.generator.backbone.norm=batch.")
        self.latent_shape = self.net.latent_shape

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        condition = condition_vector(labels, self.condition_dim)
        for norm in self.norms:
            norm.condition = condition
        try:
            return self.net(z)
        finally:
            for norm in self.norms:
                norm.condition = None


def _conditional_norms(net: nn.Module, condition_dim: int) -> list[ConditionalBatchNorm]:
    """Replace every BatchNorm of `net` in place by a ConditionalBatchNorm; returns them."""
    made = []
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                conditional = ConditionalBatchNorm(child, condition_dim)
                setattr(parent, name, conditional)
                made.append(conditional)
    return made


@buildable("network")
class ProjectionDiscriminator(nn.Module):
    """D(x, labels) = psi(phi(x)) + <embed(labels), phi(x)>: the backbone gives `features` outputs,
    phi their ReLU, psi a linear head, embed a spectrally normalised map of the condition."""

    def __init__(self, backbone: Callable[..., nn.Module], shape: tuple[int, ...], num_classes: int = 0,
                 num_attributes: int = 0, resolution: int = 0, channels: int = 0, features: int = 128,
                 spectral_norm: bool = True):
        super().__init__()
        self.condition_dim = condition_dim_of(num_classes, num_attributes, "cgan_pd")
        self.net = build_backbone(backbone, outputs=features, shape=shape, resolution=resolution, channels=channels)
        self.psi = nn.Linear(features, 1)
        self.embed = nn.Linear(self.condition_dim, features, bias=False)
        if spectral_norm:
            self.psi = nn.utils.parametrizations.spectral_norm(self.psi)
            self.embed = nn.utils.parametrizations.spectral_norm(self.embed)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        phi = F.relu(self.net(x).flatten(1))
        projection = (self.embed(condition_vector(labels, self.condition_dim)) * phi).sum(dim=1, keepdim=True)
        return self.psi(phi) + projection
