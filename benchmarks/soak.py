"""Kill campaign: SIGKILL a `ganlab train` process at random moments (start-up, mid-step, during
checkpoint and log writes), resume it each time, and check that the finished run equals an
uninterrupted one: the same metrics.jsonl rows (bit for bit; CPU, one thread), the same weights,
and no stray files.

    python -m benchmarks.soak --kills 100          # prints the tally; the test suite runs a handful
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# Tiny, but every maintenance path runs often: a checkpoint every step, snapshots, grids, logs.
RUN_ARGS = ["device=cpu", "progress=false", "dataset.resolution=16", "dataset.batch_size=16",
            "model.generator.width=8", "model.discriminator.width=8", "schedule.log_every=2",
            "schedule.sample_every=5", "schedule.ckpt_every=1", "schedule.snapshot_every=7", "schedule.keep_last=2",
            "schedule.ema_decay=0.9"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def launch(run_dir: Path, cwd: Path, resume: bool, steps: int) -> subprocess.Popen:
    args = [*RUN_ARGS, f"schedule.steps={steps}", f"hydra.run.dir={run_dir}"] + (["resume=true"] if resume else [])
    return subprocess.Popen([sys.executable, "-m", "ganlab", "train", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(run_dir: Path, cwd: Path, resume: bool, steps: int) -> None:
    proc = launch(run_dir, cwd, resume, steps)
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"run in {run_dir} failed with {proc.returncode}: {err[-2000:]}")


def rows(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("perf/")} for line in lines]


def files(run_dir: Path) -> set[str]:
    """The run's files, less those that legitimately differ after restarts (events, Hydra's logs)."""
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()
            and not p.name.startswith("events.out") and ".hydra" not in p.parts and p.name != "train.log"}


def compare(reference: Path, victim: Path) -> list[str]:
    problems = []
    if rows(victim) != rows(reference):
        problems.append("metrics.jsonl differs")
    a = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(victim / "checkpoints" / "last.pt", weights_only=True)
    for part in ("networks", "ema"):
        for net, tensors in a[part].items():
            if any(not torch.equal(t, b[part][net][k]) for k, t in tensors.items()):
                problems.append(f"{part}.{net} weights differ")
    if files(victim) != files(reference):
        problems.append(f"files differ: {sorted(files(victim) ^ files(reference))}")
    return problems


def timed_reference(run_dir: Path, cwd: Path, steps: int) -> float:
    """Run the uninterrupted reference; returns its duration in seconds."""
    started = time.perf_counter()
    finish(run_dir, cwd, resume=False, steps=steps)
    return time.perf_counter() - started


def wait_for_progress(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    """Until `path` is rewritten (a new checkpoint of this attempt), or the process ends."""
    before = path.stat().st_mtime_ns if path.exists() else None
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and path.stat().st_mtime_ns != before:
            return
        time.sleep(0.01)


def saved_step(run_dir: Path) -> int | None:
    path = run_dir / "checkpoints" / "last.pt"
    try:
        return int(torch.load(path, weights_only=True)["step"]) if path.exists() else None
    except Exception:  # noqa: BLE001 - a damaged file counts as no progress; resume falls back
        return None


def campaign(workdir: Path, kills: int, seed: int = 0, window: tuple[float, float] = (0.3, 6.0),
             steps: int = 60) -> dict:
    """Run the reference, then a victim killed `kills` times (every other kill just after a new
    checkpoint of that attempt, the rest at random moments), each run `steps` long; returns the tally."""
    rng = random.Random(seed)
    reference, victim = workdir / "reference", workdir / "victim"
    duration = timed_reference(reference, workdir, steps)
    tally = {"kills": 0, "during_start_up": 0, "mid_run": 0, "after_the_end": 0}
    for _ in range(kills):
        before = saved_step(victim)
        proc = launch(victim, workdir, resume=victim.is_dir(), steps=steps)
        if tally["kills"] % 2 == 0:  # every other kill lands while training runs: after a new checkpoint
            wait_for_progress(victim / "checkpoints" / "last.pt", proc, timeout=120)
            time.sleep(rng.uniform(0.0, 0.3))
        else:  # the rest anywhere, start-up included
            time.sleep(rng.uniform(window[0], min(window[1], duration * 1.1)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tally["kills"] += 1
        if proc.returncode != -signal.SIGKILL:
            tally["after_the_end"] += 1
        elif saved_step(victim) == before:
            tally["during_start_up"] += 1  # imports, composition, building, or the first step
        else:
            tally["mid_run"] += 1
    finish(victim, workdir, resume=victim.is_dir(), steps=steps)
    tally["problems"] = compare(reference, victim)
    tally["stray_temporaries"] = [str(p) for p in victim.rglob("*.tmp")]
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tally = campaign(Path(tmp), args.kills, args.seed, steps=args.steps)
    print(json.dumps(tally, indent=2))
    ok = not tally["problems"] and not tally["stray_temporaries"]
    print(f"{tally['kills']} kills: {'every resume matched the uninterrupted run' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
