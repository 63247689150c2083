"""`dataset=digits`: the 1,797 handwritten digits bundled with scikit-learn, so ganlab runs offline."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganlab.data.memory import InMemoryImages, check_memory
from ganlab.errors import ConfigError
from ganlab.trust.registry import buildable


@buildable("dataset")
def load_digits(resolution: int = 32, batch_size: int = 64, value_range: str = "tanh",
                split: str = "all") -> InMemoryImages:
    """The 8x8 scikit-learn digits (values 0..16), upsampled to `resolution` px, with labels 0..9.
    `split`: all, or train / test (every fifth image is test: 1,438 / 359)."""
    from sklearn.datasets import load_digits as sklearn_digits

    if resolution < 8:
        raise ConfigError(f"dataset.resolution={resolution} is below the digits' native 8 px; use 8 or more "
                          "(32 suits the default DCGAN).")
    bunch = sklearn_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    check_memory(len(images), 1, resolution, "digits")
    # Bicubic upsampling keeps strokes smooth; antialias only matters when shrinking.
    images = F.interpolate(images, size=(resolution, resolution), mode="bicubic", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    if split not in ("all", "train", "test"):
        raise ConfigError(f"dataset.split={split!r} is not known for digits; use all, train or test.")
    if split != "all":
        keep = (torch.arange(len(labels)) % 5 == 4) == (split == "test")
        images, labels = images[keep], labels[keep]
    return InMemoryImages(images, labels, batch_size=batch_size, value_range=value_range,
                          class_names=tuple(str(d) for d in range(10)), name="digits")
