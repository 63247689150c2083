"""Small image sets held in memory as uint8 tensors and batched by index, with no DataLoader.

Keeping uint8 (4x smaller than float) and moving the whole set to the training device once makes
a batch a single gather plus a scale to [-1, 1]: no workers, no per-item Python, no host copies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from ganlab.errors import ConfigError

log = logging.getLogger("ganlab")
SUBSET_STREAM = 10**6  # the random stream of dataset.limit's subset, apart from the epochs' (0, 1, 2, ...)


def stream_seed(seed: int, index: int) -> int:
    """The seed of the index-th separate random stream of a run seeded with `seed` (epoch orders,
    toy batches, measurements): far apart for neighbouring seeds, the same on every machine."""
    return seed * 1_000_003 + index


@dataclass(frozen=True)
class DataFacts:
    """What a model needs to know about its data; passed to network constructors by name.

    `shape` is one sample's shape: (C, H, W) for images, (2,) for the 2-d toys. Labels are class
    indices when `num_classes` > 0, or 0/1 attribute vectors when `num_attributes` > 0.
    """

    shape: tuple[int, ...]
    resolution: int = 0
    channels: int = 0
    num_classes: int = 0
    class_names: tuple[str, ...] = field(default_factory=tuple)
    num_attributes: int = 0
    attribute_names: tuple[str, ...] = field(default_factory=tuple)

    @property
    def points(self) -> bool:
        """Samples are points (the 2-d toys), not images: the one test of "is this a toy"."""
        return len(self.shape) == 1


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def check_memory(count: int, channels: int, resolution: int, name: str) -> None:
    """Refuse, in one paragraph naming the memory it needs, a resolution whose images this machine
    cannot resize and hold (instead of an allocator error minutes later)."""
    needed = count * channels * resolution * resolution * 5  # the float32 pass and the uint8 result
    free = available_memory()
    if free is not None and needed > 0.8 * free:
        raise ConfigError(f"dataset.resolution={resolution}: {count:,} {name} images of {channels}x{resolution}x"
                          f"{resolution} need {needed / 2**30:.1f} GiB of memory to resize and hold, and "
                          f"{free / 2**30:.1f} GiB are available. Lower dataset.resolution (the models are built for "
                          "it), or train on fewer images with dataset.limit=N.")


def resized(images: torch.Tensor, resolution: int, mode: str, name: str) -> torch.Tensor:
    """uint8 `images` (N, C, H, W) resized to `resolution` px, once memory is known to hold them."""
    check_memory(images.shape[0], images.shape[1], resolution, name)
    smooth = {"antialias": True} if mode == "bilinear" else {}
    return F.interpolate(images.float(), size=(resolution, resolution), mode=mode, align_corners=False,
                         **smooth).round().clamp(0, 255).to(torch.uint8)


def check_batch_size(batch_size: int, count: int, name: str) -> None:
    """Batches drop the ragged end, so a batch larger than the set would never come."""
    if batch_size > count:
        raise ConfigError(f"dataset.batch_size={batch_size} is larger than the {count} images of {name}; "
                          f"set dataset.batch_size to at most {count}.")


def pixels_to_float(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """uint8 pixels to floats in [-1, 1] ("tanh") or [0, 1] ("unit"), on the images' device."""
    x = images.float().div_(255.0)
    return x.mul_(2.0).sub_(1.0) if value_range == "tanh" else x


def with_attributes(data, names: tuple[str, ...]):
    """Mark `data`'s labels as 0/1 attribute vectors with these names (multi-label, as CelebA)."""
    data.facts = replace(data.facts, num_classes=0, class_names=(), num_attributes=len(names),
                         attribute_names=tuple(names))
    return data


