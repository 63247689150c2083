"""Checkpoints: one plain dict with everything an exact resume needs, written atomically.

Reading uses `torch.load(weights_only=True)`, so opening a checkpoint never runs code from it:
the dict holds only tensors, numbers, strings and containers of them.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from ganlab.errors import ConfigError

FORMAT_VERSION = 1
LAST = "last.pt"
_PERIODIC = re.compile(r"step_(\d+)\.pt$")


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename over `path`.

    A crash at any moment leaves either the old checkpoint or the new one, never half of one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path | str) -> dict[str, Any]:
    """Load a checkpoint safely; a missing, foreign or corrupt file is a ConfigError naming it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"resume: checkpoint {path} does not exist. Pass resume=true with hydra.run.dir set to "
                          "an earlier run's folder, or resume=PATH to a checkpoints/*.pt file.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or non-checkpoint files
        raise ConfigError(f"resume: {path} could not be read as a ganlab checkpoint ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}). Use another checkpoint, e.g. "
                          "an earlier checkpoints/step_*.pt.") from None
    version = state.get("format_version") if isinstance(state, dict) else None
    if version != FORMAT_VERSION:
        raise ConfigError(f"resume: {path} has checkpoint format {version!r}, this ganlab reads format "
                          f"{FORMAT_VERSION}. Resume it with the ganlab version that wrote it.")
    return state


def save_periodic(state: dict[str, Any], folder: Path, step: int, keep_last: int) -> Path:
    """Save `step_XXXXXX.pt` and delete the oldest periodic checkpoints beyond `keep_last`."""
    path = folder / f"step_{step:06d}.pt"
    save_atomic(state, path)
    periodic = sorted((p for p in folder.glob("step_*.pt") if _PERIODIC.search(p.name)),
                      key=lambda p: int(_PERIODIC.search(p.name).group(1)))
    for old in periodic[:-keep_last] if keep_last > 0 else []:
        old.unlink(missing_ok=True)
    return path


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
