"""The run directory as a resource: writable, held by one process at a time, and never left
behind by a command that was refused before it trained.

The lock is an `flock` on `.ganlab.lock`: the kernel drops it when the holding process dies
(SIGKILL included), so a lock left by a killed run never blocks; the file names the holder.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from ganlab.errors import ConfigError

LOCK_NAME = ".ganlab.lock"
HYDRA_ONLY = {".hydra", "train.log", LOCK_NAME}  # what a run refused before training holds


class RunDirLock:
    """Hold `run_dir` for this process; a second process is refused with the holder's pid and host."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.handle = None

    def __enter__(self) -> "RunDirLock":
        check_writable(self.run_dir)
        path = self.run_dir / LOCK_NAME
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigError(f"the run directory {self.run_dir} is in use by {holder}. Two processes in one run "
                              "would interleave its logs and checkpoints: wait for it to finish (or stop it), or "
                              "pick another hydra.run.dir.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def check_writable(run_dir: Path) -> None:
    """Refuse, before any work, a run directory that cannot be created or written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as exc:
        raise ConfigError(f"the run directory {run_dir} is not writable ({exc.strerror or exc}). Pick a folder you "
                          "can write, e.g. hydra.run.dir=outputs/myrun, or fix its permissions.") from None


def remove_if_never_ran(run_dir: Path) -> bool:
    """Delete a run directory that holds only what Hydra wrote before the run was refused."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not {p.name for p in run_dir.iterdir()} <= HYDRA_ONLY:
        return False
    try:
        with RunDirLock(run_dir):  # never the folder of a run that another process is starting
            shutil.rmtree(run_dir, ignore_errors=True)
    except ConfigError:
        return False
    for parent in (run_dir.parent, run_dir.parent.parent):  # outputs/<date>/ when it held only this run
        try:
            parent.rmdir()
        except OSError:
            break
    return True
