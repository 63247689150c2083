"""What the MNIST benchmarks share: running `ganlab train` as a user does, and the judge they measure with."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def ganlab(*args: str) -> float:
    """`python -m ganlab train ARGS` (its output hidden); the wall seconds it took."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ganlab", "train", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def folder(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def mnist_judge(root: Path, out: Path) -> Path:
    """The MLP MNIST classifier the metrics judge with (trained into OUT/classifier first, 5 epochs)."""
    judge = out / "classifier"
    if not (judge / "checkpoints" / "last.pt").exists():
        ganlab("experiment=fashion_classifier_mlp", "dataset=mnist", f"dataset.root={root}", "schedule.epochs=5",
               "progress=false", f"hydra.run.dir={judge}")
    return judge
