"""`dataset=cifar10`: the official pickle batches (torchvision's layout, read by a restricted
unpickler that admits only arrays, bytes, strings, numbers and containers) or class folders of images.

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch}   as downloaded by torchvision
    <root>/<split>/<class>/*.jpg|png                           root=../shared/data/cifar10
    <root>/cifar10/<split>/<class>/*.jpg|png                   root=../shared/data, as $GANLAB_DATA may be
"""

from __future__ import annotations

import numbers
import pickle
from pathlib import Path

import numpy as np
import torch

from ganlab.data.folder import load_folder
from ganlab.data.memory import InMemoryImages, resized
from ganlab.data.download import fetch
from ganlab.errors import ConfigError, DataNotFound
from ganlab.trust.registry import buildable

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class BatchUnpickler(pickle.Unpickler):
    """CIFAR-10's batch files are pickles: read them admitting only what the format holds (dicts,
    lists, bytes, strings, numbers, and numpy arrays), so a crafted file cannot run code. Every
    other global a pickle names is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch never holds (refused "
                                     "without running it)")


def _checked_batch(entry) -> tuple[np.ndarray, list[int]]:
    """A batch's images and labels, checked against the format before anything is expanded: `data`
    an array of uint8 rows of 3,072 values, `labels` as many whole numbers. (A list of shared
    references would pass the unpickler yet stand for billions of values.)"""
    if not isinstance(entry, dict):
        raise ValueError(f"it holds a {type(entry).__name__}, not a batch")
    data = entry.get("data")
    labels = entry["labels"] if "labels" in entry else entry["fine_labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError("its data is not an array of 32x32 RGB rows (uint8, 3,072 values each)")
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        labels = labels.tolist()
    if not isinstance(labels, list) or len(labels) != data.shape[0] or \
            not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in labels):
        raise ValueError(f"its labels are not {data.shape[0]:,} whole numbers, one per image")
    return data.reshape(-1, 3, 32, 32), [int(v) for v in labels]


@buildable("dataset")
def load_cifar10(root: str = "data", split: str = "train", download: bool = False, resolution: int = 32,
                 batch_size: int = 64, workers: int | None = None, value_range: str = "tanh") -> InMemoryImages:
    if split not in BATCHES:
        raise ConfigError(f"dataset.split={split!r} is not known for cifar10; use train or test.")
    root_path = Path(root).expanduser()
    pickled = root_path / "cifar-10-batches-py"
    # class folders in <root>/<split>, or in <root>/cifar10/<split> (a data folder holding several sets)
    folders = [root_path / split, root_path / "cifar10" / split]
    found = next((folder for folder in folders if folder.is_dir()), None)
    if found is not None and not all((pickled / b).is_file() for b in BATCHES[split]):
        return load_folder(str(found), resolution, batch_size, "folders", workers=workers,
                           value_range=value_range, name="cifar10")
    if not all((pickled / b).is_file() for b in BATCHES[split]):
        if not download:
            raise DataNotFound(f"cifar10 ({split} split) was not found: looked for {', '.join(BATCHES[split])} in "
                               f"{pickled.resolve()} and for class folders in "
                               f"{' and '.join(str(folder.resolve()) for folder in folders)}. Point dataset.root "
                               "there, or set dataset.download=true.")
        from torchvision import datasets

        fetch("cifar10", root_path, str(pickled),
              lambda: datasets.CIFAR10(str(root_path), train=split == "train", download=True))
    images, labels = [], []
    for name in BATCHES[split]:
        try:
            with open(pickled / name, "rb") as handle:
                entry = BatchUnpickler(handle, encoding="latin1").load()
            data, batch_labels = _checked_batch(entry)
            images.append(data)
            labels.extend(batch_labels)
        except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as exc:
            raise ConfigError(f"{pickled / name} is not a CIFAR-10 batch file ({exc}); download it again from the "
                              "official source (dataset.download=true into an empty root).") from None
    tensor = torch.from_numpy(np.concatenate(images))
    if resolution != 32:
        tensor = resized(tensor, resolution, "bilinear", "cifar10")
    return InMemoryImages(tensor, torch.tensor(labels), batch_size=batch_size, value_range=value_range,
                          class_names=CLASSES, name="cifar10")
