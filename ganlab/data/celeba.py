"""`dataset=celeba`: torchvision's CelebA layout, with named attributes as multi-label targets.

    <root>/celeba/img_align_celeba/*.jpg
    <root>/celeba/list_attr_celeba.txt      count, 40 names, then "<file> +1/-1 x40" rows
    <root>/celeba/list_eval_partition.txt   "<file> 0|1|2" (train, valid, test)

The text files are parsed here (torchvision's reader insists on the official checksums); images
are center-cropped to 140 px (the usual aligned-face crop) and resized, as folder images are.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganlab.data.folder import ImageFiles, image_set
from ganlab.data.memory import with_attributes
from ganlab.errors import ConfigError, DataNotFound
from ganlab.trust.registry import buildable

SPLITS = {"train": "0", "valid": "1", "test": "2", "all": None}


@buildable("dataset")
def load_celeba(root: str = "data", split: str = "train", attributes: list[str] | None = None,
                resolution: int = 64, batch_size: int = 64, crop: int = 140, download: bool = False,
                in_memory: str | bool = "auto", memory_limit_gb: float = 4.0, cache: bool = False,
                cache_dir: str = "data/.cache", workers: int | None = None, value_range: str = "tanh"):
    base = Path(root).expanduser() / "celeba"
    if split not in SPLITS:
        raise ConfigError(f"dataset.split={split!r} is not known for celeba; use train, valid, test or all.")
    needed = [base / "img_align_celeba", base / "list_attr_celeba.txt", base / "list_eval_partition.txt"]
    if not all(p.exists() for p in needed):
        if download:
            from torchvision import datasets

            datasets.CelebA(str(Path(root).expanduser()), split="all", download=True)
        else:
            missing = ", ".join(str(p) for p in needed if not p.exists())
            raise DataNotFound(f"celeba was not found: missing {missing}. Put CelebA there (img_align_celeba/ and "
                               "the list_*.txt files), point dataset.root at the folder holding celeba/, or set "
                               "dataset.download=true (Google Drive; often over quota).")
    names, table = _read_attributes(needed[1])
    chosen = list(attributes) if attributes else names
    unknown = [a for a in chosen if a not in names]
    if unknown:
        raise ConfigError(f"dataset.attributes has unknown names {unknown}; CelebA's are: {', '.join(names)}.")
    partition = dict(line.split() for line in needed[2].read_text().splitlines() if line.strip())
    files = sorted(f for f in table if SPLITS[split] is None or partition.get(f) == SPLITS[split])
    if not files:
        raise DataNotFound(f"celeba has no images in split {split!r} per {needed[2]}.")
    columns = [names.index(a) for a in chosen]
    targets = torch.tensor([[table[f][c] for c in columns] for f in files], dtype=torch.float32)
    images = ImageFiles([needed[0] / f for f in files], resolution, crop, 3, targets)
    data = image_set(images, batch_size=batch_size, in_memory=in_memory, memory_limit_gb=memory_limit_gb,
                     cache=cache, cache_dir=cache_dir, workers=workers, value_range=value_range, name="celeba")
    return with_attributes(data, tuple(chosen))


def _read_attributes(path: Path) -> tuple[list[str], dict[str, list[float]]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    try:
        names = lines[1].split()
        table = {}
        for line in lines[2:]:
            parts = line.split()
            table[parts[0]] = [1.0 if v == "1" else 0.0 for v in parts[1:1 + len(names)]]
            if len(parts) != 1 + len(names):
                raise ValueError(f"row for {parts[0]} has {len(parts) - 1} values, expected {len(names)}")
    except (IndexError, ValueError) as exc:
        raise ConfigError(f"{path} is not in CelebA's list_attr_celeba.txt format ({exc}).") from None
    return names, table
