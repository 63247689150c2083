"""Inception FID offline on the real MNIST (not a test; needs the ganlab[fid] extra): sanity checks
of the bundled network, its cost, and the default DCGAN over 3 seeds next to its classifier FD.

    python -m benchmarks.inception_mnist --data ../shared/data [--n 1000] [--steps 2000]

1. Two disjoint halves of the MNIST test split (n images each) give a small FID; real digits against
   uniform noise a large one; the cost of the features per 1,000 images on this machine.
2. `ganlab train -m seed=0,1,2 dataset=mnist` (the default DCGAN, `--steps` steps, snapshots every
   quarter), judged at the end by the MLP classifier (classifier FD), then `ganlab eval metrics=[fid]`
   on n generated against n test images for each seed and for seed 0's snapshots (FID as it trains),
   and `ganlab report` on the sweep: mean and standard deviation over the seeds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch


def ganlab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ganlab", *args], check=True, stdout=subprocess.DEVNULL)


def sanity(root: Path, n: int) -> None:
    from ganlab.data.mnist import load_mnist
    from ganlab.metrics import nvidia_inception
    from ganlab.metrics.stats import frechet_distance, mean_and_covariance

    test = load_mnist(str(root), split="test", batch_size=64).images
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    a, b = test[order[:n]], test[order[n:2 * n]]
    noise = torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    device = torch.device("cpu")
    start = time.perf_counter()
    fa = nvidia_inception.features(a, device)
    per_thousand = (time.perf_counter() - start) / n * 1000
    fb, fn = nvidia_inception.features(b, device), nvidia_inception.features(noise, device)
    stats = {name: mean_and_covariance(f) for name, f in (("a", fa), ("b", fb), ("noise", fn))}
    halves = frechet_distance(*stats["a"], *stats["b"])
    against_noise = frechet_distance(*stats["a"], *stats["noise"])
    print(f"| two disjoint halves of the MNIST test split ({n} + {n}) | {halves:.2f} |")
    print(f"| MNIST test digits against uniform noise ({n} + {n}) | {against_noise:.2f} |")
    print(f"\nfeatures: {per_thousand:.1f} s per 1,000 images on this CPU ({torch.get_num_threads()} threads)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--n", type=int, default=500, help="images a side (500: about 45 s of features each here)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_inception"))
    parser.add_argument("--judge", type=Path, default=Path("outputs/bench_techniques/classifier/checkpoints/last.pt"),
                        help="an MNIST classifier run's checkpoint (benchmarks.techniques_mnist trains one)")
    args = parser.parse_args()
    root, out = args.data.resolve(), args.out.resolve()
    print("| comparison | FID |\n|---|---|")
    sanity(root, args.n)
    sweep = out / "seeds"
    if not sweep.is_dir():
        ganlab("train", "-m", "seed=0,1,2", "dataset=mnist", f"dataset.root={root}", f"schedule.steps={args.steps}",
               f"schedule.snapshot_every={args.steps // 4}", "schedule.keep_last=4", f"schedule.eval_every={args.steps}",
               "metrics.names=[classifier_fd]", "metrics.n=2000", f"metrics.classifier={args.judge.resolve()}",
               "progress=false", f"hydra.sweep.dir={sweep}")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit())
    for job in jobs:
        if not (job / "eval.json").is_file():
            ganlab("eval", f"run={job}", "metrics=[fid]", f"n={args.n}", f"real_n={args.n}", "device=cpu")
    print(f"\n| seed | Inception FID (n = {args.n} vs {args.n} test) | classifier FD (2,000 vs the 10,000 test) |")
    print("|---|---|---|")
    for job in jobs:
        fid = json.loads((job / "eval.json").read_text())["metrics"]["fid"]
        rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        fd = [r for r in rows if "metrics/classifier_fd" in r][-1]["metrics/classifier_fd"]
        print(f"| {job.name} | {fid:.2f} | {fd:.2f} |")
    ganlab("report", str(sweep))
    print(f"\nreport: {sweep / 'report' / 'runs.md'}")
    print(f"\n| seed 0 at step | Inception FID (n = {args.n}) |\n|---|---|")
    for step in range(args.steps // 4, args.steps + 1, args.steps // 4):
        target = out / f"seed0_step_{step}.json" if step < args.steps else jobs[0] / "eval.json"
        if not target.is_file():
            ganlab("eval", f"run={jobs[0]}", f"checkpoint=step_{step}", "metrics=[fid]", f"n={args.n}",
                   f"real_n={args.n}", "device=cpu", f"out={target}")
        print(f"| {step} | {json.loads(target.read_text())['metrics']['fid']:.2f} |")


if __name__ == "__main__":
    main()
