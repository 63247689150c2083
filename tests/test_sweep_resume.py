"""Resuming a sweep (issue 33): a real 4-job sweep killed in its third job, resumed, equals an
uninterrupted one; job folders pass to resume=true as typed; sweep.json says what each job did."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import CLI_TINY, run_cli
from ganlab import checkpoint

SWEEP = [*CLI_TINY, "debug=tiny", "schedule.steps=120", "schedule.ckpt_every=10", "schedule.log_every=10",
         "schedule.sample_every=60", "schedule.snapshot_every=0", "loss=bce,hinge", "optimizer.lr=1e-4,2e-4"]


def ganlab(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # bit-exact numbers need the same thread count everywhere
    return subprocess.Popen([sys.executable, "-m", "ganlab", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows(job: Path) -> list[dict]:
    lines = (job / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("perf/")} for line in lines]


def weights(job: Path) -> dict[str, torch.Tensor]:
    state = checkpoint.load(job / "checkpoints" / "last.pt")
    return {f"{net}.{name}": t for net, tensors in state["networks"].items() for name, t in tensors.items()}


@pytest.mark.slow
def test_a_sweep_killed_in_its_third_job_resumes_to_the_uninterrupted_sweeps_numbers(tmp_path):
    whole = ganlab("train", "-m", *SWEEP, "hydra.sweep.dir=whole", cwd=tmp_path)
    killed = ganlab("train", "-m", *SWEEP, "hydra.sweep.dir=killed", cwd=tmp_path)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "killed").glob("2_*/checkpoints/last.pt")):
        assert killed.poll() is None and time.monotonic() < deadline, killed.communicate()
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert whole.wait(timeout=300) == 0, whole.communicate()
    record = json.loads((tmp_path / "killed" / "sweep.json").read_text())
    assert [job["status"] for job in record["jobs"]] == ["finished", "finished", "running", "planned"]

    resumed = run_cli("resume", "killed", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr
    names = sorted(p.name for p in (tmp_path / "whole").iterdir() if p.is_dir())
    assert len(names) == 4 and names == sorted(p.name for p in (tmp_path / "killed").iterdir() if p.is_dir())
    assert f"{names[0]}: finished at step 120, skipped" in resumed.stdout
    for name in names:
        assert rows(tmp_path / "killed" / name) == rows(tmp_path / "whole" / name), name
        mine, theirs = weights(tmp_path / "killed" / name), weights(tmp_path / "whole" / name)
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine), name
    record = json.loads((tmp_path / "killed" / "sweep.json").read_text())
    assert [job["status"] for job in record["jobs"]] == ["finished"] * 4
    report = run_cli("report", "killed", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert all(f"{name}: finished" in (tmp_path / "killed" / "report" / "runs.md").read_text() for name in names)


def test_a_sweep_job_folder_passes_to_resume_as_typed(tmp_path):
    sweep = [*CLI_TINY, "debug=tiny", "schedule.steps=4", "loss=bce,hinge"]
    assert run_cli("train", "-m", *sweep, "hydra.sweep.dir=S", cwd=tmp_path).returncode == 0
    result = run_cli("train", "resume=true", "hydra.run.dir=S/1_loss=hinge", "schedule.steps=6", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "S" / "1_loss=hinge" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 6
    again = run_cli("train", "-m", "resume=true", "hydra.sweep.dir=S", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0_loss=bce: finished at step 4, skipped" in again.stdout
    assert "1_loss=hinge: finished at step 6, skipped" in again.stdout


def test_a_sweep_record_naming_a_folder_outside_the_sweep_is_refused(tmp_path):
    sweep = tmp_path / "S"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"format": 1, "jobs": [
        {"num": 0, "dir": "../elsewhere", "overrides": [], "config": {}, "status": "planned"}]}))
    result = run_cli("resume", str(sweep), cwd=tmp_path)
    assert result.returncode == 2 and "not a folder inside the sweep" in result.stderr, result.stderr
    assert not (tmp_path / "elsewhere").exists()
