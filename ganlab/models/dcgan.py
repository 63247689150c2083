"""`model=dcgan`: Radford et al.'s all-convolutional GAN, for any base * 2**n resolution.

G: z -> (base x base) by a transposed conv (`stem: conv`) or a Linear layer (`stem: linear`, the
anime report's variant), then stride-2 transposed convs that halve the width while doubling the
size, then a transposed conv to the image channels and tanh. D mirrors it with stride-2 convs and
ends in `outputs` logits per image (no sigmoid). Kernel 4 (padding 1) or 5 (padding 2, output
padding 1) both double or halve the size exactly.

`bias`: null puts a bias only where no normalisation follows (the usual choice); true or false
force it on or off everywhere, to match a report's printed architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.models.blocks import apply_init, maybe_spectral, norm_layer, pack_samples, pyramid
from ganlab.trust.registry import buildable

PADDING = {4: (1, 0), 5: (2, 1)}  # kernel -> (padding, output padding) of a stride-2 layer


def _padding(kernel: int, key: str) -> tuple[int, int]:
    if kernel not in PADDING:
        raise ConfigError(f"{key}={kernel} is not supported; use 4 (DCGAN) or 5 (the anime report's variant).")
    return PADDING[kernel]


def _bias(bias: bool | None, normalised: bool) -> bool:
    return (not normalised) if bias is None else bool(bias)


@buildable("network")
class DCGANGenerator(nn.Module):
    def __init__(self, resolution: int, channels: int, latent_dim: int = 100, width: int = 64,
                 norm: str = "batch", kernel: int = 4, stem: str = "conv", hidden: list[int] = (),
                 bias: bool | None = None, init: str = "dcgan"):
        super().__init__()
        base, doublings = pyramid(resolution)
        padding, out_padding = _padding(kernel, "model.generator.kernel")
        normed = norm != "none"
        self.latent_shape = (latent_dim,)
        widths = [width * 2 ** i for i in reversed(range(doublings))]  # e.g. 256, 128, 64
        # Optional MLP before the conv part (the ACGAN report's `fc` block).
        mlp: list[nn.Module] = []
        features = latent_dim
        for size in hidden:
            mlp += [nn.Linear(features, size), nn.BatchNorm1d(size), nn.ReLU(inplace=True)]
            features = size
        self.mlp = nn.Sequential(*mlp)
        if stem == "conv":
            self.stem = nn.Sequential(nn.Unflatten(1, (features, 1, 1)),
                                      nn.ConvTranspose2d(features, widths[0], base, 1, 0, bias=_bias(bias, normed)),
                                      norm_layer(norm, widths[0], "model.generator.norm"), nn.ReLU(inplace=True))
        elif stem == "linear":
            self.stem = nn.Sequential(nn.Linear(features, widths[0] * base * base, bias=_bias(bias, normed)),
                                      nn.BatchNorm1d(widths[0] * base * base) if normed else nn.Identity(),
                                      nn.ReLU(inplace=True), nn.Unflatten(1, (widths[0], base, base)))
        else:
            raise ConfigError(f"model.generator.stem={stem!r} is not known; use 'conv' or 'linear'.")
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:]):
            blocks += [nn.ConvTranspose2d(c_in, c_out, kernel, 2, padding, out_padding, bias=_bias(bias, normed)),
                       norm_layer(norm, c_out, "model.generator.norm"), nn.ReLU(inplace=True)]
        blocks += [nn.ConvTranspose2d(widths[-1], channels, kernel, 2, padding, out_padding, bias=_bias(bias, False)),
                   nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)
        apply_init(self, init, "model.generator.init")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(self.mlp(z.flatten(1))))


@buildable("network")
class DCGANDiscriminator(nn.Module):
    """Strided convs to base x base, then one conv (or `head` Linear layers) to the logits. `pack` > 1
    is PacGAN: `pack` samples enter together as one image of pack x channels, a logit per pack."""

    def __init__(self, resolution: int, channels: int, width: int = 64, norm: str = "batch",
                 leaky_slope: float = 0.2, spectral_norm: bool = False, dropout: float = 0.0,
                 kernel: int = 4, head: list[int] = (), bias: bool | None = None, outputs: int = 1,
                 init: str = "dcgan", pack: int = 1):
        super().__init__()
        self.pack = pack
        channels *= pack
        base, doublings = pyramid(resolution)
        padding, _ = _padding(kernel, "model.discriminator.kernel")
        normed = norm != "none"
        widths = [width * 2 ** i for i in range(doublings)]  # e.g. 64, 128, 256
        layers: list[nn.Module] = []
        c_in = channels
        for i, c_out in enumerate(widths):
            first = i == 0  # no normalisation on the input layer, as in DCGAN
            layers.append(maybe_spectral(nn.Conv2d(c_in, c_out, kernel, 2, padding,
                                                   bias=_bias(bias, normed and not first)), spectral_norm))
            if not first:
                layers.append(norm_layer(norm, c_out, "model.discriminator.norm"))
            layers.append(nn.LeakyReLU(leaky_slope, inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            c_in = c_out
        if head:  # the ACGAN report's D: a base x base conv to features, then Linear layers
            layers += [maybe_spectral(nn.Conv2d(c_in, c_in, base, 1, 0, bias=_bias(bias, normed)), spectral_norm),
                       norm_layer(norm, c_in, "model.discriminator.norm"), nn.LeakyReLU(leaky_slope, inplace=True),
                       nn.Flatten()]
            for size in head:
                layers += [maybe_spectral(nn.Linear(c_in, size), spectral_norm),
                           nn.BatchNorm1d(size) if normed else nn.Identity(), nn.LeakyReLU(leaky_slope)]
                c_in = size
            layers.append(maybe_spectral(nn.Linear(c_in, outputs), spectral_norm))
        else:
            layers.append(maybe_spectral(nn.Conv2d(c_in, outputs, base, 1, 0, bias=_bias(bias, False)), spectral_norm))
        self.main = nn.Sequential(*layers)
        apply_init(self, init, "model.discriminator.init")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(pack_samples(x, self.pack)).flatten(1)
