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

from conftest import CLI_TINY, run_cli, sweep_table
from ganlab.records import checkpoint

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
    table = resumed.stdout[resumed.stdout.rindex("ganlab: sweep killed:"):]  # the table a sweep ends with
    assert [(r["job"], r["status"], r["step"]) for r in sweep_table(table)] == [(n, "finished", "120") for n in names]
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


# --- resume that is never silently wrong -------------------------------------------------------------
from test_shared_input import TINY_RUN, _resign, finished_run, snapshot, train_cli  # noqa: E402,F401


def log_of(tmp_path: Path) -> str:
    """Every train.log under tmp_path (the console handler writes to the captured stdout)."""
    return "".join(p.read_text() for p in tmp_path.rglob("train.log"))


def copy_run(finished_run, tmp_path: Path, name: str = "run") -> Path:
    import shutil

    shutil.copytree(finished_run, tmp_path / name)
    return tmp_path / name


def test_another_runs_checkpoint_copied_in_is_skipped_for_the_runs_own(tmp_path, monkeypatch, capsys, finished_run,
                                                                       caplog):
    mine, other = copy_run(finished_run, tmp_path, "mine"), copy_run(finished_run, tmp_path, "other")
    assert (mine / "run.json").is_file()
    _resign(other / "checkpoints" / "last.pt", lambda s: s.update(run_id="0123456789abcdef"))
    (mine / "checkpoints" / "step_000002.pt").write_bytes((mine / "checkpoints" / "last.pt").read_bytes())
    _resign(mine / "checkpoints" / "step_000002.pt", lambda s: s.update(step=2))
    (mine / "checkpoints" / "last.pt").write_bytes((other / "checkpoints" / "last.pt").read_bytes())
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={mine}", "schedule.steps=6")
    assert code == 0, err
    assert "belongs to another run" in log_of(tmp_path) and "falling back to" in log_of(tmp_path)
    steps = [json.loads(line)["step"] for line in (mine / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6 and 4 not in steps[steps.index(2) + 1:-2]


def test_another_optimizer_on_resume_starts_fresh_with_a_warning(tmp_path, monkeypatch, capsys, finished_run, caplog):
    run_dir = copy_run(finished_run, tmp_path)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}", "optimizer=sgd",
                             "schedule.steps=6")
    assert code == 0 and "Traceback" not in err, err
    assert "optimizer is now torch.optim.sgd.SGD (the run used torch.optim.adam.Adam): it starts fresh" in log_of(tmp_path)


def test_resume_below_the_runs_step_changes_nothing(tmp_path, monkeypatch, capsys, finished_run):
    run_dir = copy_run(finished_run, tmp_path)
    before = snapshot(run_dir)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}", "schedule.steps=2")
    assert code == 2 and "already at step 4, past schedule.steps=2; nothing was changed" in err, err
    assert snapshot(run_dir) == before


def test_a_stored_key_this_version_does_not_know_is_dropped_with_a_warning(tmp_path, monkeypatch, capsys,
                                                                         finished_run, caplog):
    run_dir = copy_run(finished_run, tmp_path)
    for path in (run_dir / "checkpoints").glob("*.pt"):
        _resign(path, lambda s: (s["config"]["schedule"].update(warmup_kimg=5),
                                 s["config"]["model"]["generator"].update(style_mixing=0.9),
                                 s["config"].update(telemetry=True)))
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}", "schedule.steps=6")
    assert code == 0, err
    for key in ("schedule.warmup_kimg", "model.generator.style_mixing", "telemetry"):
        assert f"the stored setting {key} is not known to this ganlab version; it is dropped" in log_of(tmp_path)


def test_a_garbage_middle_line_of_metrics_is_named_by_its_number(tmp_path, monkeypatch, capsys, finished_run, caplog):
    run_dir = copy_run(finished_run, tmp_path)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("\n".join([lines[0], "garbage{", *lines[1:]]) + "\n")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}", "schedule.steps=6")
    assert code == 0, err
    assert "line 2 is not a JSON row" in log_of(tmp_path) and "partial" not in log_of(tmp_path)


# --- faults, each one paragraph and the right exit code ---------------------------------------------
@pytest.fixture
def read_only_run(tmp_path, finished_run):
    """A copy of a finished run on a real read-only file system (root ignores permissions, not this)."""
    import shutil

    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    shutil.copytree(finished_run, mount / "run")
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    yield mount / "run"
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("verb", ["sample", "eval"])
def test_a_read_only_run_folder_is_refused_before_any_work_with_out_as_the_way(tmp_path, read_only_run, verb):
    from test_shared_input import _classifier

    extra = [f"classifier={_classifier(tmp_path)}", "metrics=[classifier_fd]", "n=20"] if verb == "eval" else []
    started = time.monotonic()
    result = run_cli(verb, f"run={read_only_run}", "device=cpu", *extra, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "Read-only file system" in result.stderr and "out=PATH" in result.stderr, result.stderr
    assert time.monotonic() - started < 30  # refused before measuring
    if verb == "sample":
        done = run_cli("sample", f"run={read_only_run}", "device=cpu", f"out={tmp_path / 'grid.png'}", cwd=tmp_path)
        assert done.returncode == 0 and (tmp_path / "grid.png").is_file(), done.stderr


def test_default_sample_names_are_claimed_so_two_samples_never_share_one(tmp_path, finished_run):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "generated").mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])  # a sample still running holds the first name
    try:
        (run_dir / "generated" / ".last_grid_64.png.claim").write_text(str(sleeper.pid))
        result = run_cli("sample", f"run={run_dir}", "device=cpu", cwd=tmp_path)
    finally:
        sleeper.kill()
    assert result.returncode == 0, result.stderr
    assert (run_dir / "generated" / "last_grid_64_2.png").is_file()
    assert not (run_dir / "generated" / "last_grid_64.png").exists()
    sleeper.wait()  # its claim is now a dead process's: taken over
    again = run_cli("sample", f"run={run_dir}", "device=cpu", cwd=tmp_path)
    assert again.returncode == 0 and (run_dir / "generated" / "last_grid_64.png").is_file(), again.stderr
    assert not list((run_dir / "generated").glob(".*.claim"))


