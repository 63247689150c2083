"""No fault loses a run: corrupt files, kills before the first checkpoint, partial log lines,
stale temporaries, a full disk, two processes, signals at start-up, divergence."""

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import CLI_TINY, cli_in_process, compose_config, run_cli
from ganlab.records import checkpoint
from ganlab.errors import ConfigError, RunFault, TrainingDiverged
from ganlab.records.logging import read_metrics
from ganlab.records.rundir import RunDirLock
from ganlab.training.train import train

SHORT = ["schedule.steps=8", "schedule.log_every=2", "schedule.ckpt_every=4", "schedule.snapshot_every=4",
         "schedule.keep_last=5"]


def losses(run_dir):
    return [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in read_metrics(run_dir)]


def flip_tensor_bytes(path: Path, count: int = 64) -> None:
    """Flip `count` bytes inside the largest tensor's data of a checkpoint (not its pickle or zip index)."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        entry = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        data = archive.read(entry)
    start = raw.find(data) + len(data) // 2
    for i in range(start, start + count):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("whole")
    train(compose_config(SHORT), run_dir)
    return run_dir


def test_a_corrupt_checkpoint_is_refused_and_resume_falls_back_to_the_newest_intact_one(tmp_path, whole, caplog):
    run_dir = tmp_path / "run"
    shutil.copytree(whole, run_dir)
    shutil.copy(run_dir / "checkpoints" / "step_000004.pt", run_dir / "checkpoints" / "last.pt")
    (run_dir / "checkpoints" / "step_000008.pt").unlink()
    flip_tensor_bytes(run_dir / "checkpoints" / "last.pt")
    with pytest.raises(ConfigError, match="is corrupt: its content does not match its checksum"):
        checkpoint.load(run_dir / "checkpoints" / "last.pt")
    with caplog.at_level("INFO", logger="ganlab"):
        loop = train(compose_config([*SHORT, "resume=true"]), run_dir)
    assert "falling back to" in caplog.text and "step_000004.pt" in caplog.text
    assert loop.step == 8 and losses(run_dir) == losses(whole)


def test_a_run_killed_before_its_first_checkpoint_restarts_from_step_0_with_a_clean_log(tmp_path, whole, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(whole / "model_summary.txt", run_dir)
    rows = (whole / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text(rows[0] + "\n" + rows[1][:17])  # one row, then a partial line
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / ".last.pt.x1y2.tmp").write_bytes(b"\0" * 1000)  # a write cut short
    with caplog.at_level("INFO", logger="ganlab"):
        train(compose_config([*SHORT, "resume=true"]), run_dir)
    assert "starting from step 0" in caplog.text
    assert losses(run_dir) == losses(whole)  # no duplicated or partial row
    assert not list(run_dir.rglob("*.tmp"))


def test_a_partial_last_line_in_metrics_is_dropped_on_resume(tmp_path, whole):
    run_dir = tmp_path / "run"
    shutil.copytree(whole, run_dir)
    shutil.copy(run_dir / "checkpoints" / "step_000004.pt", run_dir / "checkpoints" / "last.pt")
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 10, "loss/D": 0.6')
    train(compose_config([*SHORT, "resume=true"]), run_dir)
    assert losses(run_dir) == losses(whole)


def test_a_new_run_never_overwrites_an_existing_one(tmp_path, whole):
    run_dir = tmp_path / "run"
    shutil.copytree(whole, run_dir)
    before = (run_dir / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="already holds a run. Continue it with resume=true"):
        train(compose_config(SHORT), run_dir)
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_settings_typed_on_resume_win_and_are_logged(tmp_path, caplog):
    train(compose_config(["schedule.steps=4"]), tmp_path)
    with caplog.at_level("INFO", logger="ganlab"):
        train(compose_config(["schedule.steps=6", "resume=true", "optimizer.lr=1e-5", "optimizer.betas=[0.1,0.9]"]),
              tmp_path)
    rows = read_metrics(tmp_path)
    assert rows[-1]["step"] == 6 and rows[-1]["lr/generator"] == pytest.approx(1e-5)
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert state["optimizers"]["discriminator"]["param_groups"][0]["betas"] == (0.1, 0.9)
    assert "lr 0.0002 -> 1e-05" in caplog.text and "schedule.steps 4 -> 6" in caplog.text


def test_a_change_that_cannot_work_is_refused_with_the_differences(tmp_path):
    train(compose_config(["schedule.steps=2"]), tmp_path)
    with pytest.raises(ConfigError) as info:
        train(compose_config(["schedule.steps=4", "resume=true", "model.generator.width=4"]), tmp_path)
    assert "does not fit" in str(info.value) and "model.generator.width: 8 -> 4" in str(info.value)
    with pytest.raises(ConfigError, match="seed=1 differs from the run's seed=0"):
        train(compose_config(["schedule.steps=4", "resume=true", "seed=1"]), tmp_path)


def test_checkpoints_follow_the_umask(tmp_path, whole):
    mode = (whole / "checkpoints" / "last.pt").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


@pytest.fixture
def small_disk(tmp_path, whole):
    """A real file system (tmpfs) where a second checkpoint does not fit beside the first."""
    mount = tmp_path / "disk"
    mount.mkdir()
    size_kb = int((whole / "checkpoints" / "last.pt").stat().st_size * 1.5 / 1024) + 32  # + logs and grids
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_message_and_the_earlier_checkpoint_survives(small_disk):
    run_dir = small_disk / "run"
    cfg = compose_config(["schedule.steps=8", "schedule.ckpt_every=4", "schedule.snapshot_every=0"])
    with pytest.raises(RunFault) as info:
        train(cfg, run_dir)
    message = str(info.value)
    assert "the disk is full" in message and str(run_dir) in message and "resume=true" in message
    assert checkpoint.load(run_dir / "checkpoints" / "last.pt")["step"] == 4
    assert not list(run_dir.rglob("*.tmp"))


def test_an_unwritable_run_directory_is_refused_before_training(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match="is not writable"):
        train(compose_config(SHORT), tmp_path / "a_file" / "run")


def test_a_second_process_in_the_same_run_directory_is_refused(tmp_path):
    with RunDirLock(tmp_path):
        with pytest.raises(ConfigError, match=f"in use by pid {os.getpid()}"):
            train(compose_config(SHORT), tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.slow
def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    code = f"from ganlab.records.rundir import RunDirLock; import time; lock = RunDirLock({str(tmp_path)!r}).__enter__(); " \
           "print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
        train(compose_config(SHORT), tmp_path)
    holder.kill()
    holder.wait()
    assert train(compose_config(SHORT), tmp_path).step == 8


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_stops_cleanly(tmp_path, sig):
    proc = subprocess.Popen([sys.executable, "-m", "ganlab", "train", *CLI_TINY, "hydra.run.dir=run"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # importing torch and composing: long before the first step
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert f"stopped by signal {sig}" in err


def test_exploding_statistics_stop_the_run_and_say_no_checkpoint_exists(tmp_path):
    with pytest.raises(TrainingDiverged) as info:
        train(compose_config(["optimizer=sgd", "optimizer.lr=1e4", "schedule.ckpt_every=100"]), tmp_path)
    assert "beyond schedule.divergence_limit" in str(info.value)
    assert "No checkpoint had been written yet" in str(info.value)
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_non_finite_batchnorm_statistics_are_never_written(tmp_path):
    loop = train(compose_config(["schedule.steps=4"]), tmp_path)
    net = loop.networks["discriminator"]
    name, buffer = next((n, b) for n, b in net.named_buffers() if n.endswith("running_var"))
    buffer.fill_(float("inf"))
    with pytest.raises(TrainingDiverged, match=f"networks.discriminator.{name} became NaN or infinite") as info:
        loop.maintenance.save_last()
    assert "last good checkpoint" in str(info.value) and "(step 4)" in str(info.value)
    assert checkpoint.load(tmp_path / "checkpoints" / "last.pt")["step"] == 4


def test_without_a_progress_bar_each_log_step_prints_a_line(tmp_path, monkeypatch, capsys):
    code, out, err = cli_in_process("train", *CLI_TINY, "schedule.steps=4", "schedule.log_every=2",
                                    "hydra.run.dir=run", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    log = (tmp_path / "run" / "train.log").read_text()
    assert "step 2/4  D " in log and "step 4/4  D " in log and "images_per_s" in log


def test_with_the_progress_bar_train_log_still_gets_each_log_step_and_the_console_only_the_bar(tmp_path, monkeypatch,
                                                                                                capsys):
    tiny = [arg for arg in CLI_TINY if arg != "progress=false"]
    code, out, err = cli_in_process("train", *tiny, "progress=true", "schedule.steps=4", "schedule.log_every=2",
                                    "hydra.run.dir=run", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    log = (tmp_path / "run" / "train.log").read_text()
    assert "step 2/4  D " in log and "step 4/4  D " in log  # the file is a record of the losses
    assert "step 2/4  D " not in out and "step 2/4  D " not in err  # the console shows the bar, not lines as well
    assert "4/4" in err  # the bar


def test_sweep_failures_are_written_to_the_job_and_fail_the_sweep(tmp_path, monkeypatch, capsys):
    code, _, err = cli_in_process("train", "-m", *CLI_TINY, "schedule.steps=2", "dataset.batch_size=0,16",
                                  "hydra.sweep.dir=sweep", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "1 sweep job(s) failed" in err and "Traceback" not in err
    [failed] = (tmp_path / "sweep").glob("0_dataset.batch_size=0")
    assert "dataset.batch_size=0 must be positive" in (failed / "train.log").read_text()
    [ran] = (tmp_path / "sweep").glob("1_dataset.batch_size=16")
    assert (ran / "checkpoints" / "last.pt").is_file()  # the job after the failed one still ran


def test_a_resubmitted_sweep_job_with_resume_auto_continues_its_run(tmp_path, monkeypatch, capsys):
    # what a Slurm job requeued after preemption does: the same command line in the same folder
    sweep = ["train", "-m", *CLI_TINY, "loss=bce", "resume=auto", "hydra.sweep.dir=sweep"]
    code, _, _ = cli_in_process(*sweep, "schedule.steps=2", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0
    [job] = (tmp_path / "sweep").glob("0_*")
    code, _, err = cli_in_process(*sweep, "schedule.steps=4", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert "resume: continuing from" in (job / "train.log").read_text()
    assert [row["step"] for row in read_metrics(job)] == [2, 4]  # logged every 2 steps, none twice


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_sweep_failures_fail_under_other_launchers(tmp_path, launcher):
    result = run_cli("train", "-m", f"hydra/launcher={launcher}", *CLI_TINY, "schedule.steps=2",
                     "dataset.batch_size=16,0", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "dataset.batch_size=0 must be positive" in result.stderr
    [failed] = (tmp_path / "sweep").glob("1_dataset.batch_size=0")
    assert "dataset.batch_size=0 must be positive" in (failed / "train.log").read_text()
    import json  # each job marked its own status in the sweep's record, from the launcher's worker

    record = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [job["status"] for job in record["jobs"]] == ["finished", "failed"], record
