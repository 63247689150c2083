"""`model=dcgan`: Radford et al.'s all-convolutional GAN, for any base * 2**n resolution.

G: z -> (base x base) by one transposed conv, then stride-2 transposed convs that halve the
width while doubling the size, then a transposed conv to the image channels and tanh.
D mirrors it with stride-2 convs and ends in one logit per image (no sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.models.blocks import apply_init, check_positive, maybe_spectral, norm_layer, pyramid


class DCGANGenerator(nn.Module):
    def __init__(self, resolution: int, channels: int, latent_dim: int = 100, width: int = 64,
                 norm: str = "batch", init: str = "dcgan"):
        super().__init__()
        check_positive(latent_dim=latent_dim, width=width)
        base, doublings = pyramid(resolution)
        self.latent_shape = (latent_dim, 1, 1)
        widths = [width * 2 ** i for i in reversed(range(doublings))]  # e.g. 256, 128, 64
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], base, 1, 0, bias=norm == "none"),
            norm_layer(norm, widths[0], "model.generator.norm"), nn.ReLU(inplace=True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=norm == "none"),
                       norm_layer(norm, c_out, "model.generator.norm"), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        apply_init(self, init, "model.generator.init")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    def __init__(self, resolution: int, channels: int, width: int = 64, norm: str = "batch",
                 leaky_slope: float = 0.2, spectral_norm: bool = False, dropout: float = 0.0,
                 init: str = "dcgan"):
        super().__init__()
        check_positive(width=width)
        base, doublings = pyramid(resolution)
        widths = [width * 2 ** i for i in range(doublings)]  # e.g. 64, 128, 256
        layers: list[nn.Module] = []
        c_in = channels
        for i, c_out in enumerate(widths):
            layers.append(maybe_spectral(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm == "none" or i == 0),
                                         spectral_norm))
            if i > 0:  # no normalisation on the input layer, as in DCGAN
                layers.append(norm_layer(norm, c_out, "model.discriminator.norm"))
            layers.append(nn.LeakyReLU(leaky_slope, inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout2d(dropout))
            c_in = c_out
        layers.append(maybe_spectral(nn.Conv2d(c_in, 1, base, 1, 0), spectral_norm))
        self.main = nn.Sequential(*layers)
        apply_init(self, init, "model.discriminator.init")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten(1)
