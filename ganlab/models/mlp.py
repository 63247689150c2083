"""`model=mlp`: fully-connected G and D (the reports' FC GAN / FC WGAN) for any data shape."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.errors import ConfigError
from ganlab.models.blocks import maybe_spectral, pack_samples
from ganlab.trust.registry import buildable


@buildable("network")
class MLPGenerator(nn.Module):
    """z -> hidden layers -> one sample of `shape`; tanh output for images, linear for points.

    `categories` > 0 makes the latent a mixture: the argmax of z's first `categories` coordinates
    picks one of that many equally likely categories, fed beside z as a one-hot of height
    `category_scale` (a categorical code as in InfoGAN, read off z so that drawing z is unchanged).
    A continuous map of one Gaussian must pass through the space between separated modes, and the
    samples on that path are the "bridges" of the 2-d toys; with categories G can give each its own
    mode. More categories than modes is fine: several land on one mode."""

    def __init__(self, shape: tuple[int, ...], latent_dim: int = 64, hidden: list[int] = (256, 256),
                 batch_norm: bool = False, leaky_slope: float = 0.2, categories: int = 0,
                 category_scale: float = 3.0):
        super().__init__()
        if not 0 <= categories <= latent_dim:
            raise ConfigError(f"model.generator.categories={categories} must be between 0 (off) and "
                              f"model.generator.latent_dim ({latent_dim}): the categories are read off z's "
                              "first coordinates.")
        self.shape = tuple(shape)
        self.latent_shape = (latent_dim,)
        self.categories, self.category_scale = categories, category_scale
        layers: list[nn.Module] = []
        features = latent_dim + categories
        for size in hidden:
            layers += [nn.Linear(features, size), nn.BatchNorm1d(size) if batch_norm else nn.Identity(),
                       nn.LeakyReLU(leaky_slope, inplace=True)]
            features = size
        layers.append(nn.Linear(features, math.prod(self.shape)))
        if len(self.shape) == 3:  # images live in [-1, 1]
            layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.flatten(1)
        if self.categories:
            picked = z[:, :self.categories].argmax(1)
            z = torch.cat([z, self.category_scale * F.one_hot(picked, self.categories).to(z.dtype)], 1)
        return self.main(z).view(z.shape[0], *self.shape)


@buildable("network")
class MLPDiscriminator(nn.Module):
    """x -> hidden layers -> logits. `pack` > 1 is PacGAN: D judges `pack` samples at once (their
    features side by side), which penalises a G whose samples look alike; a batch then gives
    batch / pack logits, so the batch size must be a multiple of `pack`. `per_sample` > 0: the first
    that many hidden layers see one sample at a time (weights shared across the pack) before the
    pack's features are joined, so D keeps a full-width detector per sample instead of splitting
    its first layer between the pack's members."""

    def __init__(self, shape: tuple[int, ...], hidden: list[int] = (256, 256), leaky_slope: float = 0.2,
                 dropout: float = 0.0, spectral_norm: bool = False, outputs: int = 1, pack: int = 1,
                 per_sample: int = 0):
        super().__init__()
        if not 0 <= per_sample <= len(hidden):
            raise ConfigError(f"model.discriminator.per_sample={per_sample} must be between 0 and the number of "
                              f"hidden layers ({len(hidden)}).")
        self.pack = pack
        features = math.prod(shape)

        def hidden_layers(sizes: list[int]) -> list[nn.Module]:
            nonlocal features
            layers: list[nn.Module] = []
            for size in sizes:
                layers += [maybe_spectral(nn.Linear(features, size), spectral_norm),
                           nn.LeakyReLU(leaky_slope, inplace=True)]
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
                features = size
            return layers

        self.each = nn.Sequential(nn.Flatten(), *hidden_layers(list(hidden[:per_sample])))
        features *= pack
        layers = [nn.Flatten(), *hidden_layers(list(hidden[per_sample:]))]
        layers.append(maybe_spectral(nn.Linear(features, outputs), spectral_norm))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(pack_samples(self.each(x), self.pack))
