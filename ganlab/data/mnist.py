"""`dataset=mnist`: torchvision's MNIST, read from `root/MNIST/raw`, held in memory.

torchvision's `datasets.MNIST` insists on all four uncompressed files, so the files of the one
split asked for are read with torchvision's own IDX readers, gzipped (as downloaded) or not.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import torch
from torchvision import datasets
from torchvision.datasets.mnist import read_image_file, read_label_file

from ganlab.data.download import fetch
from ganlab.data.memory import InMemoryImages, resized
from ganlab.errors import ConfigError, DataNotFound
from ganlab.trust.registry import buildable

SPLIT_PREFIX = {"train": "train", "test": "t10k"}


@buildable("dataset")
def load_mnist(root: str = "data", split: str = "train", download: bool = False, resolution: int = 28,
               batch_size: int = 64, value_range: str = "tanh") -> InMemoryImages:
    """MNIST digits (1x28x28, labels 0..9), resized to `resolution` px."""
    return load_idx_images(datasets.MNIST, "mnist", root, split, download, resolution, batch_size, value_range)


@buildable("dataset")
def load_fashion_mnist(root: str = "data", split: str = "train", download: bool = False, resolution: int = 28,
                       batch_size: int = 64, value_range: str = "tanh") -> InMemoryImages:
    """Fashion-MNIST (1x28x28, 10 clothing classes), read like MNIST from `root/FashionMNIST/raw`."""
    return load_idx_images(datasets.FashionMNIST, "fashion_mnist", root, split, download, resolution, batch_size,
                           value_range)


def load_idx_images(dataset_class: type, config_name: str, root: str, split: str, download: bool,
                    resolution: int, batch_size: int, value_range: str) -> InMemoryImages:
    """Any torchvision data set stored as IDX files under `root/<ClassName>/raw`."""
    if split not in SPLIT_PREFIX:
        raise ConfigError(f"dataset.split={split!r} is not known for {config_name}; use 'train' or 'test'.")
    raw = Path(root).expanduser() / dataset_class.__name__ / "raw"
    stems = [f"{SPLIT_PREFIX[split]}-images-idx3-ubyte", f"{SPLIT_PREFIX[split]}-labels-idx1-ubyte"]
    if not all(_find_idx(raw, s) for s in stems):
        if not download:
            raise DataNotFound(
                f"{config_name} ({split} split) was not found: looked for {', '.join(s + '[.gz]' for s in stems)} "
                f"in {raw.resolve()}. Put the files there, point dataset.root at the folder that holds "
                f"{dataset_class.__name__}/raw, or set dataset.download=true to fetch them.")
        fetch(config_name, Path(root).expanduser(), str(raw),
              lambda: dataset_class(str(Path(root).expanduser()), train=split == "train", download=True))
    images = _read_idx(_find_idx(raw, stems[0]), read_image_file).unsqueeze(1)
    labels = _read_idx(_find_idx(raw, stems[1]), read_label_file).long()
    if labels.shape[0] != images.shape[0]:
        raise ConfigError(f"{raw}: {stems[0]} holds {images.shape[0]} images but {stems[1]} holds "
                          f"{labels.shape[0]} labels; one file is truncated or from another data set.")
    if images.shape[-1] != resolution:
        images = resized(images, resolution, "bilinear", config_name)
    class_names = tuple(getattr(dataset_class, "classes", ())) or tuple(str(i) for i in range(10))
    return InMemoryImages(images.contiguous(), labels, batch_size=batch_size, value_range=value_range,
                          class_names=class_names, name=config_name)


def _find_idx(raw: Path, stem: str) -> Path | None:
    for path in (raw / stem, raw / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


IDX_LIMIT = 4 * 2**30  # bytes an IDX file may declare (MNIST's training images: 47 MB)
_IDX_SIZES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def _copy_declared(src, dst, path: Path) -> None:
    """Unpack at most the size the IDX header declares: a file that inflates beyond it (a gzip
    bomb under an MNIST name) is refused after reading one byte more, not unpacked whole."""
    header = src.read(4)
    if len(header) < 4 or header[:2] != b"\0\0" or header[2] not in _IDX_SIZES or not 1 <= header[3] <= 4:
        raise ValueError("its header is not an IDX header")
    dims_raw = src.read(4 * header[3])
    dims = [int.from_bytes(dims_raw[i:i + 4], "big") for i in range(0, len(dims_raw), 4)]
    declared = _IDX_SIZES[header[2]]
    for dim in dims:
        declared *= dim
    if declared > IDX_LIMIT:
        raise ValueError(f"its header declares {declared:,} bytes of data, over the {IDX_LIMIT:,} ganlab reads")
    dst.write(header + dims_raw)
    left = declared
    while left > 0:
        block = src.read(min(left, 1 << 20))
        if not block:
            break
        dst.write(block)
        left -= len(block)
    if src.read(1):
        raise ValueError(f"it unpacks to more than the {declared:,} bytes its header declares")


def _read_idx(path: Path, reader) -> torch.Tensor:
    """Read with torchvision's IDX reader; a .gz file is unpacked to a temporary file first."""
    try:
        if path.suffix != ".gz":
            return reader(str(path))
        with tempfile.TemporaryDirectory() as tmp, gzip.open(path, "rb") as src:
            unpacked = Path(tmp) / path.stem
            with open(unpacked, "wb") as dst:
                _copy_declared(src, dst, path)
            return reader(str(unpacked))
    except (OSError, AssertionError, RuntimeError, EOFError, ValueError) as exc:
        raise ConfigError(f"{path} is not a readable IDX file ({exc or type(exc).__name__}); "
                          "delete it and download it again (dataset.download=true).") from None
