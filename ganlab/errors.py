"""The one error type users see: a short message naming the bad value and the fix."""


class ConfigError(Exception):
    """Bad input found before (or instead of) training. The CLI prints it without a traceback."""


class TrainingDiverged(Exception):
    """A loss became NaN or infinite; the last good checkpoint is kept."""
