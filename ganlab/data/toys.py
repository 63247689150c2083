"""`dataset=ring` and `dataset=grid`: the standard 2-d mode-collapse benchmarks.

ring: 8 Gaussians (std 0.02) on a circle of radius 2; grid: 25 Gaussians (std 0.05) on a 5x5
grid with spacing 2. Samples are drawn fresh for every batch from a generator seeded by
(seed, batch number), so runs and resumes are exact. Labels are mode indices, so conditional
models can be checked against the mode they were asked for.
"""

from __future__ import annotations

import math

import torch

from ganlab.data.memory import DataFacts
from ganlab.errors import ConfigError
from ganlab.data.memory import stream_seed
from ganlab.trust.registry import buildable


def ring_modes(count: int = 8, radius: float = 2.0) -> torch.Tensor:
    angles = torch.arange(count) * (2 * math.pi / count)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1)


def grid_modes(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    coords = (torch.arange(side) - (side - 1) / 2) * spacing
    return torch.cartesian_prod(coords, coords)


class GaussianMixture:
    """Points around `modes`; `batches()` yields {"image": (N, 2) points, "label": mode index}."""

    def __init__(self, modes: torch.Tensor, std: float, batch_size: int, size: int, name: str):
        if batch_size <= 0 or size <= 0:
            raise ConfigError(f"dataset.batch_size and dataset.size must be positive (got {batch_size}, {size}).")
        self.modes, self.std, self.batch_size, self.size = modes, std, batch_size, size
        self.facts = DataFacts(shape=(2,), num_classes=len(modes),
                               class_names=tuple(f"mode {i}" for i in range(len(modes))))
        self.name = name

    @property
    def batches_per_epoch(self) -> int:  # `size` points make one nominal epoch
        return max(1, self.size // self.batch_size)

    def sample(self, count: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        labels = torch.randint(len(self.modes), (count,), generator=generator)
        points = self.modes[labels] + self.std * torch.randn(count, 2, generator=generator)
        return {"image": points, "label": labels}

    def batches(self, device: torch.device, seed: int) -> "MixtureBatches":
        return MixtureBatches(self, device, seed)

    def mode_coverage(self, points: torch.Tensor) -> dict[str, float]:
        """Mode-collapse diagnostics: modes with at least one sample within 3 std, and the share of
        samples that lie within 3 std of some mode ("high quality")."""
        distances = torch.cdist(points.float().cpu(), self.modes)
        nearest, index = distances.min(dim=1)
        close = nearest < 3 * self.std
        return {"modes_covered": float(index[close].unique().numel()), "high_quality": float(close.float().mean())}


@buildable("dataset")
def load_ring(batch_size: int = 256, size: int = 25_600, std: float = 0.02) -> GaussianMixture:
    return GaussianMixture(ring_modes(), std, batch_size, size, "ring")


@buildable("dataset")
def load_grid(batch_size: int = 256, size: int = 25_600, std: float = 0.05) -> GaussianMixture:
    return GaussianMixture(grid_modes(), std, batch_size, size, "grid")


class MixtureBatches:
    def __init__(self, data: GaussianMixture, device: torch.device, seed: int):
        self.data, self.device, self.seed, self.count = data, device, seed, 0

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.count))
        self.count += 1
        return {k: v.to(self.device) for k, v in self.data.sample(self.data.batch_size, generator).items()}

    def example(self, count: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed - 1)
        return {k: v.to(self.device) for k, v in self.data.sample(count, generator).items()}

    def state_dict(self) -> dict[str, int]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.count = int(state["count"])
