"""Kill campaign: SIGKILL a `ganlab train` process at chosen steps (mid-step, during checkpoint and
log writes) and at random moments of start-up, resume it each time, and check that the finished
run equals an uninterrupted one: the same metrics.jsonl rows (bit for bit; CPU, one thread), the
same weights, and no stray files. The tally counts kills by the phase they landed in.

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


def saved_step(run_dir: Path) -> int | None:
    path = run_dir / "checkpoints" / "last.pt"
    try:
        return int(torch.load(path, weights_only=True)["step"]) if path.exists() else None
    except Exception:  # noqa: BLE001 - a damaged or half-renamed file counts as no progress; resume falls back
        return None


def wait_for_step(run_dir: Path, proc: subprocess.Popen, target: int, timeout: float) -> None:
    """Until the attempt's last.pt holds `target` or a later step (training runs), or the process ends."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        step = saved_step(run_dir)
        if step is not None and step >= target:
            return
        time.sleep(0.005)


def campaign(workdir: Path, kills: int, seed: int = 0, steps: int = 240, start_up_share: float = 0.15) -> dict:
    """Run the reference, then a victim killed `kills` times, each attempt `steps` long; returns the
    tally. Kills are aimed by step, not by time: most land in training, a few steps past the newest
    checkpoint and a random 0-25 ms later (mid-step, or inside a checkpoint, snapshot, grid or log
    write, one of which happens every step); `start_up_share` of them land at a random moment of
    start-up (imports, composition, building). Each kill is counted by the phase it landed in."""
    rng = random.Random(seed)
    reference, victim = workdir / "reference", workdir / "victim"
    duration = timed_reference(reference, workdir, steps)
    tally = {"kills": 0, "in_training": 0, "during_start_up": 0, "after_the_end": 0}
    for _ in range(kills):
        before = saved_step(victim)
        proc = launch(victim, workdir, resume=victim.is_dir(), steps=steps)
        if rng.random() < start_up_share:
            time.sleep(rng.uniform(0.05, 2.0))
        else:
            wait_for_step(victim, proc, (before or 0) + rng.randint(1, 2), timeout=min(120.0, 10 + 2 * duration))
            time.sleep(rng.uniform(0.0, 0.025))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tally["kills"] += 1
        if proc.returncode != -signal.SIGKILL:
            tally["after_the_end"] += 1
        elif saved_step(victim) == before:
            tally["during_start_up"] += 1  # imports, composition, building, or the first step
        else:
            tally["in_training"] += 1
        if saved_step(victim) == steps:  # finished: later kills would all land after the end
            break
    finish(victim, workdir, resume=victim.is_dir(), steps=steps)
    tally["problems"] = compare(reference, victim)
    tally["stray_temporaries"] = [str(p) for p in victim.rglob("*") if p.name.endswith(".tmp") or ".partial" in p.name
                                  or p.name.endswith(".claim")]
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=240, help="each attempt's length; every kill in training "
                        "needs a step of progress, so more kills want more steps")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tally = campaign(Path(tmp), args.kills, args.seed, steps=args.steps)
    print(json.dumps(tally, indent=2))
    ok = not tally["problems"] and not tally["stray_temporaries"]
    print(f"{tally['kills']} kills ({tally['in_training']} in training, {tally['during_start_up']} during start-up, "
          f"{tally['after_the_end']} after the end): "
          f"{'every resume matched the uninterrupted run' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
