"""A fault of the machine met while a run starts or trains (a full disk, memory run out), as the one
paragraph the CLI prints with exit 4 (`RunFault`), saying what is intact and what to change."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from ganlab.errors import RunFault
from ganlab.records import checkpoint
from ganlab.records.safe_files import disk_full, is_disk_full


@contextmanager
def machine_faults(run_dir: Path, batch_size: Any, resolution: Any) -> Iterator[None]:
    """Inside: a full disk or memory becomes one paragraph naming the setting to lower
    (`batch_size`, `resolution`: the run's dataset settings); any other error passes as it is."""
    try:
        yield
    except (OSError, RuntimeError, MemoryError) as exc:
        if is_out_of_memory(exc):
            raise RunFault(_out_of_memory(exc, run_dir, batch_size, resolution)) from None
        if is_disk_full(exc):
            raise disk_full(getattr(exc, "filename", None) or run_dir,
                            trained=checkpoint.holds_run(run_dir)) from None
        raise


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "out of memory" in str(exc)))


def _out_of_memory(exc: BaseException, run_dir: Path, batch_size: Any, resolution: Any) -> str:
    """What ran out, the batch size and resolution that asked for it, and the fix."""
    asked = re.search(r"allocate (\d+) bytes", str(exc))
    amount = f" ({int(asked.group(1)) / 2**30:.1f} GiB asked for at once)" if asked else ""
    saved = checkpoint.load_latest(run_dir / "checkpoints") if (run_dir / "checkpoints").is_dir() else None
    after = (f" The newest checkpoint (step {checkpoint.Saved(saved[0]).step}) is kept; continue with resume=true and the smaller "
             "setting." if saved else " Nothing was trained yet; start again with the smaller setting.")
    return (f"out of {'GPU ' if 'CUDA' in str(exc) else ''}memory{amount} with dataset.batch_size={batch_size} at "
            f"dataset.resolution={resolution}: lower dataset.batch_size (or the resolution, or the networks' "
            "width)." + after)
