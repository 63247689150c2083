"""Image folders (`dataset=anime`, `dataset=folder`), shared by CelebA and CIFAR-10 class folders.

Two paths, picked by `in_memory` (auto: by the decoded size against `memory_limit_gb`):
* in memory: every file is decoded once, in parallel (DataLoader workers), straight to uint8 at
  the training resolution, then batched by index like MNIST; `cache=true` also saves the decoded
  tensor under `cache_dir`, so the next run skips JPEG decoding entirely;
* streaming, for sets too big for memory: a DataLoader with workers, pinned memory and persistent
  workers decodes each batch as it goes, in a seeded per-epoch order (resume continues exactly).
Grayscale, RGBA and palette images are converted; unreadable files are named before training.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import functional as TF

from ganlab.records.cache import load_verified, save_verified
from ganlab.data.memory import DataFacts, InMemoryImages, check_batch_size, epoch_order, pixels_to_float
from ganlab.errors import ConfigError, DataNotFound, RunFault
from ganlab.trust.registry import buildable

log = logging.getLogger("ganlab")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Pixels an image may have (an 8,000 x 8,000 photo): a 164 KB PNG can declare 169 megapixels, and
# decoding it would take gigabytes. A larger file is refused like an undecodable one.
PIXEL_LIMIT = 64_000_000


class ImageFiles(Dataset):
    """Decode, convert, center-crop and resize one file to uint8 (C, R, R); a bad file gives (None, path)."""

    def __init__(self, paths: list[Path], resolution: int, crop: int | None = None, channels: int = 3,
                 labels: torch.Tensor | None = None):
        if channels not in (1, 3):
            raise ConfigError(f"dataset.channels={channels} is not supported; use 3 (RGB) or 1 (grayscale).")
        self.paths, self.resolution, self.crop, self.channels = paths, resolution, crop, channels
        self.labels = labels if labels is not None else torch.zeros(len(paths), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, index: int) -> torch.Tensor | None:
        try:
            with Image.open(self.paths[index]) as image:
                if image.size[0] * image.size[1] > PIXEL_LIMIT:  # checked on the header, before decoding
                    return None
                image = image.convert("RGB" if self.channels == 3 else "L")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            return None
        side = self.crop or min(image.size)
        image = TF.center_crop(image, [side, side])
        return TF.pil_to_tensor(TF.resize(image, [self.resolution, self.resolution], antialias=True))

    def __getitem__(self, index: int):
        image = self.decode(index)
        if image is None:  # keep the batch's shape; the caller reports the file
            return torch.zeros(self.channels, self.resolution, self.resolution, dtype=torch.uint8), self.labels[index], -1 - index
        return image, self.labels[index], index


def failed_indices(index: torch.Tensor) -> list[int]:
    """The file indices that `ImageFiles` marked as unreadable (as -1 - index) in a batch."""
    return [-1 - i for i in index.tolist() if i < 0]


def check_readable(paths: list[Path], index: torch.Tensor) -> None:
    bad = failed_indices(index)
    if bad:
        raise unreadable(paths, bad)


def unreadable(paths: list[Path], bad: list[int]) -> ConfigError:
    shown = ", ".join(str(paths[i]) for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    return ConfigError(f"{len(bad)} image file(s) could not be decoded: {shown}. They are corrupt, truncated, not "
                       f"images, or larger than {PIXEL_LIMIT / 1e6:.0f} megapixels (the most ganlab decodes); delete or "
                       "replace them.")


def default_workers(workers: int | None) -> int:
    return min(8, os.cpu_count() or 1) if workers is None else workers


def decode_all(files: ImageFiles, workers: int | None = None) -> torch.Tensor:
    """Every file decoded to one uint8 tensor, in parallel; unreadable files stop with their names."""
    if len(files) == 0:
        return torch.empty(0, files.channels, files.resolution, files.resolution, dtype=torch.uint8)
    loader = DataLoader(files, batch_size=128, num_workers=default_workers(workers))
    images, bad = [], []
    for batch, _, index in loader:
        images.append(batch)
        bad += failed_indices(index)
    if bad:
        raise unreadable(files.paths, bad)
    return torch.cat(images)


def cached_decode(files: ImageFiles, cache: bool, cache_dir: str, workers: int | None) -> torch.Tensor:
    """`decode_all`, memoised on disk under `cache_dir`, keyed by the files (names, sizes, mtimes) and the
    size; verified and tensors-only (`ganlab.records.cache`)."""
    if not cache:
        return decode_all(files, workers)
    listing = "\n".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files.paths)
    key = hashlib.sha1(f"{listing}|{files.resolution}|{files.crop}|{files.channels}".encode()).hexdigest()[:16]
    path = Path(cache_dir).expanduser() / f"images-{files.resolution}px-{key}.pt"
    images = load_verified(path)
    if isinstance(images, torch.Tensor):
        return images
    images = decode_all(files, workers)
    save_verified(images, path, {"files": len(files.paths), "resolution": files.resolution})
    return images


def list_images(root: Path, key: str = "dataset.root") -> list[Path]:
    if not root.is_dir():
        raise DataNotFound(f"{key}={root} is not a folder (looked at {root.resolve()}); point {key} at the folder "
                           "that holds the images, or set GANLAB_DATA to the folder holding your data sets (the "
                           "presets' roots start there, e.g. $GANLAB_DATA/anime).")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise ConfigError(f"{key}={root} holds no images ({', '.join(EXTENSIONS)}), in it or in its subfolders; "
                          "point it at the image folder.")
    tops = Counter(p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "." for p in files)
    where = ", ".join(f"{name}/: {count:,}" for name, count in tops.most_common(6)) if len(tops) > 1 else ""
    log.info("%s=%s: %s images%s", key, root.resolve(), f"{len(files):,}", f" ({where})" if where else "")
    if len(tops) > 1 and not all(name == "." for name in tops):
        log.info("%s: images come from %d top-level folders; if that is not one data set, point %s at one of "
                 "them", key, len(tops), key)
    return files


def image_set(files: ImageFiles, *, batch_size: int, class_names=(), in_memory: str | bool = "auto",
              memory_limit_gb: float = 4.0, cache: bool = False, cache_dir: str = "data/.cache",
              workers: int | None = None, value_range: str = "tanh", name: str = "folder"):
    """An in-memory set, or a streaming one when the decoded images would not fit `memory_limit_gb`."""
    if in_memory not in ("auto", True, False):
        raise ConfigError(f"dataset.in_memory={in_memory!r} is not known; use auto, true or false.")
    size_gb = len(files) * files.channels * files.resolution ** 2 / 1e9
    if in_memory is True or (in_memory == "auto" and size_gb <= memory_limit_gb):
        images = cached_decode(files, cache, cache_dir, workers)
        return InMemoryImages(images, files.labels, batch_size=batch_size, class_names=class_names,
                              value_range=value_range, name=name)
    return StreamingImages(files, batch_size=batch_size, class_names=class_names, workers=workers,
                           value_range=value_range, name=name)


def split_files(paths: list[Path], root: Path, split: str, test_fraction: float) -> list[Path]:
    """A fixed hold-out: a file is in the test split when a hash of its relative path says so, so
    the split does not move when files are added or removed."""
    if split == "all":
        return paths
    if split not in ("train", "test"):
        raise ConfigError(f"dataset.split={split!r} is not known for a folder; use all, train or test.")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"dataset.test_fraction={test_fraction} must be between 0 and 1, e.g. 0.1.")
    def is_test(path: Path) -> bool:
        digest = hashlib.sha1(path.relative_to(root).as_posix().encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2 ** 32 < test_fraction
    chosen = [p for p in paths if is_test(p) == (split == "test")]
    if not chosen:
        raise DataNotFound(f"dataset.split={split} of {root} is empty; lower or raise dataset.test_fraction.")
    return chosen


def own_folder(root: Path, name: str) -> Path:
    """`root/name` when `root` holds a folder named after the data set (`dataset.root` pointed at a
    folder of several data sets), else `root`; said in the log either way it changes."""
    inner = root / name
    if root.name != name and inner.is_dir() and not inner.is_symlink():
        log.warning("dataset.root=%s holds a folder named %s/: reading %s (not the other folders beside it)", root,
                    name, inner)
        return inner
    return root


@buildable("dataset")
def load_folder(root: str, resolution: int = 64, batch_size: int = 64, labels: str = "auto",
                crop: int | None = None, channels: int = 3, in_memory: str | bool = "auto",
                memory_limit_gb: float = 4.0, cache: bool = False, cache_dir: str = "data/.cache",
                workers: int | None = None, value_range: str = "tanh", name: str = "folder",
                split: str = "all", test_fraction: float = 0.1):
    """Every image under `root` (flat or nested). `labels`: auto (class subfolders, when every image
    sits in one and there are several), folders, or none. `split`: all, or a fixed train/test hold-out."""
    root_path = Path(root).expanduser()
    paths = split_files(list_images(root_path), root_path, split, test_fraction)
    if labels not in ("auto", "folders", "none"):
        raise ConfigError(f"dataset.labels={labels!r} is not known; use auto, folders or none.")
    parts = [p.relative_to(root_path).parts for p in paths]
    classes = sorted({part[0] for part in parts if len(part) > 1})
    nested = all(len(part) > 1 for part in parts)
    if labels == "folders" and not nested:
        raise ConfigError(f"dataset.labels=folders but {root_path} has images outside class subfolders; "
                          "move them into <root>/<class>/ or use labels=none.")
    use_folders = labels == "folders" or (labels == "auto" and nested and len(classes) > 1)
    targets = torch.tensor([classes.index(part[0]) for part in parts]) if use_folders else None
    files = ImageFiles(paths, resolution, crop, channels, targets)
    return image_set(files, batch_size=batch_size, class_names=tuple(classes) if use_folders else (),
                     in_memory=in_memory, memory_limit_gb=memory_limit_gb, cache=cache, cache_dir=cache_dir,
                     workers=workers, value_range=value_range, name=name)


@buildable("dataset")
def load_anime(root: str = "data/anime", resolution: int = 64, batch_size: int = 64, crop: int | None = None,
               in_memory: str | bool = "auto", memory_limit_gb: float = 4.0, cache: bool = False,
               cache_dir: str = "data/.cache", workers: int | None = None, value_range: str = "tanh",
               split: str = "all", test_fraction: float = 0.1):
    """Anime face crops (the anime report's Crypko faces, Kaggle's anime faces): one unlabeled folder.
    A root that holds an `anime/` folder (a data folder of several sets) means that folder."""
    root = str(own_folder(Path(root).expanduser(), "anime"))
    return load_folder(root, resolution, batch_size, "none", crop, 3, in_memory, memory_limit_gb, cache, cache_dir,
                       workers, value_range, "anime", split, test_fraction)


class _EpochSampler(Sampler[int]):
    """Yields the current epoch's order from `start` on; the owner sets both before each pass."""

    def __init__(self):
        self.order, self.start = torch.arange(0), 0

    def __iter__(self):
        return iter(self.order[self.start:].tolist())

    def __len__(self) -> int:
        return len(self.order) - self.start


