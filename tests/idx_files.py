"""Tiny MNIST-layout IDX files (the real binary format), for loader tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

PREFIX = {"train": "train", "test": "t10k"}


def write_idx_split(raw: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    """Write `<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte` (optionally .gz) into `raw`."""
    raw.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    files = {
        f"{PREFIX[split]}-images-idx3-ubyte": struct.pack(">IIII", 0x0803, n, h, w) + images.astype(np.uint8).tobytes(),
        f"{PREFIX[split]}-labels-idx1-ubyte": struct.pack(">II", 0x0801, n) + labels.astype(np.uint8).tobytes(),
    }
    for name, payload in files.items():
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (raw / name).write_bytes(payload)


def digit_like(n: int, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose brightness encodes the label (label k -> a k*20+20 square), so checks can tell them apart."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, size, size), np.uint8)
    for i, label in enumerate(labels):
        images[i, 8:20, 8:20] = 20 + 20 * label
    return images, labels
