"""VAEs: `model=vae_mlp` (784-500-z, the Fashion-MNIST report) and `model=vae_conv` (the faces report).

Both encode to (mu, logvar), sample z = mu + sigma * eps (the reparameterisation, so gradients
flow through mu and sigma) and decode to pixels in [0, 1] (sigmoid). The encoder's hidden stack
is called `hidden` in both the MLP VAE and the MLP classifier, so a classifier's trained layers
can start the encoder (`model.encoder_init`, applied by training/run.py through training/transfer.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.trust.registry import buildable


class VAE(nn.Module):
    """Holds `hidden` (encoder body), `mu`, `logvar` and `decoder`; subclasses build them."""

    latent_dim: int
    shape: tuple[int, ...]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.hidden(x)
        return self.mu(features), self.logvar(features)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(z.shape[0], *self.shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation
        return self.decode(z), mu, logvar

    def encoder_body(self) -> nn.Module:
        """The encoder layers a classifier's `hidden` layers can start (`model.encoder_init`)."""
        return self.hidden


@buildable("network")
class MLPVAE(VAE):
    def __init__(self, shape: tuple[int, ...], latent_dim: int = 2, hidden: list[int] = (500,),
                 leaky_slope: float = 0.01, output: str = "sigmoid"):
        super().__init__()
        self.shape, self.latent_dim = tuple(shape), latent_dim
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(self.shape)
        for size in hidden:
            layers += [nn.Linear(features, size), nn.LeakyReLU(leaky_slope, inplace=True)]
            features = size
        self.hidden = nn.Sequential(*layers)
        self.mu, self.logvar = nn.Linear(features, latent_dim), nn.Linear(features, latent_dim)
        decoder: list[nn.Module] = []
        features = latent_dim
        for size in reversed(hidden):
            decoder += [nn.Linear(features, size), nn.LeakyReLU(leaky_slope, inplace=True)]
            features = size
        if output not in ("sigmoid", "none"):
            raise ConfigError(f"model.vae.output={output!r} is not known; use sigmoid or none (the report's "
                              "decoder ends in its Linear layer).")
        self.decoder = nn.Sequential(*decoder, nn.Linear(features, math.prod(self.shape)),
                                     nn.Sigmoid() if output == "sigmoid" else nn.Identity())


@buildable("network")
class ConvVAE(VAE):
    """The faces report's VAE, for any resolution divisible by 8: pairs of 3x3 / 5x5 / 5x5 convs with
    2x2 max pools (widths 128, 256, 512), Linear to mu/logvar, Linear back, three stride-2 deconvs."""

    def __init__(self, resolution: int, channels: int, latent_dim: int = 128, widths: list[int] = (128, 256, 512),
                 kernels: list[int] = (3, 5, 5)):
        super().__init__()
        if len(widths) != len(kernels):
            raise ConfigError(f"model.vae.widths has {len(widths)} entries but kernels has {len(kernels)}; "
                              "give one kernel size per stage.")
        scale = 2 ** len(widths)
        if resolution % scale:
            raise ConfigError(f"dataset.resolution={resolution} is not divisible by {scale}, which vae_conv's "
                              f"{len(widths)} pooling stages need; use e.g. {scale * (resolution // scale or 1)}.")
        self.shape, self.latent_dim = (channels, resolution, resolution), latent_dim
        layers: list[nn.Module] = []
        c_in = channels
        for width, kernel in zip(widths, kernels):
            layers += [nn.Conv2d(c_in, width, kernel, 1, kernel // 2), nn.ReLU(),
                       nn.Conv2d(width, width, kernel, 1, kernel // 2), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = width
        side = resolution // scale
        features = c_in * side * side
        self.hidden = nn.Sequential(*layers, nn.Flatten())
        self.mu, self.logvar = nn.Linear(features, latent_dim), nn.Linear(features, latent_dim)
        deconvs: list[nn.Module] = []
        for i in range(len(widths)):
            last = i == len(widths) - 1
            deconvs += [nn.ConvTranspose2d(c_in, channels if last else c_in, 4, 2, 1), nn.Sigmoid() if last else nn.ReLU()]
        self.decoder = nn.Sequential(nn.Linear(latent_dim, features), nn.Unflatten(1, (c_in, side, side)), *deconvs)
