"""Diffusion and flow matching against the DCGAN on the real MNIST, at equal CPU time.

    python -m benchmarks.diffusion_mnist --data ../shared/data [--minutes 30] [--n 1000] [--sweep-n 200]
        [--sweep-steps 10,25,50,100,250] [--out outputs/bench_diffusion_mnist]

1. Quality against wall-clock: mnist_ddpm, mnist_flow, mnist_flow_cfg and the DCGAN defaults (model=dcgan
   dataset=mnist) each get the same CPU time (--minutes). Each model's step time is measured first in
   a short run of its own (nothing else running), and its run gets the steps that fill the budget, so
   the comparison does not depend on what else the machine does later. Judged alike by `ganlab eval`:
   classifier FD, classes covered, class KL, precision/recall of --n fresh samples against the 10,000
   MNIST test images, by an MLP classifier trained on the MNIST training split.
2. Quality against sampling cost: classifier FD of --sweep-n samples at each of --sweep-steps for each
   sampler (ddim and ddpm on the DDPM run; euler and heun on the flow run), with images per second;
   a table and a PNG figure.
3. Class-conditional: class_accuracy of mnist_flow_cfg at guidance 1, 2 and 4.
Prints Markdown tables; everything lands under --out (runs are reused when present).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import ganlab, mnist_judge
from ganlab.records.logging import read_metrics

MODELS = {"mnist_ddpm": ["experiment=mnist_ddpm"], "mnist_flow": ["experiment=mnist_flow"],
          "mnist_flow_cfg": ["experiment=mnist_flow_cfg"], "dcgan (defaults)": ["model=dcgan", "dataset=mnist"]}
QUIET = ["progress=false", "device=cpu", "schedule.snapshot_every=0"]
ROOT = Path("../shared/data")  # where MNIST lies (--data), for eval's real side


def seconds_per_step(name: str, overrides: list[str], root: Path, out: Path) -> float:
    """The median step time of a short run of the model alone (log rows' images per second)."""
    run_dir = out / "calibrate" / name.split()[0]
    steps = 300 if "dcgan" in name else 40
    if not (run_dir / "metrics.jsonl").exists():
        ganlab(*overrides, f"dataset.root={root}", f"schedule.steps={steps}", "schedule.log_every=5",
               f"schedule.sample_every={steps * 10}", f"schedule.ckpt_every={steps * 10}", *QUIET,
               f"hydra.run.dir={run_dir}")
    rows = [r for r in read_metrics(run_dir) if "perf/images_per_s" in r][2:]  # past the first, warming rows
    return 64 / statistics.median(r["perf/images_per_s"] for r in rows)


def evaluate(run_dir: Path, judge: Path, n: int, *extra: str, out: Path | None = None) -> dict:
    out = out or run_dir / "eval.json"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ganlab", "eval", f"run={run_dir}", f"classifier={judge}", f"n={n}",
                    "real_n=10000", "device=cpu", f"dataset_root={ROOT}", f"out={out}", *extra], check=True,
                   stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    result["seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=30.0, help="CPU time each model trains for")
    parser.add_argument("--n", type=int, default=1000, help="samples each model is judged on")
    parser.add_argument("--sweep-n", type=int, default=200, help="samples per point of the sampling-cost sweep")
    parser.add_argument("--sweep-steps", default="10,25,50,100,250")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: sweep, guidance")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_diffusion_mnist"))
    args = parser.parse_args()
    global ROOT
    root, out = args.data.resolve(), args.out.resolve()
    ROOT = root
    judge = mnist_judge(root, out) / "checkpoints" / "last.pt"
    budget = args.minutes * 60
    plan = {name: seconds_per_step(name, overrides, root, out) for name, overrides in MODELS.items()}
    results = {}
    for name, overrides in MODELS.items():
        steps = max(1, int(budget / plan[name]))
        run_dir = out / f"{name.split()[0]}_{args.minutes:g}min"
        if not (run_dir / "checkpoints" / "last.pt").exists():
            ganlab(*overrides, f"dataset.root={root}", f"schedule.steps={steps}", f"schedule.sample_every={steps}",
                   f"schedule.ckpt_every={max(1, steps // 4)}", *QUIET, f"hydra.run.dir={run_dir}")
        metrics = ["metrics=[classifier_fd,classifier,classifier_pr]"]
        results[name] = (steps, evaluate(run_dir, judge, args.n, *metrics, out=run_dir / f"eval_n{args.n}.json"))
    print(f"## Equal CPU time: {args.minutes:g} minutes each (2 CPU threads), {args.n} samples against the 10,000 "
          "MNIST test images, judged by an MLP classifier\n")
    print("| model | s/step | steps | sampler | classifier FD | classes covered | class KL | precision | recall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (steps, result) in results.items():
        m, sampling = result["metrics"], result["protocol"].get("sampling")
        how = f"{sampling['sampler']} {sampling['steps']}" if sampling else "one pass"
        print(f"| {name} | {plan[name]:.3f} | {steps:,} | {how} | {m['classifier_fd']:.2f} | {m['classes_covered']:.0f} | "
              f"{m['class_kl']:.3f} | {m['classifier_precision']:.3f} | {m['classifier_recall']:.3f} |")
    if "sweep" not in args.skip:
        sweep(out, judge, args, [int(s) for s in args.sweep_steps.split(",")])
    if "guidance" not in args.skip:
        cfg_dir = out / f"mnist_flow_cfg_{args.minutes:g}min"
        print("\n## Class-conditional flow (mnist_flow_cfg): classifier-free guidance\n")
        print("| guidance | class_accuracy | classifier FD |")
        print("|---|---|---|")
        for w in (1, 2, 4):
            r = evaluate(cfg_dir, judge, args.sweep_n * 2, "metrics=[class_accuracy,classifier_fd]", f"guidance={w}",
                         out=cfg_dir / f"eval_guidance{w}.json")
            print(f"| {w} | {r['metrics']['class_accuracy']:.3f} | {r['metrics']['classifier_fd']:.2f} |")


def sweep(out: Path, judge: Path, args, steps_list: list[int]) -> None:
    """FD against sampling steps for each sampler, and images per second of sampling."""
    runs = {"ddim": "mnist_ddpm", "ddpm": "mnist_ddpm", "euler": "mnist_flow", "heun": "mnist_flow"}
    table = {}
    for sampler, model in runs.items():
        run_dir = out / f"{model}_{args.minutes:g}min"
        for steps in steps_list:
            r = evaluate(run_dir, judge, args.sweep_n, "metrics=[classifier_fd]", f"sampler={sampler}", f"steps={steps}",
                         out=run_dir / f"sweep_{sampler}_{steps}.json")
            table[(sampler, steps)] = (r["metrics"]["classifier_fd"], args.sweep_n / r["seconds"])
    print(f"\n## Sampling cost: classifier FD of {args.sweep_n} samples (noisy at this n: compare within a row)\n")
    print("| sampler | " + " | ".join(f"{s} steps" for s in steps_list) + " |")
    print("|---|" + "---|" * len(steps_list))
    for sampler in runs:
        print(f"| {sampler} | " + " | ".join(f"{table[(sampler, s)][0]:.2f} ({table[(sampler, s)][1]:.1f} img/s)"
                                              for s in steps_list) + " |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for sampler in runs:
        ax.plot(steps_list, [table[(sampler, s)][0] for s in steps_list], marker="o", label=sampler)
    ax.set_xscale("log"), ax.set_xlabel("sampling steps (network calls: heun twice)"), ax.set_ylabel("classifier FD")
    ax.set_title(f"MNIST, {args.minutes:g} CPU minutes of training, {args.sweep_n} samples"), ax.legend()
    fig.tight_layout()
    fig.savefig(out / "sampling_cost.png", dpi=120)
    print(f"\nfigure: {out / 'sampling_cost.png'}")


if __name__ == "__main__":
    main()
