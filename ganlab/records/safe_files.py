"""The one guarded writer (and reader) of everything under a run folder and every cache.

A run folder or cache can be someone else's: a symbolic link, a hard link or a FIFO planted in it
must never make ganlab write elsewhere or hang. So every file is written here, and
* the folder is opened without following a link (`O_NOFOLLOW | O_DIRECTORY`), and the file is
  created relative to that descriptor, never by path again;
* a new file is created exclusively (`O_EXCL`) under a temporary name and renamed into place, so
  nothing planted under the temporary name is ever opened;
* an append-only file (train.log, metrics.jsonl) is opened once with `O_NOFOLLOW | O_NONBLOCK`
  and its descriptor kept;
* a target that is a link, a FIFO, a device, a folder, or a regular file with more than one hard
  link is refused, naming it (`ConfigError`, one paragraph, exit 2).
A library that can only write to a path (Pillow, matplotlib, numpy) gets the temporary file's
path through the folder's descriptor (`/proc/self/fd/N/NAME`), so a folder swapped for a link
after the check changes nothing. Reads of run files refuse FIFOs and devices too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable

from ganlab.errors import ConfigError, RunFault

PARTIAL = ".partial"  # temporaries: .NAME.<pid>.<token>.partial<suffix>
READ_LIMIT = 64 * 2**20  # the largest text file of a run folder read whole (a metrics.jsonl of a long run)
_UMASK = os.umask(0)
os.umask(_UMASK)


def _refuse(path: Path | str, what: str) -> ConfigError:
    return ConfigError(f"{path} is {what}; ganlab never writes through links or into special files placed in a run "
                       "folder or cache (they would change files elsewhere, or hang). Remove it, or use another folder.")


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def refuse_link_folder(folder: Path, key: str) -> None:
    """A run folder that is itself a link is refused (its files would land in the link's target)."""
    if Path(folder).is_symlink():
        raise ConfigError(f"{key}={folder} is a symbolic link (-> {os.readlink(folder)}); a run folder must be a real "
                          "folder, so that its files land where its name says. Use the folder itself.")


def open_folder(folder: Path) -> int:
    """A descriptor of `folder` (created, with missing parents, as needed), opened without following
    a link at its last component; each folder this creates is created through its parent's descriptor."""
    folder = Path(folder).absolute()
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        return os.open(folder, flags)
    except FileNotFoundError:
        parent = open_folder(folder.parent)
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder.name, 0o777, dir_fd=parent)
            return os.open(folder.name, flags, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _refuse(folder, "a symbolic link or not a folder") from None
            raise
        finally:
            os.close(parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refuse(folder, "a symbolic link or not a folder") from None
        raise


def _check_target(folder_fd: int, name: str, shown: Path) -> None:
    """The file about to be replaced must be a plain file of its own (or not exist)."""
    try:
        info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(shown, _kind(info.st_mode))
    if info.st_nlink > 1:
        raise _refuse(shown, f"a file with {info.st_nlink} hard links (another name shares its content)")


def _temporary_name(name: str) -> str:
    """A fresh name beside `name`, keeping its suffix (libraries pick a format by it)."""
    return f".{name}.{os.getpid()}.{secrets.token_hex(6)}{PARTIAL}{Path(name).suffix}"


def write_atomic(path: Path, write: Callable[[BinaryIO], Any], sync: bool = False) -> None:
    """`write(handle)` into a new temporary file beside `path`, then rename it over `path`; on any
    failure the temporary file is removed. A kill leaves the old file or the new one."""
    path = Path(path)
    folder = open_folder(path.parent)
    tmp = _temporary_name(path.name)
    try:
        _check_target(folder, path.name, path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666 & ~_UMASK, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            _check_target(folder, path.name, path)
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
            raise _named(exc, path)
    finally:
        os.close(folder)


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a full disk: Python says ENOSPC / EDQUOT / EFBIG, torch a RuntimeError
    ('unexpected pos', 'file write failed'). The one test of it in ganlab."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return isinstance(exc, RuntimeError) and any(w in str(exc) for w in ("unexpected pos", "No space left",
                                                                          "file write failed"))


def disk_full(path: Path | str, trained: bool | None) -> RunFault:
    """The one paragraph for a full disk met writing `path` (exit 4): what is intact and what to do.
    `trained`: the run has a checkpoint (True), has none yet (False), or a verb was writing its output (None)."""
    path = Path(path)
    try:
        free = f"{shutil.disk_usage(path if path.is_dir() else path.parent).free / 2**20:.1f} MB free"
    except OSError:
        free = "free space unknown"
    after = {True: "Files written before (earlier checkpoints, logs) are intact. Free some space, then continue "
                   "with resume=true.",
             False: "Nothing was trained yet (the run has no checkpoint); free some space and start it again.",
             None: "Nothing partial was left under the output's name; free some space and run it again."}[trained]
    return RunFault(f"could not write {path}: the disk is full ({free}). {after}")


def _named(exc: BaseException, path: Path) -> BaseException:
    """A full disk met while writing `path` names it (torch's own error names no file)."""
    if is_disk_full(exc) and getattr(exc, "filename", None) is None:
        return OSError(errno.ENOSPC, "No space left on device", str(path))
    return exc


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda handle: handle.write(data))


