"""The training loop: it counts steps, runs each one, hands it to the maintenance, and stops cleanly.

What a step does is `step.py`'s, what happens between steps `maintenance.py`'s; the loop knows
neither networks nor losses. SIGINT / SIGTERM finish the current step, save last.pt, then raise
`Interrupted` (on every process, when one of them got the signal).
"""

from __future__ import annotations

import logging
import signal
import time

from ganlab.errors import Interrupted
from ganlab.training.runtime import Runtime, stop_requests

log = logging.getLogger("ganlab")


def train_steps(step, maintenance, state, runtime: Runtime, steps: int, started: float | None = None) -> int:
    """Run `step(i)` for i = `state.step` .. `steps` - 1, each followed by `maintenance.after_step`;
    returns the last step done. `state.step` counts the steps done (what a checkpoint stores).
    `started`: when start-up began (perf_counter; default: now), for the time to the first step."""
    started = time.perf_counter() if started is None else started

    def announce(signum: int) -> None:
        maintenance.logger.message(f"signal {signum}: finishing step {state.step + 1}, then saving checkpoints/last.pt")

    with stop_requests(announce) as stop:
        maintenance.start()
        first = state.step
        while state.step < steps:
            done = step(state.step)
            state.step += 1
            if state.step == first + 1:
                log.info("first step done %.1f s after start-up began", time.perf_counter() - started)
            maintenance.logger.advance()
            maintenance.after_step(done)
            if runtime.any(stop.signum is not None):  # a signal to one process stops all
                maintenance.save_last()
                raise Interrupted(stop.signum or signal.SIGTERM, state.step)
    return state.step
