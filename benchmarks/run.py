"""`make bench`: throughput of ganlab's training paths on this machine (not part of the tests).

    python -m benchmarks.run [--device auto] [--steps 200]

Reports, for the default DCGAN on the bundled digits:
  * batch supply: ganlab's in-memory uint8 index batches vs a plain DataLoader over a TensorDataset
    of float images (the homework-script way), in batches/s;
  * training: steps/s and images/s of the real `ganlab train` loop (no logging or sampling in between).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from ganlab.checks import pick_device
from ganlab.data.digits import load_digits


def batches_per_second(iterator, count: int, device: torch.device) -> float:
    next(iterator)  # warm-up
    start = time.perf_counter()
    for _ in range(count):
        batch = next(iterator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    del batch
    return count / (time.perf_counter() - start)


def plain_dataloader(data, device: torch.device):
    floats = data.images.float().div(127.5).sub(1)
    loader = DataLoader(TensorDataset(floats, data.labels), batch_size=data.batch_size, shuffle=True, drop_last=True)
    while True:
        for images, labels in loader:
            yield images.to(device), labels.to(device)


def training_speed(device: str, steps: int) -> tuple[float, int]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import compose_config  # the real config tree, composed as the CLI does

    from ganlab.train import train

    cfg = compose_config([f"device={device}", "progress=false", f"schedule.steps={steps}",
                          f"schedule.log_every={steps}", f"schedule.sample_every={steps}",
                          f"schedule.ckpt_every={steps}", "schedule.snapshot_every=0"], shrink=False)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        train(cfg, run_dir)
        elapsed = time.perf_counter() - start
    return steps / elapsed, int(cfg.dataset.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    data = load_digits(resolution=32, batch_size=64)
    ours = batches_per_second(data.batches(device, seed=0), 2000, device)
    plain = batches_per_second(plain_dataloader(data, device), 2000, device)
    print(f"batch supply, digits 32 px, batch 64: in-memory index batches {ours:,.0f} batches/s; "
          f"DataLoader(TensorDataset) {plain:,.0f} batches/s ({ours / plain:.1f}x)")

    steps_per_s, batch = training_speed(str(device), args.steps)
    print(f"train loop, default dcgan + bce on digits: {steps_per_s:.1f} steps/s, "
          f"{steps_per_s * batch:,.0f} images/s (incl. start-up)")


if __name__ == "__main__":
    main()