class StreamingImages:
    """Decodes batches on the fly in DataLoader workers (pinned memory, persistent workers)."""

    def __init__(self, files: ImageFiles, *, batch_size: int, class_names=(), workers: int | None = None,
                 value_range: str = "tanh", name: str = "folder"):
        check_batch_size(batch_size, len(files), name)
        self.files, self.batch_size, self.workers, self.name = files, batch_size, default_workers(workers), name
        self.value_range = value_range
        self.facts = DataFacts(shape=(files.channels, files.resolution, files.resolution),
                               resolution=files.resolution, channels=files.channels,
                               num_classes=len(class_names), class_names=tuple(class_names))

    def __len__(self) -> int:
        return len(self.files)

    @property
    def batches_per_epoch(self) -> int:
        return len(self) // self.batch_size

    def batches(self, device: torch.device, seed: int) -> "StreamingBatches":
        return StreamingBatches(self, device, seed)

    def ordered_batches(self, device: torch.device, batch_size: int = 256):
        """One pass over the whole set in order (for evaluation)."""
        for images, labels, index in DataLoader(self.files, batch_size=batch_size, num_workers=self.workers):
            check_readable(self.files.paths, index)
            yield {"image": self.to_float(images.to(device)), "label": labels.to(device)}

    def to_float(self, images: torch.Tensor) -> torch.Tensor:
        return pixels_to_float(images, self.value_range)


