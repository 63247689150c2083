"""`model=resnet`: the residual G and D of WGAN-GP (Gulrajani et al.) and SNGAN (Miyato et al.).

G: Linear to 4x4, `log2(resolution / 4)` up-sampling residual blocks, BN-ReLU-conv3x3-tanh.
D: down-sampling residual blocks (the first one "optimised" as in SNGAN), ReLU, global sum pool,
Linear. D has no BatchNorm, so it suits the gradient penalty; `spectral_norm: true` gives SNGAN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.errors import ConfigError
from ganlab.models.blocks import maybe_spectral, norm_layer
from ganlab.trust.registry import buildable


def _stages(resolution: int) -> int:
    stages = math.log2(resolution / 4) if resolution >= 8 else 0
    if stages != int(stages) or stages < 1:
        raise ConfigError(f"dataset.resolution={resolution}: the resnet model builds 4 * 2**n px images "
                          "(8, 16, 32, 64, 128); pick one of those.")
    return int(stages)


class UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        self.residual = nn.Sequential(
            norm_layer(norm, c_in, "model.generator.norm"), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(c_in, c_out, 3, 1, 1), norm_layer(norm, c_out, "model.generator.norm"), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 1))

    def forward(self, x):
        return self.residual(x) + self.shortcut(x)


class DownBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, spectral: bool, first: bool, down: bool = True):
        super().__init__()
        conv1 = maybe_spectral(nn.Conv2d(c_in, c_out, 3, 1, 1), spectral)
        conv2 = maybe_spectral(nn.Conv2d(c_out, c_out, 3, 1, 1), spectral)
        pool = nn.AvgPool2d(2) if down else nn.Identity()
        # The first block sees raw images: no ReLU before its first conv (SNGAN's optimised block).
        self.residual = nn.Sequential(*([] if first else [nn.ReLU()]), conv1, nn.ReLU(), conv2, pool)
        self.shortcut = nn.Sequential(*([pool, maybe_spectral(nn.Conv2d(c_in, c_out, 1), spectral)] if first
                                        else [maybe_spectral(nn.Conv2d(c_in, c_out, 1), spectral), pool]))

    def forward(self, x):
        return self.residual(x) + self.shortcut(x)


@buildable("network")
class ResNetGenerator(nn.Module):
    def __init__(self, resolution: int, channels: int, latent_dim: int = 128, width: int = 128, norm: str = "batch"):
        super().__init__()
        stages = _stages(resolution)
        self.latent_shape = (latent_dim,)
        self.width = width
        self.linear = nn.Linear(latent_dim, 4 * 4 * width)
        self.blocks = nn.Sequential(*[UpBlock(width, width, norm) for _ in range(stages)])
        self.out = nn.Sequential(norm_layer(norm, width, "model.generator.norm"), nn.ReLU(),
                                 nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.linear(z.flatten(1)).view(z.shape[0], self.width, 4, 4)))


@buildable("network")
class ResNetDiscriminator(nn.Module):
    def __init__(self, resolution: int, channels: int, width: int = 128, spectral_norm: bool = False,
                 outputs: int = 1):
        super().__init__()
        stages = _stages(resolution)
        blocks = [DownBlock(channels, width, spectral_norm, first=True)]
        blocks += [DownBlock(width, width, spectral_norm, first=False, down=i < stages - 2) for i in range(stages)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = maybe_spectral(nn.Linear(width, outputs), spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.linear(features)
