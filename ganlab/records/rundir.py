"""The run directory as a resource: writable, held by one process at a time, written only once
the command is accepted, never through links someone placed in it, and never left behind by a
command that was refused.

The lock is an `flock` on the folder: the kernel drops it when the holding process dies (SIGKILL
included), so a lock left by a killed run never blocks; `.ganlab.lock` names the holder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path


from ganlab.errors import ConfigError
from ganlab.records.safe_files import disk_full, is_disk_full, open_append, refuse_link_folder, write_text_atomic

LOCK_NAME = ".ganlab.lock"  # names the holder; the lock itself is on the folder
log = logging.getLogger("ganlab")


class RunDirLock:
    """Hold `run_dir` for this process; a second process is refused with the holder's pid and host.

    The lock is on the folder itself, so deleting `.ganlab.lock` while a run trains does not let a
    second process in. `announce=False` names the holder only when `announce()` is called (train
    does so once the command is accepted: a refused command writes nothing into the folder)."""

    def __init__(self, run_dir: Path, announce: bool = True):
        self.run_dir, self.auto_announce = Path(run_dir), announce
        self.fd: int | None = None

    def __enter__(self) -> "RunDirLock":
        check_writable(self.run_dir)
        fd = os.open(self.run_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_holder(self.run_dir / LOCK_NAME) or _holding_process(self.run_dir) or "another process"
            raise ConfigError(f"the run directory {self.run_dir} is in use by {holder}. Two processes in one run "
                              "would interleave its logs and checkpoints: wait for it to finish (or stop it), or "
                              "pick another hydra.run.dir.") from None
        self.fd = fd
        if self.auto_announce:
            self.announce()
        return self

    def announce(self) -> None:
        """Write who holds the folder into `.ganlab.lock` (never through a link placed there)."""
        text = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        write_text_atomic(self.run_dir / LOCK_NAME, text)

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _holding_process(folder: Path) -> str:
    """Before the holder has announced itself (it writes its note only once its command is
    accepted): the process that has `folder` open, found in /proc (Linux), as 'pid N (command)'."""
    target = str(Path(folder).resolve())
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        try:
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                return f"pid {proc.name} on {socket.gethostname()} ({command[:120]})"
        except OSError:
            continue
    return ""


def _read_holder(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return ""
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        return handle.read(200).strip()


def check_writable(run_dir: Path) -> None:
    """Refuse, before any work, a run directory that cannot be created or written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(run_dir, trained=False) from None
        raise ConfigError(f"the run directory {run_dir} is not writable ({exc.strerror or exc}). Pick a folder you "
                          "can write, e.g. hydra.run.dir=outputs/myrun, or fix its permissions.") from None


def remove_created(folders: list[Path]) -> None:
    """Remove the folders a refused command created (innermost first), each only while it is empty
    and no other process holds it: nothing that was there before, and no file, is ever deleted."""
    for folder in folders:
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # never the folder of a run another process starts
            folder.rmdir()
        except OSError:
            return
        finally:
            os.close(fd)


# --- writing into a folder someone may have shared ---------------------------------------------
def refuse_links(folder: Path, key: str = "hydra.run.dir") -> None:
    """A run folder can come from someone else: a link, a FIFO, a device or a hard-linked file
    placed in it would make ganlab's writes land elsewhere or hang. Refuse the folder (and a
    folder that is itself a link), naming the first such entry, before anything is written."""
    folder = Path(folder)
    refuse_link_folder(folder, key)
    if not folder.is_dir():
        return
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            path = Path(root) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                raise ConfigError(f"{key}={folder} holds a symbolic link, {path} -> {os.readlink(path)}; ganlab never "
                                  "writes through links placed in a run folder (they would overwrite files elsewhere). "
                                  "Remove the link, or use another folder.")
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)) or \
                    (stat.S_ISREG(info.st_mode) and info.st_nlink > 1):
                what = "a file with several hard links" if stat.S_ISREG(info.st_mode) else "a FIFO, device or socket"
                raise ConfigError(f"{key}={folder} holds {path}, {what}; ganlab writes only plain files of its own in a "
                                  "run folder (writing there would change another file, or hang). Remove it, or use "
                                  "another folder.")


def refuse_link_path(path: Path, inside: Path, key: str) -> None:
    """`path` (an output about to be written) and its folders up to `inside` must not be links."""
    path, inside = Path(path), Path(inside)
    for part in (path, *path.parents):
        if part.is_symlink():
            raise ConfigError(f"{key}: {part} is a symbolic link (-> {os.readlink(part)}); ganlab does not write "
                              "through links in a run folder. Remove the link, or pass another out=.")
        if part == inside:
            return


class HeldRunLog(logging.Handler):
    """The run's `train.log` (Hydra's job log file), opened only once the command is accepted:
    until then records are held in memory, so a refused command writes nothing into the run
    folder. Opened with O_NOFOLLOW: a link planted as train.log is refused, not written through."""

    LIMIT = 10_000  # records held at most before the run is accepted

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = "utf-8"):
        super().__init__()
        self.filename, self.held, self.stream = str(filename), [], None
        self.failed: str | None = None  # why a write failed: the log is incomplete from then on

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:
            if len(self.held) < self.LIMIT:
                self.held.append(record)
            return
        if self.failed:
            return
        try:
            self.stream.write(self.format(record) + "\n")
            self.stream.flush()
        except Exception as exc:  # noqa: BLE001 - logging never stops a run (a full disk shows at the next checkpoint)
            self.failed = f"{type(exc).__name__}: {exc}"
            sys.stderr.write(f"ganlab: warning: {self.filename} could not be written ({self.failed}); the run goes on, "
                             "but its log is incomplete from here (the console and metrics.jsonl are not).\n")

    def open(self) -> None:
        if self.stream is not None:
            return
        self.stream = open_append(Path(self.filename))
        held, self.held = self.held, []
        for record in held:
            self.emit(record)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self.held = []
        super().close()


def incomplete_logs() -> list[str]:
    """The run logs that stopped being written during this run, each with why."""
    return [f"{h.filename} ({h.failed})" for h in logging.getLogger().handlers
            if isinstance(h, HeldRunLog) and h.failed]


def open_run_logs() -> None:
    """The command was accepted: the run's log files start writing (what was held comes first)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, HeldRunLog):
            handler.open()


# --- the run's identity in its folder ------------------------------------------------------------
RUN_FILE = "run.json"  # the run's identity in its folder (every checkpoint holds it too)


def read_run_id(run_dir: Path) -> str | None:
    """The identity recorded in `run_dir/run.json` (None: a run from before identities, or none yet)."""
    import json

    from ganlab.records.safe_files import read_text

    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        found = json.loads(read_text(path, limit=4096)).get("run_id")
    except (ValueError, AttributeError, RecursionError, ConfigError):
        log.warning("%s could not be read; checkpoints are not matched to this run's identity", path)
        return None
    return found if isinstance(found, str) else None


def write_run_id(run_dir: Path, run_id: str) -> None:
    import json
    import time

    from ganlab.records.safe_files import write_text_atomic

    if read_run_id(run_dir) != run_id:
        write_text_atomic(Path(run_dir) / RUN_FILE, json.dumps({"run_id": run_id, "since": time.strftime(
            "%Y-%m-%d %H:%M:%S")}) + "\n")


def new_run_id() -> str:
    import secrets

    return secrets.token_hex(8)