class InMemoryImages:
    """uint8 images (N, C, H, W) and integer labels; batches come out as floats in [-1, 1] or [0, 1]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, *, batch_size: int,
                 class_names: tuple[str, ...] = (), value_range: str = "tanh", name: str = "dataset"):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 images of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        check_batch_size(batch_size, images.shape[0], name)
        if value_range not in ("tanh", "unit"):
            raise ConfigError(f"dataset.value_range={value_range!r} is not known; use 'tanh' ([-1, 1], for GANs) "
                              "or 'unit' ([0, 1], for a BCE reconstruction loss).")
        self.images = images
        self.labels = labels if labels is not None else torch.zeros(images.shape[0], dtype=torch.long)
        self.name = name
        self.batch_size = batch_size
        self.value_range = value_range
        num_classes = len(class_names) if class_names else 0
        self.facts = DataFacts(shape=tuple(images.shape[1:]), resolution=images.shape[-1],
                               channels=images.shape[1], num_classes=num_classes, class_names=tuple(class_names))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def batches_per_epoch(self) -> int:
        return len(self) // self.batch_size

    def ordered_batches(self, device: torch.device, batch_size: int = 256):
        """One pass over the whole set in order (for evaluation)."""
        for start in range(0, len(self), batch_size):
            yield {"image": self.to_float(self.images[start:start + batch_size].to(device)),
                   "label": self.labels[start:start + batch_size].to(device)}

    def batches(self, device: torch.device, seed: int) -> "IndexBatches":
        return IndexBatches(self, device, seed)

    def to_float(self, images: torch.Tensor) -> torch.Tensor:
        return pixels_to_float(images, self.value_range)


def split_limit(node: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """(the dataset node without `limit`, the limit): the loaders never see it; `limited` applies it."""
    node = dict(node)
    return node, node.pop("limit", None)


def limited(data, limit: int | None, seed: int):
    """`dataset.limit=N`: the set cut to a fixed subset of N images drawn with `seed` (the same subset
    on every resume), in equal shares per class when it is labelled; None keeps every image."""
    if limit is None:
        return data
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"dataset.limit={limit!r} must be a positive number of images (null: all of them).")
    if not isinstance(data, InMemoryImages):
        raise ConfigError(f"dataset.limit works on sets held in memory; {data.name} streams its images (set "
                          "dataset.in_memory=true, or point the folder at the images to keep).")
    if limit >= len(data):
        log.info("dataset.limit=%d: the set has only %s images; training on all of them", limit, f"{len(data):,}")
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(stream_seed(seed, SUBSET_STREAM)))
    classes = data.facts.num_classes
    if classes:  # the first images of each class in that order, `limit // classes` each (the rest to the first)
        labels = data.labels[order]
        shares = [limit // classes + (c < limit % classes) for c in range(classes)]
        kept = torch.cat([order[labels == c][:shares[c]] for c in range(classes)])
    else:
        kept = order[:limit]
    kept = kept.sort().values
    check_batch_size(data.batch_size, len(kept), f"{data.name} (dataset.limit={limit})")
    subset = InMemoryImages(data.images[kept], data.labels[kept], batch_size=data.batch_size,
                            class_names=data.facts.class_names, value_range=data.value_range, name=data.name)
    subset.facts = data.facts  # attribute names and the rest stay as the full set said
    counts = torch.bincount(subset.labels, minlength=classes).tolist() if classes else None
    log.info("dataset.limit=%d: training on %s of %s images (seed %d)%s", limit, f"{len(kept):,}", f"{len(data):,}",
             seed, f", per class {counts}" if counts else "")
    return subset


def epoch_order(size: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of one epoch, a function of (seed, epoch) alone, so resumes are exact."""
    generator = torch.Generator().manual_seed(stream_seed(seed, epoch))
    return torch.randperm(size, generator=generator)


class IndexBatches:
    """An endless iterator over shuffled batches; its position is part of a checkpoint.

    Each epoch's order comes from its own generator seeded by (seed, epoch), so a resumed run
    draws exactly the batches the uninterrupted run would have drawn.
    """

    def __init__(self, data: InMemoryImages, device: torch.device, seed: int):
        self.data = data
        self.device = device
        self.seed = seed
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.epoch = 0
        self.position = 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> torch.Tensor:
        return epoch_order(len(self.data), self.seed, self.epoch).to(self.device)

    def __iter__(self) -> "IndexBatches":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        size = self.data.batch_size
        if self.position + size > len(self.data):  # drop the ragged end: BatchNorm dislikes tiny batches
            self.epoch += 1
            self.position = 0
            self._order = self._epoch_order()
        index = self._order[self.position:self.position + size]
        self.position += size
        return {"image": self.data.to_float(self.images[index]), "label": self.labels[index]}

    def example(self, count: int) -> dict[str, torch.Tensor]:
        """The data set's first `count` samples, drawn without moving the iterator."""
        return {"image": self.data.to_float(self.images[:count]), "label": self.labels[:count]}

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_order()
