"""Exact resume: a run stopped at step N and resumed logs the same losses as an uninterrupted one."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import compose_config, run_cli
from ganlab.records.logging import read_metrics
from ganlab.training.train import train

# log_every=3 does not divide the stop step 5: the partial averaging window must survive the resume.
# The adaptive rule (always firing, decided one step late) needs the last step's gaps from the checkpoint.
COMMON = ["schedule.log_every=3", "schedule.ckpt_every=5", "schedule.sample_every=5", "schedule.ema_decay=0.5",
          "model.discriminator.dropout=0.2", "schedule.adaptive.phase=G", "schedule.adaptive.margin=-100",
          "schedule.adaptive.max_extra=2"]


def losses(run_dir):
    """Every logged number except the wall-clock ones (images/s)."""
    return [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in read_metrics(run_dir)]


def test_killed_run_resumed_from_its_checkpoint_logs_the_same_losses(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(compose_config([*COMMON, "schedule.steps=12", "schedule.snapshot_every=5"]), whole)
    # A run killed after step 7: its last checkpoint is from step 5, its logs already reach step 6.
    shutil.copytree(whole, killed)
    shutil.copy(whole / "checkpoints" / "step_000005.pt", killed / "checkpoints" / "last.pt")
    resumed = train(compose_config([*COMMON, "schedule.steps=12", "resume=true"]), killed)
    assert resumed.step == 12
    assert losses(killed) == losses(whole)  # bit-for-bit on CPU, the step-6 row not duplicated
    a = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    for part in ("networks", "ema"):
        for name, tensor in a[part]["generator"].items():
            assert torch.equal(tensor, b[part]["generator"][name]), (part, name)
    assert a["batches"] == b["batches"]


def test_resume_from_a_checkpoint_path_into_a_new_run(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    train(compose_config([*COMMON, "schedule.steps=5"]), first)
    loop = train(compose_config([*COMMON, "schedule.steps=7", f"resume={first}/checkpoints/last.pt"]), second)
    assert loop.step == 7
    assert [r["step"] for r in read_metrics(second)] == [6, 7]


@pytest.mark.slow
def test_resume_true_for_a_folder_that_does_not_exist_says_what_to_do(tmp_path):
    result = run_cli("train", "resume=true", f"hydra.run.dir={tmp_path}/nope", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"hydra.run.dir={tmp_path}/nope does not exist" in result.stderr
    assert not (tmp_path / "nope").exists()


@pytest.mark.slow
def test_cli_resume_reuses_the_runs_overrides(tmp_path):
    run_dir = tmp_path / "run"
    shrunk = ["device=cpu", "progress=false", "dataset.resolution=16", "dataset.batch_size=16",
              "model.generator.width=8", "model.discriminator.width=8", "schedule.log_every=1"]
    assert run_cli("train", *shrunk, "schedule.steps=2", f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    # Only the new length is given: width 8 etc. come from the run's .hydra/overrides.yaml.
    result = run_cli("train", "resume=true", "schedule.steps=3", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_last_checkpoint_and_exits_cleanly(tmp_path, sig):
    run_dir = tmp_path / "run"
    args = ["device=cpu", "progress=false", "dataset.resolution=16", "dataset.batch_size=16",
            "model.generator.width=8", "model.discriminator.width=8", "schedule.steps=100000",
            "schedule.log_every=1", "schedule.ckpt_every=100000", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "ganlab", "train", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.2)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr
    assert "resume=true" in stderr
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert 3 <= state["step"] < 100000
    assert state["step"] == read_metrics(run_dir)[-1]["step"]


def test_vae_resume_is_exact_too(tmp_path):
    vae = ["model=vae_mlp", "dataset.resolution=8", "model.vae.hidden=[16]", "model.vae.latent_dim=3",
           "dataset.split=train", "model.objective.tsne_points=50", "schedule.log_every=3", "schedule.eval_every=4",
           "schedule.steps=8", "schedule.snapshot_every=4", "model.objective.kl_warmup_steps=6"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(compose_config(vae), whole)
    shutil.copytree(whole, killed)
    shutil.copy(whole / "checkpoints" / "step_000004.pt", killed / "checkpoints" / "last.pt")
    train(compose_config([*vae, "resume=true"]), killed)
    assert losses(killed) == losses(whole)


class Killed(BaseException):
    """A SIGKILL's effect in this process: nothing after this point runs, no handler sees it."""


def test_a_kill_between_checkpoint_writes_loses_no_snapshot(tmp_path, monkeypatch):
    """At a step that writes both, the snapshot goes first: a kill between the two leaves last.pt
    behind the snapshot, so the resume redoes the step and the snapshot (found by the kill campaign)."""
    from ganlab.records import checkpoint

    settings = ["schedule.steps=8", "schedule.ckpt_every=1", "schedule.snapshot_every=2", "schedule.keep_last=2",
                "schedule.sample_every=4", "schedule.log_every=4"]
    train(compose_config(settings), tmp_path / "whole")
    real_save = checkpoint.save_atomic

    def killed_after(state, path):
        real_save(state, path)
        if state["step"] == 6:  # after the first of step 6's two checkpoint files
            raise Killed

    monkeypatch.setattr(checkpoint, "save_atomic", killed_after)
    with pytest.raises(Killed):
        train(compose_config(settings), tmp_path / "killed")
    monkeypatch.undo()
    train(compose_config([*settings, "resume=true"]), tmp_path / "killed")
    snapshots = {run: sorted(p.name for p in (tmp_path / run / "checkpoints").glob("step_*.pt"))
                 for run in ("whole", "killed")}
    assert snapshots["whole"] == ["step_000006.pt", "step_000008.pt"] == snapshots["killed"]
    assert losses(tmp_path / "killed") == losses(tmp_path / "whole")
