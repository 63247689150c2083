"""ganlab: a configuration-driven experiment runner for GANs and VAEs."""

import time

__version__ = "0.1.0"
STARTED = time.perf_counter()  # when ganlab was first imported: the loop reports its time to the first step
TRAINING_IN = None  # the run folder once training has begun (what a late signal reports)
