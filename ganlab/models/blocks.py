"""Building blocks shared by the network families: normalisation, spectral norm, dropout options.

Discriminator variants of the reports (DCGAN, SNGAN, SNGAN with dropout, no-BatchNorm critics)
are the same network with different options here, not separate classes.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.errors import ConfigError

NORMS = ("none", "batch", "layer", "instance")


def norm_layer(kind: str, channels: int, key: str = "norm") -> nn.Module:
    """A 2-d normalisation layer by name; 'layer' normalises over (C, H, W) per sample."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    raise ConfigError(f"{key}={kind!r} is not a normalisation; use one of {', '.join(NORMS)}.")


def maybe_spectral(layer: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


def dcgan_init(module: nn.Module, zero_bias: bool = True) -> None:
    """Radford et al.'s init: conv weights N(0, 0.02), norm scales N(1, 0.02); layer biases zeroed, or
    left at PyTorch's (`zero_bias=False`, as pytorch/examples' weights_init does)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = getattr(module, "parametrizations", None)
        target = weight.weight.original if weight is not None else module.weight
        nn.init.normal_(target, 0.0, 0.02)
        if module.bias is not None and zero_bias:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.InstanceNorm2d)) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def apply_init(network: nn.Module, init: str, key: str = "init") -> None:
    if init in ("dcgan", "examples"):
        network.apply(lambda module: dcgan_init(module, zero_bias=init == "dcgan"))
    elif init != "default":
        raise ConfigError(f"{key}={init!r} is not known; use 'dcgan' (N(0, 0.02), zero biases), 'examples' "
                          "(N(0, 0.02), PyTorch's biases) or 'default' (PyTorch's).")


def count_parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def pyramid(resolution: int, key: str = "dataset.resolution") -> tuple[int, int]:
    """Split a resolution into base * 2**doublings with a 4..7 px base (28 = 7*4, 32 = 4*8, 96 = 6*16)."""
    if resolution <= 0:
        raise ConfigError("this model builds images, but the dataset gives points, not images; use model=mlp "
                          "for the 2-d toys (ring, grid), or an image dataset.")
    for doublings in range(8, 0, -1):
        base, rest = divmod(resolution, 2 ** doublings)
        if rest == 0 and 4 <= base <= 7:
            return base, doublings
    raise ConfigError(f"{key}={resolution}: the DCGAN family builds images of base * 2**n px with a base of "
                      "4 to 7 and n >= 1 (e.g. 28, 32, 64, 96). Pick such a resolution.")


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """PacGAN (Lin et al. 2018): each run of `pack` consecutive samples becomes one, side by side along
    the feature (or channel) axis, so D judges them jointly: (B, C, ...) -> (B / pack, pack * C, ...)."""
    if pack == 1:
        return x
    if x.shape[0] % pack:
        raise ConfigError(f"model.discriminator.pack={pack} needs batches that are a multiple of it; got "
                          f"{x.shape[0]} samples (set dataset.batch_size to a multiple).")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])
