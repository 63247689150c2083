"""`model=convstack`: G and D written out layer by layer in YAML, for reports that print theirs.

Each layer is `{out, kernel, stride, padding}` (plus `transpose`, `norm`, `output_padding` where
they differ from the default). The last layer's `out` is left out: it is the image channels for
G and the number of logits for D. Hidden layers are followed by normalisation (unless
`norm: false` on that layer) and the activation; G's output goes through tanh. The built network
is checked against the data resolution, so a layer list that does not fit says so at start.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.models.blocks import apply_init, maybe_spectral, norm_layer
from ganlab.trust.registry import buildable


def _stack(layers: list[dict], c_in: int, last_out: int, transpose_default: bool, norm: str, bias: bool,
           activation: nn.Module, spectral: bool, key: str) -> nn.Sequential:
    if not layers:
        raise ConfigError(f"{key}.layers is empty; list at least one layer as {{kernel, stride, padding}}.")
    modules: list[nn.Module] = []
    for i, spec in enumerate(layers):
        spec = dict(spec)
        last = i == len(layers) - 1
        try:
            out = last_out if last else spec.pop("out")
            kernel, stride, padding = spec.pop("kernel"), spec.pop("stride", 1), spec.pop("padding", 0)
        except KeyError as missing:
            raise ConfigError(f"{key}.layers[{i}] lacks {missing}; each layer needs out (except the last), "
                              "kernel, stride and padding.") from None
        transpose = spec.pop("transpose", transpose_default)
        normalise = spec.pop("norm", not last) and norm != "none"
        output_padding = spec.pop("output_padding", 0)
        spec.pop("out", None)
        if spec:
            raise ConfigError(f"{key}.layers[{i}] has unknown keys {sorted(spec)}; use out, kernel, stride, "
                              "padding, output_padding, transpose, norm.")
        if transpose:
            conv = nn.ConvTranspose2d(c_in, out, kernel, stride, padding, output_padding, bias=bias)
        else:
            conv = nn.Conv2d(c_in, out, kernel, stride, padding, bias=bias)
        modules.append(maybe_spectral(conv, spectral))
        if not last:
            if normalise:
                modules.append(norm_layer(norm, out, f"{key}.norm"))
            modules.append(activation)
        c_in = out
    return nn.Sequential(*modules)


def _activation(name: str, slope: float, key: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(slope, inplace=True)
    raise ConfigError(f"{key}.activation={name!r} is not known; use relu or leaky_relu.")


@buildable("network")
class ConvStackGenerator(nn.Module):
    def __init__(self, resolution: int, channels: int, layers: list[dict], latent_dim: int = 100,
                 latent_size: int = 1, norm: str = "batch", activation: str = "relu", leaky_slope: float = 0.2,
                 bias: bool = False, init: str = "dcgan"):
        super().__init__()
        self.latent_shape = (latent_dim, latent_size, latent_size)
        key = "model.generator"
        self.main = nn.Sequential(*_stack(layers, latent_dim, channels, True, norm, bias,
                                          _activation(activation, leaky_slope, key), False, key), nn.Tanh())
        apply_init(self, init, f"{key}.init")
        with torch.no_grad():
            size = self.main.eval()(torch.zeros(1, *self.latent_shape)).shape[-1]
        self.main.train()
        if size != resolution:
            raise ConfigError(f"{key}.layers make {size}x{size} images but dataset.resolution={resolution}; "
                              f"set dataset.resolution={size} or change the layers.")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], *self.latent_shape))


@buildable("network")
class ConvStackDiscriminator(nn.Module):
    def __init__(self, resolution: int, channels: int, layers: list[dict], norm: str = "batch",
                 activation: str = "leaky_relu", leaky_slope: float = 0.2, bias: bool = False,
                 spectral_norm: bool = False, outputs: int = 1, init: str = "dcgan"):
        super().__init__()
        key = "model.discriminator"
        self.main = _stack(layers, channels, outputs, False, norm, bias, _activation(activation, leaky_slope, key),
                           spectral_norm, key)
        apply_init(self, init, f"{key}.init")
        with torch.no_grad():
            out = self.main.eval()(torch.zeros(1, channels, resolution, resolution)).shape
        self.main.train()
        if out[-1] != 1 or out[-2] != 1:
            raise ConfigError(f"{key}.layers reduce {resolution}x{resolution} images to {out[-2]}x{out[-1]}, "
                              "not 1x1; change the last layer's kernel or dataset.resolution.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten(1)
