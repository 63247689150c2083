"""What one `ganlab` command has done so far, passed explicitly from `cli.main` to the code that
changes it: when its start-up began (the loop reports its time to the first step) and the run
folder once training has begun (what a late signal names to continue from)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Session:
    started: float = field(default_factory=time.perf_counter)
    training_in: Path | None = None