class StreamingBatches:
    def __init__(self, data: StreamingImages, device: torch.device, seed: int):
        self.data, self.device, self.seed = data, device, seed
        self.sampler = _EpochSampler()
        self.loader = DataLoader(data.files, batch_size=data.batch_size, sampler=self.sampler, drop_last=True,
                                 num_workers=data.workers, pin_memory=device.type == "cuda",
                                 persistent_workers=data.workers > 0)
        self.epoch, self.position, self._iterator = 0, 0, None

    def _start_pass(self) -> None:
        self.sampler.order = epoch_order(len(self.data), self.seed, self.epoch)
        self.sampler.start = self.position * self.data.batch_size
        self._iterator = iter(self.loader)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.position >= self.data.batches_per_epoch:
            self.epoch, self.position, self._iterator = self.epoch + 1, 0, None
        if self._iterator is None:
            self._start_pass()
        images, labels, index = next(self._iterator)
        bad = failed_indices(index)
        if bad:  # met during training (a file deleted, truncated or replaced under the running run): a fault
            raise RunFault(f"{unreadable(self.data.files.paths, bad)} This was met during training; the newest "
                           "checkpoint is kept: fix or restore the files, then continue with resume=true.")
        self.position += 1
        images = images.to(self.device, non_blocking=True)
        return {"image": self.data.to_float(images), "label": labels.to(self.device, non_blocking=True)}

    def example(self, count: int) -> dict[str, torch.Tensor]:
        items = [self.data.files[i] for i in range(min(count, len(self.data)))]
        images = torch.stack([item[0] for item in items]).to(self.device)
        return {"image": self.data.to_float(images), "label": torch.stack([item[1] for item in items]).to(self.device)}

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._iterator = int(state["epoch"]), int(state["position"]), None
