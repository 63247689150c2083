"""A sweep's record, `sweep.json` in its folder, and resuming a whole sweep.

Once every job of a basic sweep is vetted, the plan is written: each job's number, folder and
resolved config (plain data, as a run's checkpoint holds it), and its overrides for people to
read. Each job marks itself running, finished or failed as it goes. Resuming the sweep
(`ganlab train -m resume=true hydra.sweep.dir=S`, or `ganlab resume S`) walks the plan: a finished
job is skipped and reported, a killed one continues from its newest intact checkpoint, one that
never started starts from its planned config. Nothing in the file is ever parsed as an override:
configs are data, checked like any stored run's settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any

from ganlab.errors import ConfigError
from ganlab.records.safe_files import process_alive

NAME = "sweep.json"
FORMAT = 1
STATUSES = ("planned", "running", "finished", "failed", "diverged", "stopped")


def plan(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The record of a sweep about to start: `jobs` as [{num, dir, overrides, config}]."""
    return {"format": FORMAT, "jobs": [{**job, "status": "planned"} for job in jobs]}


def write_plan(sweep_dir: Path, record: dict[str, Any]) -> None:
    """Write the plan unless the folder holds one already (a rerun keeps its record)."""
    from ganlab.records.safe_files import write_text_atomic

    path = Path(sweep_dir) / NAME
    if path.exists() or path.is_symlink():
        return
    write_text_atomic(path, json.dumps(record, indent=1, default=str) + "\n")


def read(sweep_dir: Path) -> dict[str, Any]:
    """A sweep's record, checked: a list of jobs, each with a number, a folder inside the sweep, a
    config mapping and overrides as strings. ConfigError naming what is wrong."""
    from ganlab.records.safe_files import read_text

    path = Path(sweep_dir) / NAME
    try:
        record = json.loads(read_text(path))
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path} is not a sweep record ({exc}); resume its jobs one by one with ganlab train "
                          "resume=true hydra.run.dir=<job folder>.") from None
    jobs = record.get("jobs") if isinstance(record, dict) else None
    if not isinstance(jobs, list) or not jobs:
        raise ConfigError(f"{path} lists no jobs; resume its jobs one by one with ganlab train resume=true "
                          "hydra.run.dir=<job folder>.")
    for job in jobs:
        problem = _job_problem(job)
        if problem:
            raise ConfigError(f"{path}: a job entry {problem}; the file was changed or is not ganlab's. Resume its "
                              "jobs one by one with ganlab train resume=true hydra.run.dir=<job folder>.")
    return record


def read_or_discover(sweep_dir: Path) -> dict[str, Any]:
    """The sweep's record; for a sweep from before records were kept, its job folders as found
    (each continues from its own stored settings; jobs that never started cannot be known)."""
    if (Path(sweep_dir) / NAME).exists() or (Path(sweep_dir) / NAME).is_symlink():
        return read(sweep_dir)
    found = sorted((p for p in Path(sweep_dir).iterdir() if p.is_dir() and not p.is_symlink()
                    and job_number(p.name) is not None and ((p / ".hydra").is_dir() or (p / "checkpoints").is_dir())),
                   key=lambda p: job_number(p.name))
    if not found:
        raise ConfigError(f"{sweep_dir} holds no sweep: no {NAME} and no job folders (0_..., 1_...); point "
                          "hydra.sweep.dir at a sweep's folder (outputs/multirun/<date>/<time>).")
    return {"format": FORMAT, "discovered": True,
            "jobs": [{"num": job_number(p.name), "dir": p.name, "overrides": [], "config": {}, "status": "running"}
                     for p in found]}


def _job_problem(job: Any) -> str | None:
    if not isinstance(job, dict):
        return "is not a mapping"
    if not isinstance(job.get("num"), int) or isinstance(job.get("num"), bool):
        return "has no job number"
    folder = job.get("dir")
    if not isinstance(folder, str) or not folder or "/" in folder or folder in (".", "..") or "\0" in folder:
        return f"names the folder {folder!r}, which is not a folder inside the sweep"
    if not isinstance(job.get("config"), dict):
        return "has no config mapping"
    if not isinstance(job.get("overrides"), list) or not all(isinstance(o, str) for o in job["overrides"]):
        return "has overrides that are not strings"
    if job.get("status") not in STATUSES:
        return f"has the status {job.get('status')!r}"
    return None


@contextlib.contextmanager
def _locked(sweep_dir: Path):
    """Jobs of a parallel launcher update the record one at a time (an flock on the folder)."""
    fd = os.open(sweep_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def mark(job_dir: Path, status: str, detail: str | None = None) -> None:
    """Record `status` for the job whose folder is `job_dir`, when its sweep keeps a record."""
    from ganlab.records.safe_files import write_text_atomic

    sweep_dir, path = Path(job_dir).parent, Path(job_dir).parent / NAME
    if not path.is_file():
        return
    with _locked(sweep_dir):
        try:
            record = read(sweep_dir)
        except ConfigError:
            return  # a damaged record is reported by whoever reads it; the job itself goes on
        for job in record["jobs"]:
            if job["dir"] == Path(job_dir).name:
                job["status"] = status
                job["detail"] = detail
                if status == "running":
                    job["pid"] = os.getpid()
        write_text_atomic(path, json.dumps(record, indent=1, default=str) + "\n")


def progress(job_dir: Path, config: dict[str, Any]) -> tuple[int, int]:
    """(the step of the job's newest intact checkpoint (0: none), the steps its config asks for)."""
    from ganlab.records import checkpoint

    from ganlab.records.rundir import read_run_id

    found = checkpoint.load_latest(Path(job_dir) / "checkpoints", run_id=read_run_id(job_dir)) \
        if (Path(job_dir) / "checkpoints").is_dir() else None
    wanted = ((config.get("schedule") or {}).get("steps")) if isinstance(config.get("schedule"), dict) else None
    return (checkpoint.Saved(found[0]).step if found else 0), int(wanted) if isinstance(wanted, int) else 0


def status_lines(sweep_dir: Path) -> list[str]:
    """One line per job: its folder and what it is now (what `ganlab report S` shows)."""
    record = read(sweep_dir)
    lines = []
    for job in record["jobs"]:
        status = job["status"]
        pid = job.get("pid")
        if status == "running" and not (isinstance(pid, int) and pid > 0 and process_alive(pid)):
            status = "killed (continue with: ganlab resume " + str(sweep_dir) + ")"
        lines.append(f"{job['dir']}: {status}" + (f" ({job['detail']})" if job.get("detail") else ""))
    return lines


def job_number(folder: str) -> int | None:
    match = re.match(r"^(\d+)_", folder)
    return int(match.group(1)) if match else None
