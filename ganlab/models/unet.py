"""`model.denoiser`: the DDPM / ADM-style UNet that diffusion and flow-matching objectives train.

Ho et al.'s network (their CIFAR-10 model: width 128, channel_mult 1,2,2,2, 2 residual blocks a
level, attention at 16 px, dropout 0.1: 35.7M parameters): a sinusoidal embedding of the time (or
noise level) through a 2-layer MLP, added inside every residual block (GroupNorm, SiLU, 3x3 conv,
dropout); self-attention at the chosen resolutions; stride-2 convs down, nearest + conv up, with
the skip connections of a UNet. A class label, when the data has classes and `class_conditional`,
is embedded and added to the time embedding; the extra index `num_classes` is "no label" (what
classifier-free guidance trains and samples with).

The output has the input's shape: noise, clean image, v or velocity, as the objective asks.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ganlab.errors import ConfigError
from ganlab.trust.registry import buildable


def time_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) times `t` (N,) as (N, dim): Transformer-style
    frequencies from 1 to 1/max_period, sines then cosines."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return F.pad(embedding, (0, dim % 2))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)  # 32 groups as DDPM, fewer for narrow layers


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, embedding: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(in_channels), nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Linear(embedding, out_channels)
        self.norm2, self.dropout = _norm(out_channels), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the pixels of a feature map (DDPM's AttnBlock)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.qkv, self.out = nn.Conv2d(channels, 3 * channels, 1), nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        attended = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.out(attended.transpose(1, 2).reshape(n, c, h, w))


class Level(nn.Module):
    """The residual blocks (each with attention where asked) of one resolution."""

    def __init__(self, blocks: list[ResidualBlock], attention: bool):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attention = nn.ModuleList([Attention(b.conv2.out_channels) for b in blocks]) if attention else None


@buildable("network")
class UNet(nn.Module):
    def __init__(self, resolution: int, channels: int, num_classes: int = 0, width: int = 64,
                 channel_mult: tuple[int, ...] = (1, 2, 2), num_res_blocks: int = 2,
                 attention_resolutions: tuple[int, ...] = (), dropout: float = 0.0, class_conditional: bool = False):
        super().__init__()
        channel_mult, attention_resolutions = tuple(channel_mult), tuple(attention_resolutions)
        if width < 1 or num_res_blocks < 1 or not channel_mult or min(channel_mult) < 1:
            raise ConfigError(f"model.denoiser: width={width}, num_res_blocks={num_res_blocks} and channel_mult="
                              f"{list(channel_mult)} must be positive.")
        if not 0 <= dropout < 1:
            raise ConfigError(f"model.denoiser.dropout={dropout} must be in [0, 1).")
        halvings = len(channel_mult) - 1
        if resolution % 2 ** halvings:
            fits = [m for m in range(1, len(channel_mult) + 1) if resolution % 2 ** (m - 1) == 0][-1]
            raise ConfigError(f"model.denoiser.channel_mult={list(channel_mult)} halves the image {halvings} times, but "
                              f"dataset.resolution={resolution} cannot be halved that often ({resolution} / "
                              f"{2 ** halvings} is not whole). Use at most {fits} multipliers (e.g. "
                              f"model.denoiser.channel_mult={list(channel_mult[:fits])}) or a resolution divisible by "
                              f"{2 ** halvings}.")
        sizes = [resolution // 2 ** i for i in range(len(channel_mult))]
        unknown = [r for r in attention_resolutions if r not in sizes]
        if unknown:
            raise ConfigError(f"model.denoiser.attention_resolutions={list(attention_resolutions)}: {unknown} is not a "
                              f"resolution this UNet works at ({sizes}); pick among those (or [] for none).")
        self.num_classes = num_classes if class_conditional else 0
        if class_conditional and num_classes < 1:
            raise ConfigError("model.denoiser.class_conditional=true, but the data set has no classes; use a data set "
                              "with labels (mnist, fashion_mnist, cifar10) or class_conditional=false.")
        self.width, embedding = width, 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, embedding), nn.SiLU(), nn.Linear(embedding, embedding))
        self.label = nn.Embedding(self.num_classes + 1, embedding) if self.num_classes else None
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        skips, current = [width], width
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for i, mult in enumerate(channel_mult):
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResidualBlock(current, width * mult, embedding, dropout))
                current = width * mult
                skips.append(current)
            self.down.append(Level(blocks, sizes[i] in attention_resolutions))
            last = i == len(channel_mult) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(current, current, 3, stride=2, padding=1))
            if not last:
                skips.append(current)
        self.middle = nn.ModuleList([ResidualBlock(current, current, embedding, dropout), Attention(current),
                                     ResidualBlock(current, current, embedding, dropout)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, mult in reversed(list(enumerate(channel_mult))):
            blocks = []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResidualBlock(current + skips.pop(), width * mult, embedding, dropout))
                current = width * mult
            self.up.append(Level(blocks, sizes[i] in attention_resolutions))
            self.upsample.append(nn.Identity() if i == 0 else nn.Conv2d(current, current, 3, padding=1))
        self.head = nn.Sequential(_norm(current), nn.SiLU(), nn.Conv2d(current, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """`t`: the time of each sample (N,), an integer step or a fraction scaled by the objective;
        `labels`: class indices, `num_classes` meaning none (None: none for all)."""
        emb = self.time_mlp(time_embedding(t, self.width))
        if self.label is not None:
            if labels is None:
                labels = torch.full((len(x),), self.num_classes, device=x.device, dtype=torch.long)
            emb = emb + self.label(labels.long())
        h = self.stem(x)
        skips = [h]
        for level, down in zip(self.down, self.downsample):
            for j, block in enumerate(level.blocks):
                h = block(h, emb)
                if level.attention is not None:
                    h = level.attention[j](h)
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                skips.append(h)
        h = self.middle[2](self.middle[1](self.middle[0](h, emb)), emb)
        for level, up in zip(self.up, self.upsample):
            for j, block in enumerate(level.blocks):
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
                if level.attention is not None:
                    h = level.attention[j](h)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.head(h)
