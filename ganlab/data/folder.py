"""Image folders (`dataset=anime`, `dataset=folder`) and CelebA, decoded once and held in memory.

Decoding is the slow part of a folder data set, so it happens once, in parallel (DataLoader
workers), straight to uint8 at the training resolution; `cache=true` also saves the decoded
tensor beside nothing but the cache folder, so the next run skips the JPEG decoding entirely.
Grayscale, RGBA and palette images are converted to RGB; an unreadable file is named.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import functional as TF

from ganlab.data.memory import InMemoryImages
from ganlab.errors import ConfigError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class _DecodeFiles(Dataset):
    def __init__(self, paths: list[Path], resolution: int, crop: int | None):
        self.paths, self.resolution, self.crop = paths, resolution, crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ConfigError(f"image file {path} could not be read ({exc}); delete or replace it.") from None
        side = self.crop or min(image.size)
        image = TF.center_crop(image, [side, side])
        image = TF.resize(image, [self.resolution, self.resolution], antialias=True)
        return TF.pil_to_tensor(image)


def decode_images(paths: list[Path], resolution: int, crop: int | None = None, workers: int | None = None) -> torch.Tensor:
    """Decode, convert to RGB, center-crop (to `crop` px, else the short side) and resize, in parallel."""
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    loader = DataLoader(_DecodeFiles(paths, resolution, crop), batch_size=256, num_workers=workers,
                        persistent_workers=False)
    try:
        return torch.cat(list(loader)) if paths else torch.empty(0, 3, resolution, resolution, dtype=torch.uint8)
    except Exception as exc:  # a worker re-raises our ConfigError wrapped; unwrap its message
        message = str(exc)
        if "could not be read" in message:
            line = next(l for l in message.splitlines() if "could not be read" in l)
            raise ConfigError(line.split("ConfigError: ")[-1].strip()) from None
        raise


def cached_decode(paths: list[Path], resolution: int, crop: int | None, cache: bool, cache_dir: str,
                  workers: int | None) -> torch.Tensor:
    """`decode_images`, memoised on disk under `cache_dir` keyed by the file list and the settings."""
    if not cache:
        return decode_images(paths, resolution, crop, workers)
    key = hashlib.sha1("\n".join(f"{p}:{p.stat().st_mtime_ns}" for p in paths).encode()
                       + f"{resolution}:{crop}".encode()).hexdigest()[:16]
    path = Path(cache_dir).expanduser() / f"images-{resolution}px-{key}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    images = decode_images(paths, resolution, crop, workers)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(images, tmp)
    os.replace(tmp, path)
    return images


def list_images(root: Path, key: str = "dataset.root") -> list[Path]:
    if not root.is_dir():
        raise ConfigError(f"{key}={root} is not a folder; point {key} at the folder that holds the images.")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise ConfigError(f"{key}={root} holds no images ({', '.join(EXTENSIONS)}), in it or in its subfolders; "
                          "point it at the image folder.")
    return files


def load_folder(root: str, resolution: int = 64, batch_size: int = 64, labels: str = "auto",
                crop: int | None = None, cache: bool = False, cache_dir: str = "data/.cache",
                workers: int | None = None, value_range: str = "tanh", name: str = "folder") -> InMemoryImages:
    """Every image under `root` (flat or nested). `labels`: auto (class subfolders, when there are
    several), folders, or none."""
    root_path = Path(root).expanduser()
    files = list_images(root_path)
    if labels not in ("auto", "folders", "none"):
        raise ConfigError(f"dataset.labels={labels!r} is not known; use auto, folders or none.")
    classes = sorted({p.relative_to(root_path).parts[0] for p in files if len(p.relative_to(root_path).parts) > 1})
    use_folders = labels == "folders" or (labels == "auto" and len(classes) > 1
                                          and all(len(p.relative_to(root_path).parts) > 1 for p in files))
    images = cached_decode(files, resolution, crop, cache, cache_dir, workers)
    targets = None
    if use_folders:
        index = {c: i for i, c in enumerate(classes)}
        targets = torch.tensor([index[p.relative_to(root_path).parts[0]] for p in files])
    return InMemoryImages(images, targets, batch_size=batch_size, value_range=value_range,
                          class_names=tuple(classes) if use_folders else (), name=name)


def load_anime(root: str = "data/anime", resolution: int = 64, batch_size: int = 64, crop: int | None = None,
               cache: bool = False, cache_dir: str = "data/.cache", workers: int | None = None,
               value_range: str = "tanh") -> InMemoryImages:
    """Anime face crops (the anime report's Crypko faces, Kaggle's anime faces): one unlabeled folder."""
    return load_folder(root, resolution, batch_size, "none", crop, cache, cache_dir, workers, value_range, "anime")
