"""The run directory as a resource: writable, held by one process at a time, written only once
the command is accepted, never through links someone placed in it, and never left behind by a
command that was refused.

The lock is an `flock` on the folder: the kernel drops it when the holding process dies (SIGKILL
included), so a lock left by a killed run never blocks; `.ganlab.lock` names the holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ganlab.errors import ConfigError, RunFault

LOCK_NAME = ".ganlab.lock"  # names the holder; the lock itself is on the folder


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
            holder = _read_holder(self.run_dir / LOCK_NAME) or "another process"
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
            raise RunFault(f"the run directory {run_dir} cannot be written: the disk is full. Free some space "
                           "and start again.") from None
        raise ConfigError(f"the run directory {run_dir} is not writable ({exc.strerror or exc}). Pick a folder you "
                          "can write, e.g. hydra.run.dir=outputs/myrun, or fix its permissions.") from None


def is_disk_full(exc: BaseException) -> bool:
    """torch reports a full disk as RuntimeError('... unexpected pos ...'); Python as ENOSPC / EDQUOT."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return isinstance(exc, RuntimeError) and ("unexpected pos" in str(exc) or "No space left" in str(exc)
                                              or "file write failed" in str(exc))


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
    """A run folder can come from someone else: a symbolic link placed in it would make ganlab's
    writes land elsewhere. Refuse the folder, naming the first link, before anything is written."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            path = Path(root) / name
            if path.is_symlink():
                raise ConfigError(f"{key}={folder} holds a symbolic link, {path} -> {os.readlink(path)}; ganlab never "
                                  "writes through links placed in a run folder (they would overwrite files elsewhere). "
                                  "Remove the link, or use another folder.")


def refuse_link_path(path: Path, inside: Path, key: str) -> None:
    """`path` (an output about to be written) and its folders up to `inside` must not be links."""
    path, inside = Path(path), Path(inside)
    for part in (path, *path.parents):
        if part.is_symlink():
            raise ConfigError(f"{key}: {part} is a symbolic link (-> {os.readlink(part)}); ganlab does not write "
                              "through links in a run folder. Remove the link, or pass another out=.")
        if part == inside:
            return


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` (a file or a folder) to write to; renamed onto `path` once the
    block succeeds and removed if it fails, so a kill or a full disk never leaves a partial output
    under the final name. Temporaries of killed processes are removed by `remove_stale_partials`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}{PARTIAL}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise


PARTIAL = ".partial"


def remove_stale_partials(folder: Path) -> None:
    """Delete the partial outputs (`atomic_output`) that processes no longer running left in `folder`."""
    for path in Path(folder).glob(f".*{PARTIAL}*") if Path(folder).is_dir() else []:
        pid = path.name.split(PARTIAL)[0].rsplit(".", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`: a kill leaves the old
    file or the new one, and a link at `path` is replaced, never written through."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda handle: handle.write(data))


def write_atomic(path: Path, write: Callable[[BinaryIO], Any], sync: bool = False) -> None:
    """`write(handle)` into a temporary file `.NAME.*.tmp` beside `path` (flushed to disk first when
    `sync`), then rename it over `path`; on any failure the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a teammate should read it as any other output
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_UMASK = os.umask(0)
os.umask(_UMASK)


class HeldRunLog(logging.Handler):
    """The run's `train.log` (Hydra's job log file), opened only once the command is accepted:
    until then records are held in memory, so a refused command writes nothing into the run
    folder. Opened with O_NOFOLLOW: a link planted as train.log is refused, not written through."""

    LIMIT = 10_000  # records held at most before the run is accepted

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = "utf-8"):
        super().__init__()
        self.filename, self.held, self.stream = str(filename), [], None

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:
            if len(self.held) < self.LIMIT:
                self.held.append(record)
            return
        try:
            self.stream.write(self.format(record) + "\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001 - logging never stops a run (a full disk shows at the next checkpoint)
            self.handleError(record)

    def open(self) -> None:
        if self.stream is not None:
            return
        fd = os.open(self.filename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        self.stream = os.fdopen(fd, "a", encoding="utf-8")
        held, self.held = self.held, []
        for record in held:
            self.emit(record)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self.held = []
        super().close()


def open_run_logs() -> None:
    """The command was accepted: the run's log files start writing (what was held comes first)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, HeldRunLog):
            try:
                handler.open()
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise ConfigError(f"{handler.filename} is a symbolic link; ganlab never writes through links "
                                      "placed in a run folder. Remove it.") from None
                raise
