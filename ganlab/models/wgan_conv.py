"""`model=wgan_conv`: the first report's critic and generator (SUTD homework 6).

Three layers each, kernel sizes derived from the image size so the size shrinks (or grows) in
three roughly equal stages: for 28 px the critic uses kernels 10, 10, 10 and the generator
kernels 9, 9, 10 from a 64x3x3 latent. No normalisation, LeakyReLU, a raw critic score.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.trust.registry import buildable


def _kernels(resolution: int) -> tuple[int, int]:
    if resolution < 9:
        raise ConfigError(f"dataset.resolution={resolution} is too small for wgan_conv; use 9 or more (28 as in "
                          "the report).")
    standard = resolution // 3
    return standard, resolution - 2 * standard


@buildable("network")
class WGANConvCritic(nn.Module):
    def __init__(self, resolution: int, channels: int, width: int = 64, leaky_slope: float = 0.2,
                 outputs: int = 1):
        super().__init__()
        standard, final = _kernels(resolution)
        self.main = nn.Sequential(
            nn.Conv2d(channels, width, standard + 1), nn.LeakyReLU(leaky_slope),
            nn.Conv2d(width, width, standard + 1), nn.LeakyReLU(leaky_slope),
            nn.Conv2d(width, outputs, final), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


@buildable("network")
class WGANConvGenerator(nn.Module):
    def __init__(self, resolution: int, channels: int, latent_dim: int = 64, latent_size: int = 3,
                 width: int = 64, leaky_slope: float = 0.01):
        super().__init__()
        standard, final = _kernels(resolution)
        self.latent_shape = (latent_dim, latent_size, latent_size)
        self.main = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, width, standard), nn.LeakyReLU(leaky_slope),
            nn.ConvTranspose2d(width, width, standard), nn.LeakyReLU(leaky_slope),
            nn.ConvTranspose2d(width, channels, final), nn.Tanh())
        size = latent_size + 2 * (standard - 1) + final - 1
        if size != resolution:
            raise ConfigError(f"model.generator.latent_size={latent_size} makes {size} px images, not "
                              f"dataset.resolution={resolution}; use latent_size={resolution - 2 * (standard - 1) - final + 1}.")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], *self.latent_shape))
