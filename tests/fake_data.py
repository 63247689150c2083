"""Tiny data sets in the real on-disk layouts (IDX, CelebA, image folders, CIFAR pickles)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from idx_files import digit_like, write_idx_split

CELEBA_NAMES = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
                "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
                "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
                "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
                "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
                "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
                "Wearing_Necktie", "Young"]


def make_mnist(root: Path, folder: str = "MNIST", n: int = 64) -> Path:
    images, labels = digit_like(n)
    write_idx_split(root / folder / "raw", "train", images, labels, gz=True)
    return root


def make_images(folder: Path, n: int, size: tuple[int, int] = (40, 40), mode: str = "RGB", ext: str = "jpg",
                seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(pixels).convert(mode)
        path = folder / f"{i:04d}.{ext}"
        image.save(path)
        paths.append(path)
    return paths


def make_celeba(root: Path, n: int = 24) -> Path:
    base = root / "celeba"
    files = [p.name for p in make_images(base / "img_align_celeba", n, size=(178, 218))]
    rng = np.random.default_rng(1)
    values = rng.choice(["1", "-1"], size=(n, len(CELEBA_NAMES)))
    rows = [f"{f} " + " ".join(f"{v:>2}" for v in row) for f, row in zip(files, values)]
    (base / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(CELEBA_NAMES) + "\n" + "\n".join(rows) + "\n")
    split = [f"{f} {0 if i < n * 3 // 4 else 2}" for i, f in enumerate(files)]
    (base / "list_eval_partition.txt").write_text("\n".join(split) + "\n")
    return root


def make_cifar_batches(root: Path, n: int = 20) -> Path:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
        with open(base / name, "wb") as handle:
            pickle.dump(entry, handle)
    return root


def make_all(root: Path) -> Path:
    """Every layout the presets read, under one root (for dataset.root=...)."""
    make_mnist(root, "MNIST")
    make_mnist(root, "FashionMNIST")
    make_celeba(root)
    make_images(root / "anime", 24, size=(96, 96))
    make_cifar_batches(root)
    return root
