"""`make bench`: throughput of ganlab's data paths and training loop on this machine (not a test).

    python -m benchmarks.run [--data DIR] [--device auto] [--steps 200] [--batches 100]

Without --data, folder paths are measured on generated data of realistic size (2,000 random
96x96 JPEGs, like the anime faces); with --data (e.g. ../shared/data) on the real files there:
MNIST/raw, anime/images and cifar10/test. Every folder path is compared with a plain
`DataLoader(ImageFolder(...))` using the same resize, crop and [-1, 1] scaling.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from ganlab.training.runtime import pick_device
from ganlab.data.digits import load_digits
from ganlab.data.folder import load_folder
from ganlab.data.mnist import load_mnist

WORKERS = 2


def rate(iterator, count: int, device: torch.device) -> float:
    """Batches per second over `count` batches, after one warm-up batch."""
    next(iterator)
    start = time.perf_counter()
    for _ in range(count):
        batch = next(iterator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    del batch
    return count / (time.perf_counter() - start)


def endless(loader, device):
    while True:
        for images, labels in loader:
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def plain_image_folder(root: Path, resolution: int, batch_size: int, device: torch.device):
    """What homework scripts do: ImageFolder + transforms in DataLoader workers."""
    transform = transforms.Compose([transforms.Resize(resolution), transforms.CenterCrop(resolution),
                                    transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
    loader = DataLoader(datasets.ImageFolder(str(root), transform=transform), batch_size=batch_size, shuffle=True,
                        num_workers=WORKERS, pin_memory=device.type == "cuda", drop_last=True,
                        persistent_workers=True)
    return endless(loader, device)


def bench_folder(name: str, root: Path, resolution: int, device: torch.device, batches: int) -> None:
    plain = rate(plain_image_folder(root, resolution, 64, device), batches, device)
    stream = load_folder(str(root), resolution, 64, labels="none", in_memory=False, workers=WORKERS)
    streaming = rate(stream.batches(device, 0), batches, device)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        memory = load_folder(str(root), resolution, 64, labels="none", in_memory=True, workers=WORKERS,
                             cache=True, cache_dir=cache)
        decode_s = time.perf_counter() - start
        start = time.perf_counter()
        load_folder(str(root), resolution, 64, labels="none", in_memory=True, cache=True, cache_dir=cache)
        cached_s = time.perf_counter() - start
    in_memory = rate(memory.batches(device, 0), batches * 10, device)
    print(f"{name} ({len(memory)} images -> {resolution} px, batch 64, {WORKERS} workers):\n"
          f"  DataLoader(ImageFolder)        {plain:8.1f} batches/s\n"
          f"  ganlab streaming               {streaming:8.1f} batches/s ({streaming / plain:.1f}x)\n"
          f"  ganlab in memory               {in_memory:8.1f} batches/s ({in_memory / plain:.0f}x), after a "
          f"one-time decode of {decode_s:.1f} s ({cached_s:.2f} s from dataset.cache)")


def bench_tensor_sets(data_dir: Path | None, device: torch.device, batches: int) -> None:
    sets = {"digits 32 px": load_digits(resolution=32, batch_size=64)}
    if data_dir and (data_dir / "MNIST" / "raw").is_dir():
        start = time.perf_counter()
        sets["MNIST 28 px"] = load_mnist(root=str(data_dir), batch_size=64)
        print(f"MNIST train (60,000 images) read from gzipped IDX in {time.perf_counter() - start:.2f} s")
    for name, data in sets.items():
        ours = rate(data.batches(device, 0), batches * 10, device)
        floats = data.images.float().div(127.5).sub(1)
        loader = DataLoader(torch.utils.data.TensorDataset(floats, data.labels), batch_size=64, shuffle=True,
                            drop_last=True)
        plain = rate(endless(loader, device), batches * 10, device)
        print(f"{name}, batch 64: in-memory index batches {ours:,.0f} batches/s; "
              f"DataLoader(TensorDataset) {plain:,.0f} batches/s ({ours / plain:.1f}x)")


def bench_training(device: torch.device, steps: int) -> None:
    from ganlab.trust.paths import compose  # the real config tree, composed as the CLI does
    from ganlab.training.train import train

    cfg = compose([f"device={device}", "progress=false", f"schedule.steps={steps}", f"schedule.log_every={steps}",
                   f"schedule.sample_every={steps}", f"schedule.ckpt_every={steps}", "schedule.snapshot_every=0"])
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        train(cfg, run_dir)
        elapsed = time.perf_counter() - start
    print(f"train loop, default dcgan + bce on digits: {steps / elapsed:.1f} steps/s, "
          f"{steps * 64 / elapsed:,.0f} images/s (start-up included)")


def generated_faces(root: Path, count: int = 2000) -> Path:
    """Random 96x96 JPEGs, like the anime faces (the content does not change decoding cost much)."""
    import numpy as np
    from PIL import Image

    folder = root / "faces" / "images"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    for i in range(count):
        noisy = np.clip(base.astype(int) + rng.integers(-20, 20, (96, 96, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{i}.jpg", quality=95)
    return root / "faces"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="real data root, e.g. ../shared/data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    bench_tensor_sets(args.data, device, args.batches)
    if args.data:
        bench_folder("anime faces", args.data / "anime", 64, device, args.batches)
        bench_folder("CIFAR-10 test JPEGs", args.data / "cifar10" / "test", 32, device, args.batches)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            bench_folder("generated 96 px JPEGs", generated_faces(Path(tmp)), 64, device, args.batches)
    bench_training(device, args.steps)


if __name__ == "__main__":
    main()
