"""Metrics during training on the real MNIST (not a test): the DCGAN with its default schedule
next to the lab's printed DCGAN, which collapses, both judged every 250 steps by an MLP
classifier trained first on MNIST itself.

    python -m benchmarks.metrics_mnist --data ../shared/data [--steps 2000] [--out /tmp/metrics_mnist]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import ganlab, mnist_judge
from ganlab.records.logging import read_metrics

METRICS = ["metrics.names=[classifier,classifier_fd,classifier_pr]", "metrics.best=classifier_fd", "metrics.n=2000",
           "schedule.eval_every=250", "progress=false", "device=auto"]


def rows(run_dir: Path) -> list[dict]:
    return [r for r in read_metrics(run_dir) if "metrics/classifier_fd" in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2000, help="2,000: the default schedule (schedule.steps)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_metrics_mnist"))
    args = parser.parse_args()
    root, out = args.data.resolve(), args.out.resolve()
    judge = mnist_judge(root, out)
    accuracy = json.loads((judge / "metrics.jsonl").read_text().splitlines()[-1])["eval/accuracy"]
    runs = {"dcgan (defaults)": ["model=dcgan", "dataset=mnist"],
            "lab 8 DCGAN (mnist_dcgan)": ["experiment=mnist_dcgan", "schedule.epochs=null"]}
    for name, overrides in runs.items():
        run_dir = out / name.split()[0].replace("lab", "lab8")
        if not (run_dir / "checkpoints" / "last.pt").exists():
            ganlab(*overrides, f"dataset.root={root}", f"schedule.steps={args.steps}", *METRICS,
                   f"metrics.classifier={judge / 'checkpoints' / 'last.pt'}", f"hydra.run.dir={run_dir}")
    print(f"judge: MLP classifier, MNIST test accuracy {accuracy:.4f}; 2,000 fresh samples vs the 10,000 test images")
    print("| run | step | classifier FD | classes covered | class entropy | class KL | precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    for name in runs:
        for r in rows(out / name.split()[0].replace("lab", "lab8")):
            print(f"| {name} | {r['step']} | {r['metrics/classifier_fd']:.2f} | {r['metrics/classes_covered']:.0f} | "
                  f"{r['metrics/class_entropy']:.3f} | {r['metrics/class_kl']:.3f} | "
                  f"{r['metrics/classifier_precision']:.3f} | {r['metrics/classifier_recall']:.3f} |")


if __name__ == "__main__":
    main()
