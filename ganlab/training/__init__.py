"""Training: the assembly of a run, the loop, the step, maintenance, schedule, runtime, resume."""
