"""`train(cfg, run_dir)`: the checks, then the one assembly, then the loop.

    checks                      every key, value and `_target_` of the resolved config
    training = assemble(...)    assembly.py: data, run, step, maintenance, restored on resume
    training.train()            loop.py counts steps
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig

from ganlab.metrics.registry import known_direction
from ganlab.models.blocks import count_parameters
from ganlab.records import checkpoint
from ganlab.records.logging import NullLogger, RunLogger
from ganlab.records.rundir import RunDirLock, write_run_id
from ganlab.records.faults import machine_faults
from ganlab.records.safe_files import refuse_link_folder, write_text_atomic
from ganlab.training.assembly import Training, assemble
from ganlab.training.runtime import build_runtime, pick_device, unwrap
from ganlab.training.schedule import schedule_keys
from ganlab.trust.build import allowed_prefixes, check_targets, to_plain
from ganlab.trust.checks import (check_known_keys, check_loss_fits, check_top_level, check_values, hparam_values,
                                 held_out_split, resume_setting)
from ganlab.trust.stored import override_values

log = logging.getLogger("ganlab")


def train(cfg: DictConfig, run_dir: Path | str, overrides: list[str] | None = None,
          on_accept: Callable[[], None] | None = None, choices: dict[str, str] | None = None,
          started: float | None = None, on_begin: Callable[[], None] | None = None) -> Training:
    """Train the configured objective, writing everything under `run_dir`; returns the finished run.

    `overrides`: the command line it came from (stored in checkpoints, shown in HParams with the
    config groups' `choices`, e.g. {"model": "dcgan", "loss": "bce"}). Nothing is
    written into `run_dir` until every check has passed and the networks are built (and restored);
    then `on_accept()` runs (the CLI writes `.hydra/` and starts train.log) and training begins
    (`on_begin()`: from then on checkpoints exist to continue from). `started`: when start-up began
    (perf_counter; default now), for the time to the first step."""
    run_dir = Path(run_dir)
    started = time.perf_counter() if started is None else started
    # --- check everything that can be checked before any work -----------------------------
    check_top_level(cfg)
    prefixes = allowed_prefixes(cfg.get("allowed_targets") or [])
    check_loss_fits(cfg, prefixes)
    check_known_keys(cfg, schedule_keys())
    check_values(cfg)  # sizes and rates by key name, where the user typed them
    check_targets(cfg, prefixes)  # on the resolved config: exactly what will be built
    # the resolved config as plain values, held-out data held out: what is built, stored and compared
    config = held_out_split(to_plain(cfg), prefixes)
    # what HParams shows; `run`, the folder's own name, is the short label its cut-off trial IDs are not
    hparams = {"run": run_label(run_dir), **hparam_values(config, choices or {}, override_values(overrides or []))}
    resume = resume_setting(config)
    dataset = config.get("dataset") or {}
    with machine_faults(run_dir, dataset.get("batch_size"), dataset.get("resolution")):  # start-up included: exit 4
        runtime = build_runtime(pick_device(str(config["device"])), **(config.get("runtime") or {}))
        # one process per run directory (under torchrun: the main one holds it for all)
        if runtime.is_main:
            refuse_link_folder(run_dir, "hydra.run.dir")  # before the lock creates anything through it
        lock = RunDirLock(run_dir, announce=False) if runtime.is_main else None
        with lock or contextlib.nullcontext():
            training = assemble(config, run_dir, prefixes, runtime, overrides or [], choices or {}, resume)
            _accept(lock, on_accept)
            if lock is not None:
                write_run_id(run_dir, training.run.run_id)
            _start(training, hparams, run_dir, bool(config.get("progress", True)), started, on_begin)
            return training


def run_label(run_dir: Path) -> str:
    """A run's folder name with its name first (`dcgan_digits 14-35-45` for `14-35-45_dcgan_digits`):
    a table column that cuts it still shows what the run is."""
    timed = re.fullmatch(r"(\d\d-\d\d-\d\d)_(.+)", run_dir.name)
    return f"{timed.group(2)} {timed.group(1)}" if timed else run_dir.name


def _accept(lock: RunDirLock | None, on_accept: Callable[[], None] | None) -> None:
    """The command is accepted: from here on the run folder is written."""
    if lock is None:
        return
    lock.announce()
    if on_accept is not None:
        on_accept()
    removed = [path for folder in ("", ".hydra", "checkpoints", "samples")
               for path in checkpoint.remove_stale_temporaries(lock.run_dir / folder)]
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted write", len(removed))


def _start(training: Training, hparams: dict[str, Any], run_dir: Path, progress: bool, started: float,
           on_begin: Callable[[], None] | None) -> None:
    """The accepted run: its summary and logs, then training."""
    runtime, run, schedule = training.runtime, training.run, training.schedule
    if runtime.is_main:
        _write_summary({name: unwrap(net) for name, net in run.networks.items()}, run_dir)  # the run's first file
    start = training.step
    logger = RunLogger(run_dir, schedule.steps, start_step=start, progress=progress,
                       resumed=training.resumed) if runtime.is_main else NullLogger(run_dir)
    phases = [phase.name for phase in run.objective.phases]
    tags = training.evaluator.metric_tags
    logger.describe(hparams, phases,
                    {tag: known_direction(tag.split("/", 1)[1]) for tag in tags})
    training.maintenance.logger = logger
    if on_begin is not None:
        on_begin()  # a signal from now on finds checkpoints to continue from
    try:
        if start:
            log.info("resumed from step %d of %d", start, schedule.steps)
        training.train(started=started)
    finally:
        logger.close()


def _write_summary(networks: dict[str, torch.nn.Module], run_dir: Path) -> None:
    """One line per network with its parameter count (printed and saved), then the architectures."""
    lines = [f"{name:<14} {count_parameters(net):>12,} params  ({type(net).__name__})" for name, net in networks.items()]
    for line in lines:
        log.info(line)
    text = "\n".join(lines) + "\n\n" + "\n\n".join(f"{name}: {net}" for name, net in networks.items()) + "\n"
    write_text_atomic(run_dir / "model_summary.txt", text)


