"""`train(cfg, run_dir)`: the checks, then the one assembly, then the loop.

    checks                      every key, value and `_target_` of the resolved config
    training = assemble(...)    assembly.py: data, run, step, maintenance, restored on resume
    training.train()            loop.py counts steps
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig

from ganlab.errors import RunFault
from ganlab.metrics.registry import known_direction
from ganlab.models.blocks import count_parameters
from ganlab.records import checkpoint
from ganlab.records.logging import NullLogger, RunLogger
from ganlab.records.rundir import RunDirLock, write_run_id
from ganlab.records.safe_files import disk_full, is_disk_full, refuse_link_folder, write_text_atomic
from ganlab.training.assembly import Training, assemble
from ganlab.training.replay import holds_run
from ganlab.training.runtime import build_runtime, pick_device, unwrap
from ganlab.training.schedule import schedule_keys
from ganlab.trust.build import allowed_prefixes, check_targets, to_plain
from ganlab.trust.checks import (check_known_keys, check_loss_fits, check_top_level, check_values, hparam_defaults,
                                 resume_setting)
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
    config = to_plain(cfg)  # the resolved config as plain values: what is built, stored and compared
    hparams = {**hparam_defaults(config), **(choices or {}), **override_values(overrides or [])}  # HParams shows
    resume = resume_setting(config)
    runtime = build_runtime(pick_device(str(config["device"])), **(config.get("runtime") or {}))
    # one process per run directory (under torchrun: the main one holds it for all)
    if runtime.is_main:
        refuse_link_folder(run_dir, "hydra.run.dir")  # before the lock creates anything through it
    lock = RunDirLock(run_dir, announce=False) if runtime.is_main else None
    try:
        with lock or contextlib.nullcontext():
            training = assemble(config, run_dir, prefixes, runtime, overrides or [], choices or {}, resume)
            _accept(lock, on_accept)
            if lock is not None:
                write_run_id(run_dir, training.run.run_id)
            _start(training, hparams, run_dir, bool(config.get("progress", True)), started, on_begin)
            return training
    except (OSError, RuntimeError, MemoryError) as exc:  # a full disk or memory (start-up included): exit 4
        raise _machine_fault(exc, config, run_dir) from None


def _machine_fault(exc: BaseException, config: dict[str, Any], run_dir: Path) -> BaseException:
    """A full disk or memory as one paragraph (RunFault, exit 4); any other error as it is."""
    if _is_out_of_memory(exc):
        return RunFault(_out_of_memory(exc, config, run_dir))
    if not is_disk_full(exc):
        return exc
    return disk_full(getattr(exc, "filename", None) or run_dir, trained=holds_run(run_dir))


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "out of memory" in str(exc)))


def _out_of_memory(exc: BaseException, config: dict[str, Any], run_dir: Path) -> str:
    """One paragraph: what ran out, the batch size and resolution that asked for it, and the fix."""
    import re

    asked = re.search(r"allocate (\d+) bytes", str(exc))
    amount = f" ({int(asked.group(1)) / 2**30:.1f} GiB asked for at once)" if asked else ""
    dataset = config.get("dataset") or {}
    saved = checkpoint.load_latest(run_dir / "checkpoints") if (run_dir / "checkpoints").is_dir() else None
    after = (f" The newest checkpoint (step {saved[0]['step']}) is kept; continue with resume=true and the smaller "
             "setting." if saved else " Nothing was trained yet; start again with the smaller setting.")
    return (f"out of {'GPU ' if 'CUDA' in str(exc) else ''}memory{amount} with dataset.batch_size="
            f"{dataset.get('batch_size')} at dataset.resolution={dataset.get('resolution')}: lower "
            "dataset.batch_size (or the resolution, or the networks' width)." + after)


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


