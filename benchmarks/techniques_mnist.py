"""Training techniques on the real MNIST (not a test): DiffAugment on 600 images and on the full set,
the conditional models (concatenation, ACGAN, projection) and the losses (BCE, hinge, R3GAN), each
at the same number of steps, judged at the end by an MLP classifier trained first on MNIST itself.

    python -m benchmarks.techniques_mnist --data ../shared/data [--steps 2000] [--only aug,cond,loss]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import folder, ganlab, mnist_judge
from ganlab.records.logging import read_metrics

METRICS = ["metrics.n=2000", "metrics.best=classifier_fd", "progress=false", "device=auto"]
AUGMENT = ["augment.policy=[translation,cutout]"]
MILD = [*AUGMENT, "augment.translation=0.0625", "augment.cutout=0.25"]  # 2 px of shift, a 7 px square at 28 px
ADA = ["augment=ada"]  # MILD with ADA's adaptive p (configs/augment/ada.yaml)
RUNS = {  # name -> (table, overrides)
    "dcgan, 600 images": ("aug", ["dataset.limit=600"]),
    "dcgan, 600 images, DiffAugment": ("aug", ["dataset.limit=600", *AUGMENT]),
    "dcgan, 60,000 images": ("aug", []),
    "dcgan, 60,000 images, DiffAugment": ("aug", AUGMENT),
    "dcgan, 600 images, mild DiffAugment": ("aug", ["dataset.limit=600", *MILD]),
    "dcgan, 60,000 images, mild DiffAugment": ("aug", MILD),
    "dcgan, 600 images, mild DiffAugment, ADA": ("aug", ["dataset.limit=600", *ADA]),
    "dcgan, 60,000 images, mild DiffAugment, ADA": ("aug", ADA),
    "cgan (concatenation)": ("cond", ["model=cgan"]),
    "acgan": ("cond", ["model=acgan"]),
    "cgan_pd (projection)": ("cond", ["model=cgan_pd"]),
    "dcgan, loss=hinge": ("loss", ["loss=hinge"]),
    "dcgan, loss=r3gan": ("loss", ["loss=r3gan"]),
}
SHARED = {"loss": ["dcgan, 60,000 images"]}  # the BCE row of the loss table is the augmentation table's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--only", default="aug,cond,loss")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_techniques"))
    args = parser.parse_args()
    root, out, tables = args.data.resolve(), args.out.resolve(), args.only.split(",")
    judge = mnist_judge(root, out)
    accuracy = json.loads((judge / "metrics.jsonl").read_text().splitlines()[-1])["eval/accuracy"]
    wanted = [n for n, (t, _) in RUNS.items() if t in tables or any(n in SHARED.get(t, []) for t in tables)]
    for name in wanted:
        table, overrides = RUNS[name]
        run_dir = out / folder(name)
        if (run_dir / "checkpoints" / "last.pt").exists():
            continue
        names = "[classifier,classifier_fd,classifier_pr,class_accuracy]" if table == "cond" else \
            "[classifier,classifier_fd,classifier_pr]"
        seconds = ganlab("dataset=mnist", f"dataset.root={root}", *overrides, f"schedule.steps={args.steps}",
                         f"schedule.eval_every={args.steps}", f"metrics.names={names}", *METRICS,
                         f"metrics.classifier={judge / 'checkpoints' / 'last.pt'}", f"hydra.run.dir={run_dir}")
        (run_dir / "wall_seconds.txt").write_text(f"{seconds:.0f}\n")
    print(f"judge: MLP classifier, MNIST test accuracy {accuracy:.4f}; 2,000 fresh samples vs the 10,000 test "
          f"images, after {args.steps} steps of batch 64")
    for table in tables:
        print(f"\n{table}:\n| run | classifier FD | classes covered | class KL | precision | recall | class accuracy "
              "| wall time |\n|---|---|---|---|---|---|---|---|")
        for name in [*SHARED.get(table, []), *(n for n, (t, _) in RUNS.items() if t == table)]:
            run_dir = out / folder(name)
            rows = read_metrics(run_dir)
            last = [r for r in rows if "metrics/classifier_fd" in r][-1]
            value = lambda key, fmt="{:.3f}": fmt.format(last[key]) if key in last else "-"  # noqa: E731
            wall = (run_dir / "wall_seconds.txt").read_text().strip() + " s" if (run_dir / "wall_seconds.txt").exists() else "-"
            p = [r["augment/p"] for r in rows if "augment/p" in r]
            name = f"{name} (p at the end {p[-1]:.3f})" if p and "adaptive=true" in str(RUNS.get(name)) else name
            print(f"| {name} | {value('metrics/classifier_fd', '{:.2f}')} | {value('metrics/classes_covered', '{:.0f}')} "
                  f"| {value('metrics/class_kl')} | {value('metrics/classifier_precision')} "
                  f"| {value('metrics/classifier_recall')} | {value('metrics/class_accuracy')} | {wall} |")


if __name__ == "__main__":
    main()
