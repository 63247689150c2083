"""What the Inception pass costs on this CPU, and which speed-ups keep the numbers (needs the
ganlab[fid] extra and real MNIST; not a test):

    python -m benchmarks.inception_cpu --data ../shared/data [--n 500]

For each way of running the network (fp32 as NVIDIA's protocol, channels-last, bf16 autocast, both),
the seconds per 1,000 images and the FID / KID of two pairs against the fp32 figures: MNIST test
against train images (a small distance), and test against train images with a quarter of their
pixels replaced by noise (a large one). A variant keeps the numbers when its FIDs match fp32's to
well under the spread between seeds (the default DCGAN's FID moves by ~1 between seeds at n=1,000).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

VARIANTS = {"fp32 (before)": (False, False), "fp32 channels-last": (True, False),
            "bf16 autocast": (False, True), "bf16 + channels-last": (True, True)}


def image_sets(root: Path, n: int) -> dict[str, torch.Tensor]:
    from ganlab.data.mnist import load_mnist
    from ganlab.metrics.measurer import real_images

    test, _ = real_images(load_mnist(str(root), split="test", batch_size=256), n)
    train, _ = real_images(load_mnist(str(root), split="train", batch_size=256), n)
    noisy = train.clone()
    where = torch.rand(noisy.shape, generator=torch.Generator().manual_seed(0)) < 0.25
    noisy[where] = torch.randint(0, 256, (int(where.sum()),), generator=torch.Generator().manual_seed(1),
                                 dtype=torch.uint8)
    return {"test": test, "train": train, "noisy": noisy}


def main() -> None:
    from ganlab.metrics import nvidia_inception
    from ganlab.metrics.stats import frechet_distance, kernel_inception_distance, mean_and_covariance

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    sets = image_sets(args.data, args.n)
    device = torch.device("cpu")
    print(f"{args.n} images a set, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| variant | s / 1,000 images | FID test-train | FID test-noisy | KID test-noisy | features vs fp32 |")
    print("|---|---|---|---|---|---|")
    reference = None
    for label, (channels_last, bf16) in VARIANTS.items():
        nvidia_inception.features(sets["test"][:50], device, channels_last=channels_last, bfloat16=bf16)  # warm
        start = time.perf_counter()
        found = {name: nvidia_inception.features(images, device, channels_last=channels_last, bfloat16=bf16).float()
                 for name, images in sets.items()}
        per_1000 = (time.perf_counter() - start) / (3 * args.n) * 1000
        stats = {name: mean_and_covariance(f) for name, f in found.items()}
        fid_near = frechet_distance(*stats["test"], *stats["train"])
        fid_far = frechet_distance(*stats["test"], *stats["noisy"])
        kid_far = kernel_inception_distance(found["test"], found["noisy"], subset_size=min(1000, args.n))
        if reference is None:
            reference, drift = found, "-"
        else:
            moved = max(float((found[k] - reference[k]).norm() / reference[k].norm()) for k in found)
            drift = f"{moved:.1e} relative"
        print(f"| {label} | {per_1000:.1f} | {fid_near:.2f} | {fid_far:.2f} | {kid_far:.4f} | {drift} |", flush=True)


if __name__ == "__main__":
    main()
