"""Downloads a user asked for (`dataset.download=true`, typed): torchvision's fetchers, quiet, and
one paragraph when they fail (an offline machine, say), leaving no empty folders behind."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Callable

from ganlab.errors import ConfigError


def fetch(name: str, root: Path, expected: str, download: Callable[[], object]) -> None:
    """Run `download()` (a torchvision data set constructor with download=True) for data set `name`
    under `root`; `expected` says where the files go, for the message if it fails."""
    root = Path(root)
    before = {p for p in root.rglob("*")} if root.exists() else set()
    missing_root = not root.exists()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            download()
    except Exception as exc:  # noqa: BLE001 - torchvision raises URLError, RuntimeError, OSError, ...
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        _remove_empty_new(root, before, missing_root)
        raise ConfigError(f"{name} could not be downloaded into {root} ({reason}); this machine may be offline. "
                          f"Download the files where you are online and put them in {expected}, then run again "
                          "without dataset.download=true.") from None


def _remove_empty_new(root: Path, before: set[Path], missing_root: bool) -> None:
    """Folders the failed download created and left empty (innermost first); files are never touched."""
    created = sorted((p for p in root.rglob("*") if p not in before and p.is_dir() and not p.is_symlink()),
                     key=lambda p: len(p.parts), reverse=True) if root.exists() else []
    for folder in [*created, *([root] if missing_root else [])]:
        with contextlib.suppress(OSError):
            folder.rmdir()
