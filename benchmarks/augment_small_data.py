"""Augmentation on few images, over a longer run: the default MNIST DCGAN on a fixed subset
(`dataset.limit`), with and without augmentation, judged every `--eval-every` steps by the MNIST
classifier of the other benchmarks (classifier FD and class KL of 2,000 samples against the 10,000
test images), to see whether D overfits the few images and whether augmentation holds it off.

    python -m benchmarks.augment_small_data --data ../shared/data [--limit 600] [--steps 8000] [--rows none,ada]

`--limit 60000` (or more) trains on the whole MNIST training set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import folder, ganlab, mnist_judge
from benchmarks.techniques_mnist import ADA, AUGMENT, MILD
from ganlab.records.logging import read_metrics

# name -> overrides; the *_fast rows let p go 0 -> 1 in 100 kimg, not ADA's 500, because these runs see
# only 640 kimg in all (ADA's were 25,000)
ROWS = {"none": [], "diffaugment": AUGMENT, "mild": MILD, "ada": ADA,
        "ada_fast": [*ADA, "augment.kimg=100"],
        "ada_strong_fast": [*AUGMENT, "augment.adaptive=true", "augment.kimg=100"]}
LAST = 3  # judged steps averaged: one run's FD moves by 1-2 between judged steps, their mean less


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--rows", default="none,ada", help=f"any of {', '.join(ROWS)}")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_augment_small_data"))
    args = parser.parse_args()
    root, out = args.data.resolve(), args.out.resolve()
    judge = mnist_judge(root, out) / "checkpoints" / "last.pt"
    table = {}
    for row in args.rows.split(","):
        run_dir = out / folder(f"limit{args.limit}_{row}_{args.steps}")
        if not (run_dir / "wall_seconds.txt").exists():
            seconds = ganlab("dataset=mnist", f"dataset.root={root}", f"dataset.limit={args.limit}", *ROWS[row],
                             f"schedule.steps={args.steps}", f"schedule.eval_every={args.eval_every}",
                             "metrics.names=[classifier,classifier_fd]", "metrics.n=2000", f"metrics.classifier={judge}",
                             "progress=false", "device=auto", f"hydra.run.dir={run_dir}")
            (run_dir / "wall_seconds.txt").write_text(f"{seconds:.0f}\n")
        rows = read_metrics(run_dir)
        table[row] = ({r["step"]: r for r in rows if "metrics/classifier_fd" in r},
                      [r["augment/p"] for r in rows if "augment/p" in r],
                      float((run_dir / "wall_seconds.txt").read_text()))
    steps = sorted({s for evals, _, _ in table.values() for s in evals})
    print(f"MNIST, {args.limit} training images, batch 64; classifier FD (class KL) at each step\n")
    print("| augmentation | " + " | ".join(f"step {s:,}" for s in steps) +
          f" | FD, mean of the last {LAST} | p at the end | wall time |")
    print("|---|" + "---|" * (len(steps) + 3))
    for row, (evals, ps, seconds) in table.items():
        cells = [f"{evals[s]['metrics/classifier_fd']:.2f} ({evals[s]['metrics/class_kl']:.3f})" if s in evals else "-"
                 for s in steps]
        last = [evals[s]["metrics/classifier_fd"] for s in sorted(evals)[-LAST:]]
        p = f"{ps[-1]:.3f}" if ps else "-"
        print(f"| {row} | " + " | ".join(cells) + f" | {sum(last) / len(last):.2f} | {p} | {seconds:.0f} s |")


if __name__ == "__main__":
    main()
