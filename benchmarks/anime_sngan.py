"""The anime SNGAN of the model card's command (`ganlab train model=sngan dataset=anime`, 64 px, widths
64, hinge loss), trained for --steps steps, then measured with Inception FID and KID offline (the
bundled inception-2015-12-05 network, `ganlab[fid]`) at each of --at, on --n generated images against
the data set's fixed 10% hold-out (`split=test`; the run trains on `split=all`, as the command does).

    python -m benchmarks.anime_sngan --data ../shared/data [--steps 1000] [--at 500,1000] [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import ganlab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--at", default="500,1000", help="steps whose checkpoints are measured")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_anime_sngan"))
    args = parser.parse_args()
    run_dir, images = args.out.resolve(), (args.data / "anime").resolve()
    at = [int(s) for s in args.at.split(",")]  # each a multiple of the first: snapshots are kept there
    if not (run_dir / "checkpoints" / "last.pt").exists():
        seconds = ganlab("model=sngan", "dataset=anime", f"dataset.root={images}", f"schedule.steps={args.steps}",
                         f"schedule.snapshot_every={min(at)}", "progress=false",
                         f"hydra.run.dir={run_dir}")
        (run_dir / "wall_seconds.txt").write_text(f"{seconds:.0f}\n")
    results = {}
    for step in at:
        out = run_dir / f"eval_step{step}.json"
        if not out.exists():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ganlab", "eval", f"run={run_dir}", f"checkpoint=step_{step}",
                            "metrics=[fid,kid]", f"n={args.n}", f"real_n={args.n}", f"out={out}"], check=True)
            (run_dir / f"eval_step{step}_seconds.txt").write_text(f"{time.perf_counter() - start:.0f}\n")
        results[step] = json.loads(out.read_text())
    wall = (run_dir / "wall_seconds.txt").read_text().strip()
    print(f"`ganlab train model=sngan dataset=anime schedule.steps={args.steps}`: {wall} s of training; "
          f"FID/KID on {args.n} generated images against {args.n} of the hold-out\n")
    print("| step | FID | KID x 1000 | eval time |\n|---|---|---|---|")
    for step, result in results.items():
        values = result["metrics"]
        seconds = (run_dir / f"eval_step{step}_seconds.txt").read_text().strip()
        print(f"| {step:,} | {values['fid']:.2f} | {values['kid'] * 1000:.2f} | {seconds} s |")


if __name__ == "__main__":
    main()
