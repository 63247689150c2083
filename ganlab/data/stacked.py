"""`dataset=stacked_mnist`: three MNIST digits drawn independently as the R, G and B channels of one
image, so the set has 1,000 modes (the mode-collapse benchmark of Unrolled GAN, VEEGAN, PacGAN and
R3GAN). Built from the MNIST files (`dataset=mnist`'s), the same images for the same `seed`.
A sample's label is its mode, 100 * red digit + 10 * green + blue; the set counts as unlabelled
(no class conditioning on 1,000 modes); `metrics=[stacked_modes]` measures a run's coverage.
"""

from __future__ import annotations

import torch

from ganlab.data.memory import InMemoryImages
from ganlab.data.mnist import load_mnist
from ganlab.errors import ConfigError
from ganlab.data.memory import stream_seed
from ganlab.trust.registry import buildable

MODES = 1000


@buildable("dataset")
def load_stacked_mnist(root: str = "data", split: str = "train", download: bool = False, resolution: int = 28,
                       batch_size: int = 64, value_range: str = "tanh", size: int | None = None,
                       seed: int = 0) -> InMemoryImages:
    """`size` stacked images (default: as many as the MNIST split holds) of three random digits each."""
    digits = load_mnist(root, split, download, resolution, batch_size=1, value_range=value_range)
    size = len(digits) if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"dataset.size={size!r} must be a positive number of stacked images.")
    generator = torch.Generator().manual_seed(stream_seed(seed, 0 if split == "train" else 1))
    picks = torch.randint(0, len(digits), (size, 3), generator=generator)  # red, green, blue: independent
    images = torch.cat([digits.images[picks[:, c]] for c in range(3)], dim=1).contiguous()
    labels = mode_of(digits.labels[picks])
    return InMemoryImages(images, labels, batch_size=batch_size, value_range=value_range, name="stacked_mnist")


def mode_of(digits: torch.Tensor) -> torch.Tensor:
    """The mode (0..999) of (N, 3) channel digits."""
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