@contextlib.contextmanager
def atomic_output(path: Path, folder: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` (a new file, or with `folder` a new folder) for a library
    that writes by path; renamed onto `path` once the block succeeds, removed if it fails. The
    path goes through the parent's descriptor, so a parent swapped for a link changes nothing."""
    path = Path(path)
    parent = open_folder(path.parent)
    tmp = _temporary_name(path.name)
    try:
        _check_target(parent, path.name, path)
        if folder:
            os.mkdir(tmp, 0o777, dir_fd=parent)
        else:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666 & ~_UMASK, dir_fd=parent))
        try:
            yield Path(f"/proc/self/fd/{parent}/{tmp}")
            _check_target(parent, path.name, path)
            if folder and os.path.lexists(f"/proc/self/fd/{parent}/{path.name}"):
                raise ConfigError(f"{path} already exists; pass another out=.")
            os.replace(tmp, path.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException as exc:
            _remove(Path(f"/proc/self/fd/{parent}/{tmp}"))
            raise _named(exc, path)
    finally:
        os.close(parent)


def check_writable(folder: Path, key: str, fix: str) -> None:
    """Refuse, before any work, an output folder that cannot be created or written (a read-only run
    folder, say): one paragraph naming it, the reason and `fix`. A full disk is left to the write."""
    folder = Path(folder)
    try:
        fd = open_folder(folder)
    except OSError as exc:
        if is_disk_full(exc):
            raise
        raise ConfigError(f"{key}: {folder} cannot be created ({exc.strerror or exc}); {fix}") from None
    try:
        name = _temporary_name("write-check")
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd))
        os.unlink(name, dir_fd=fd)
    except OSError as exc:
        if is_disk_full(exc):
            raise
        raise ConfigError(f"{key}: {folder} is not writable ({exc.strerror or exc}); {fix}") from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def claimed_name(candidates: Iterator[Path]) -> Iterator[Path]:
    """The first of `candidates` that neither exists nor is claimed by a running process, claimed for
    this block (a hidden `.NAME.claim` created exclusively), so two commands choosing default names
    at once never pick the same one. A claim of a process that died is taken over."""
    for path in candidates:
        if path.exists() or path.is_symlink():
            continue
        folder = open_folder(path.parent)
        claim = f".{path.name}.claim"
        try:
            try:
                fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
            except FileExistsError:
                if _claim_alive(folder, claim):
                    continue
                os.unlink(claim, dir_fd=folder)  # a killed process's claim
                fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            if path.exists() or path.is_symlink():  # written between the look and the claim
                os.unlink(claim, dir_fd=folder)
                continue
            try:
                yield path
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(claim, dir_fd=folder)
            return
        finally:
            os.close(folder)
    raise ConfigError("no free output name was found; pass out=PATH.")


def _claim_alive(folder: int, claim: str) -> bool:
    try:
        fd = os.open(claim, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return False
    try:
        text = os.read(fd, 32).decode(errors="replace").strip()
    finally:
        os.close(fd)
    return text.isdigit() and process_alive(int(text))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def open_append(path: Path) -> IO[str]:
    """`path` opened once for appending text (created if missing), never through a link, a FIFO
    or a hard link; the caller keeps the handle for the run."""
    path = Path(path)
    folder = open_folder(path.parent)
    try:
        fd = os.open(path.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                     0o666 & ~_UMASK, dir_fd=folder)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            info = os.stat(path.name, dir_fd=folder, follow_symlinks=False)
            raise _refuse(path, _kind(info.st_mode)) from None
        raise
    finally:
        os.close(folder)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        raise _refuse(path, _kind(info.st_mode) if not stat.S_ISREG(info.st_mode) else
                      f"a file with {info.st_nlink} hard links (another name shares its content)")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a", encoding="utf-8")


def open_read(path: Path, limit: int | None = READ_LIMIT) -> BinaryIO:
    """`path` opened for reading, refusing a FIFO, a device or a folder (they would hang or never
    end) and, with `limit`, a file larger than `limit` bytes."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a file. Remove it, or use another run.") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError(f"{path} is {_kind(info.st_mode)}, not a file; ganlab reads only regular files from a run "
                          "folder (a FIFO or device would hang). Remove it.")
    if limit is not None and info.st_size > limit:
        os.close(fd)
        raise ConfigError(f"{path} is {info.st_size / 2**20:.0f} MB, over the {limit / 2**20:.0f} MB ganlab reads "
                          "from a run folder's text files. Remove it, or use another run.")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_text(path: Path, limit: int | None = READ_LIMIT) -> str:
    """A run folder's text file, whole (see `open_read`); invalid UTF-8 is named, not a traceback."""
    with open_read(path, limit) as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); it was damaged or is not ganlab's. Remove it, "
                          "or use another run.") from None


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete the temporaries (files or folders) that processes no longer running left in `folder`."""
    removed = []
    for path in Path(folder).glob(f".*{PARTIAL}*") if Path(folder).is_dir() else []:
        parts = path.name.split(".")
        pid = next((p for p in parts if p.isdigit()), None)
        if pid is not None and not process_alive(int(pid)):
            _remove(path)
            removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
