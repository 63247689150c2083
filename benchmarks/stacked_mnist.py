"""Stacked MNIST, the mode-collapse benchmark (PacGAN Table 2, VEEGAN, R3GAN): 1,000 modes (three
independent digits as R, G, B). The plain DCGAN against recipes, each at the same steps, with the
modes covered and the KL of the mode histogram to uniform on 26,000 samples (the PacGAN protocol),
measured every --every steps by an MLP MNIST classifier that labels each channel.

    python -m benchmarks.stacked_mnist --data ../shared/data [--steps 8000] [--only dcgan,pacdcgan2,r3gan_ema]

A run already there with fewer steps is resumed to --steps (its wall time adds up).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.common import folder, ganlab, mnist_judge
from ganlab.records.logging import read_metrics

RUNS = {  # name -> overrides
    "dcgan": [],
    "pacdcgan2": ["model.discriminator.pack=2"],
    # R3GAN's loss (RpGAN + R1 + R2, gamma 1), its penalties lazily every 4 steps (weighted 4 times),
    # and an EMA of G (half-life 10,000 images) that the metric samples
    "r3gan_ema": ["loss=r3gan", "loss.penalties.r1.every=4", "loss.penalties.r2.every=4", "schedule.ema_kimg=10"],
}
METRICS = ["metrics.names=[stacked_modes]", "metrics.n=26000", "metrics.best=stacked_kl", "progress=false",
           "device=auto", "schedule.snapshot_every=0"]


def measured(run_dir: Path) -> list[dict]:
    """The run's measurements (rows of metrics.jsonl with stacked_modes), oldest first."""
    rows = read_metrics(run_dir) if (run_dir / "metrics.jsonl").exists() else []
    return [r for r in rows if "metrics/stacked_modes" in r]


def real_reference(root: Path, judge: Path) -> dict[str, float]:
    """Modes and KL of 26,000 real stacked images (from the MNIST test digits), as the same judge sees them:
    what a perfect generator would score (a uniform draw of 26,000 still has KL ~ 0.02)."""
    from ganlab.data.stacked import load_stacked_mnist
    from ganlab.metrics.classifier import mode_statistics
    from ganlab.training.measuring import open_judge

    real = load_stacked_mnist(str(root), split="test", size=26000)
    classifier = open_judge(str(judge), real.facts, torch.device("cpu"), (), "metrics.classifier")
    return mode_statistics(classifier.channel_modes(real.images, torch.device("cpu")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--every", type=int, default=2000)
    parser.add_argument("--only", default="dcgan,pacdcgan2,r3gan_ema")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_stacked"))
    args = parser.parse_args()
    root, out = args.data.resolve(), args.out.resolve()
    judge = mnist_judge(root, out)
    wanted = args.only.split(",")
    for name in wanted:
        run_dir = out / folder(name)
        rows = measured(run_dir)
        if rows and rows[-1]["step"] >= args.steps:
            continue
        more = ["resume=true"] if (run_dir / "checkpoints" / "last.pt").exists() else []  # a longer --steps extends
        seconds = ganlab("dataset=stacked_mnist", f"dataset.root={root}", *RUNS[name], f"schedule.steps={args.steps}",
                         f"schedule.eval_every={args.every}", *METRICS, *more,
                         f"metrics.classifier={judge / 'checkpoints' / 'last.pt'}", f"hydra.run.dir={run_dir}")
        wall = run_dir / "wall_seconds.txt"
        wall.write_text(f"{seconds + (float(wall.read_text()) if more and wall.exists() else 0):.0f}\n")
    print("Stacked MNIST (60,000 stacked training images), batch 64; 26,000 samples per measurement, each "
          "channel labelled by an MLP MNIST classifier\n")
    print("| run | step | modes (of 1,000) | KL to uniform | wall time |\n|---|---|---|---|---|")
    real = real_reference(root, judge / "checkpoints" / "last.pt")
    print(f"| real stacked test digits (the floor: 26,000 draws, judge errors) | - | {real['stacked_modes']:.0f} "
          f"| {real['stacked_kl']:.3f} | - |")
    for name in wanted:
        run_dir = out / folder(name)
        rows = measured(run_dir)
        wall = (run_dir / "wall_seconds.txt").read_text().strip() + " s"
        for row in rows:
            print(f"| {name} | {row['step']:,} | {row['metrics/stacked_modes']:.0f} | {row['metrics/stacked_kl']:.3f} "
                  f"| {wall if row is rows[-1] else ''} |")


if __name__ == "__main__":
    main()