def test_a_failing_train_log_is_one_warning_and_named_at_the_end(tmp_path, capsys):
    import errno
    import logging

    from ganlab.records.rundir import HeldRunLog, incomplete_logs

    class BrokenDisk:
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

        def flush(self):
            pass

        def close(self):
            pass

    handler = HeldRunLog(tmp_path / "train.log")
    handler.open()
    handler.stream.close()
    handler.stream = BrokenDisk()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        for i in range(13):
            logging.getLogger("ganlab").warning("line %d", i)
        assert incomplete_logs() == [f"{tmp_path / 'train.log'} (OSError: [Errno 5] Input/output error)"]
    finally:
        root.removeHandler(handler)
    err = capsys.readouterr().err
    assert err.count("could not be written") == 1 and "Logging error" not in err and "Traceback" not in err


def test_a_full_disk_at_start_up_says_nothing_was_trained_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    import errno

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "new" / "run" / "model_summary.txt"))

    monkeypatch.setattr("ganlab.training.train.write_text_atomic", no_space)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, *TINY_RUN, f"hydra.run.dir={tmp_path / 'new' / 'run'}")
    assert code == 4 and "Nothing was trained yet" in err and "resume=true" not in err, err
    assert "checkpoints" not in err.split("could not write")[1].split(":")[0]


def test_a_second_train_names_the_holders_pid_before_the_holder_announced_itself(tmp_path):
    from ganlab.records.rundir import RunDirLock

    code = f"from ganlab.records.rundir import RunDirLock; import time; lock = RunDirLock({str(tmp_path)!r}, announce=False)" \
           ".__enter__(); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not (tmp_path / ".ganlab.lock").exists()  # no note yet: its command is not accepted
        with pytest.raises(Exception, match=f"in use by pid {holder.pid} "):
            RunDirLock(tmp_path).__enter__()
    finally:
        holder.kill()
        holder.wait()


def test_out_of_memory_is_one_paragraph_and_its_folder_does_not_block_a_rerun(tmp_path, monkeypatch, capsys):
    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 96636764160 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr("ganlab.training.assembly.train_steps", no_memory)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, *TINY_RUN, "dataset.batch_size=32", "hydra.run.dir=run")
    assert code == 4 and "Traceback" not in err, err
    assert "out of memory (90.0 GiB asked for at once) with dataset.batch_size=32" in err
    assert "lower dataset.batch_size" in err and "Nothing was trained yet" in err
    monkeypatch.undo()
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, *TINY_RUN, "hydra.run.dir=run")
    assert code == 0, err  # a start that left logs but no checkpoint is not "a run"
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # a clean log, not appended to


def test_resume_of_a_folder_that_holds_no_run_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={tmp_path / 'empty'}")
    assert code == 2 and "holds no run" in err and "Traceback" not in err, err
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_streamed_file_deleted_mid_run_is_a_fault_that_names_resume(tmp_path):
    from fake_data import make_images
    from ganlab.data.folder import load_folder
    from ganlab.errors import RunFault

    make_images(tmp_path / "images", 8)
    data = load_folder(str(tmp_path / "images"), resolution=8, batch_size=8, in_memory=False, workers=0)
    batches = data.batches(torch.device("cpu"), seed=0)
    next(batches)
    sorted((tmp_path / "images").iterdir())[3].write_bytes(b"truncated")
    with pytest.raises(RunFault, match="met during training.*continue with resume=true"):
        next(batches)


def test_resume_from_is_a_logged_warm_start_into_a_new_run(tmp_path, monkeypatch, capsys, finished_run):
    source = finished_run / "checkpoints" / "last.pt"
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, *TINY_RUN, "schedule.steps=6", f"resume_from={source}",
                             "hydra.run.dir=warm")
    assert code == 0, err
    assert f"resume={source}: a warm start from that checkpoint" in log_of(tmp_path / "warm")
    mine = json.loads((tmp_path / "warm" / "run.json").read_text())["run_id"]
    assert mine != checkpoint.load(source)["run_id"] == json.loads((finished_run / "run.json").read_text())["run_id"]
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, *TINY_RUN, "resume=true", f"resume_from={source}",
                             "hydra.run.dir=warm")
    assert code == 2 and "Keep one" in err, err
