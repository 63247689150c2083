"""The one error type users see: a short message naming the bad value and the fix."""


class ConfigError(Exception):
    """Bad input found before (or instead of) training. The CLI prints it without a traceback."""


class TrainingDiverged(Exception):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class RunFault(Exception):
    """A fault of the machine, not of the input (the disk is full, the run directory is taken)."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived. `step` is the step saved in `last.pt`, or None before training began."""

    def __init__(self, signum: int, step: int | None):
        super().__init__(f"interrupted by signal {signum}" + (f" at step {step}" if step is not None else ""))
        self.signum, self.step = signum, step
