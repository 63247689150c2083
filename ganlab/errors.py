"""The errors users see: short messages naming the bad value (or the fault) and the fix."""

from hydra.errors import CompactHydraException

# exit codes: 0 done; 2 bad input (one paragraph, before any work); 3 training diverged; 4 a fault of
# the machine (disk full); 128 + N stopped by signal N (130 SIGINT, 143 SIGTERM)
EXIT_CONFIG, EXIT_DIVERGED, EXIT_FAULT = 2, 3, 4


class ConfigError(Exception):
    """Bad input found before (or instead of) training. The CLI prints it without a traceback."""


class DataNotFound(ConfigError):
    """A data set's files, or one split of them, are not where the config points. Training's held-out
    split may fall back to the training data on this error alone (any other is a real error)."""


class TrainingDiverged(Exception):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class RunFault(Exception):
    """A fault of the machine, not of the input (the disk is full, the run directory is taken)."""


class JobFailed(CompactHydraException):
    """A sweep job's failure as Hydra reports it: one line, no traceback, under every launcher."""


class Refused(CompactHydraException):
    """The vetting refused a composed config, raised inside Hydra's composition: Hydra prints it as
    one message (no traceback) and stops before acting on any of the config."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived during training; `last.pt` was saved at `step`. A BaseException,
    like KeyboardInterrupt, so that no `except Exception` (Hydra's included) eats it."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"interrupted by signal {signum} at step {step}")
        self.signum, self.step = signum, step
