"""The `ganlab` command: picks the verb and hands the rest to Hydra (train) or to the verb's parser.

Exit codes: 0 done; 2 bad input (one paragraph, before any work); 3 training diverged; 4 a fault
of the machine (disk full); 130 / 143 stopped by SIGINT / SIGTERM, before or during training.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

from ganlab.paths import config_dir

EXIT_CONFIG, EXIT_DIVERGED, EXIT_FAULT = 2, 3, 4
JOB_NAME_LIMIT = 100  # characters of a sweep job's folder name taken from its overrides
FAILED_JOBS: list[str] = []  # sweep jobs that failed, as "run_dir: reason"
_JOBS_STARTED = 0  # jobs this process has started (a sweep runs several)
# The config groups a run's HParams entry shows (the per-pair groups follow from model and the rest).
SHOWN_CHOICES = ("experiment", "model", "loss", "dataset", "optimizer", "schedule", "generator_backbone",
                 "discriminator_backbone")


def main(argv: list[str] | None = None) -> None:
    _stop_cleanly_on_signals()
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        from ganlab.usage import general_help

        print(general_help())
        return
    verb, rest = args[0], args[1:]
    if verb == "train" and any(a in ("-h", "--help") for a in rest):
        from ganlab.usage import train_help

        print(train_help())
        return
    if verb == "train":
        _hydra_train(rest)
    elif verb in READERS:
        _read_run(verb, rest)
    else:
        print(f"ganlab: unknown command {verb!r}; the commands are: train, {', '.join(READERS)}. See `ganlab --help`.",
              file=sys.stderr)
        sys.exit(EXIT_CONFIG)


READERS = {"sample": "ganlab.sample", "eval": "ganlab.evaluate", "report": "ganlab.report"}  # verbs that read finished runs


def _read_run(verb: str, args: list[str]) -> None:
    """A verb with key=value options; bad input is one paragraph and exit 2, as for train."""
    import importlib
    import logging

    from ganlab.errors import ConfigError

    from ganlab.rundir import is_disk_full

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        importlib.import_module(READERS[verb]).main(args)
    except ConfigError as exc:
        print(f"ganlab: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    except (OSError, RuntimeError) as exc:
        if not is_disk_full(exc):
            raise
        where = getattr(exc, "filename", None) or "its output"
        print(f"ganlab: fault: ganlab {verb} could not write {where}: the disk is full. Nothing partial was left "
              "under the output's name; free some space and run it again.", file=sys.stderr)
        sys.exit(EXIT_FAULT)


def _stop_cleanly_on_signals() -> None:
    """SIGINT / SIGTERM before training starts: stop at once with 130 / 143 and one line, no
    traceback. Nothing needs saving yet, and raising inside an import (torch's, say) could abort
    the interpreter, so the handler exits directly. The training loop installs its own handlers,
    which finish the step and save last.pt first."""

    import ganlab

    def stop(signum, _frame):
        if ganlab.TRAINING_IN is None:
            text = f"stopped by signal {signum} before training started; nothing was trained."
        else:  # after the loop ended (a failed process group under torchrun, say): checkpoints exist
            text = (f"stopped by signal {signum} after training had begun in {ganlab.TRAINING_IN}; its newest "
                    f"checkpoint is kept. Continue with: ganlab train resume=true hydra.run.dir={ganlab.TRAINING_IN}")
        os.write(2, f"\nganlab: {text}\n".encode())
        os._exit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def _one_run_dir_for_all_processes(overrides: list[str]) -> list[str]:
    """Under torchrun every process composes its own config, and Hydra's ${now} differs between
    them: rank 0 picks the run directory and the others receive it. Only rank 0 keeps Hydra's
    files and log (the others write nothing)."""
    import time

    import torch.distributed as dist

    if "-m" in overrides or "--multirun" in overrides:
        print("ganlab: error: a sweep (-m) cannot run under torchrun; launch one torchrun per sweep point, or use "
              "hydra/launcher=submitit_slurm with GPUs per job.", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    from ganlab.runtime import join_processes

    given = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra.run.dir=")]
    join_processes()  # the group the run then trains in
    holder = [given[-1] if given else time.strftime("outputs/%Y-%m-%d/%H-%M-%S")]
    dist.broadcast_object_list(holder, src=0)
    rank = dist.get_rank()
    quiet = [] if rank == 0 else ["hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    return [f"hydra.run.dir={holder[0]}", *quiet]


def job_folder_name(overrides: str) -> str:
    """A sweep job's folder name from its overrides, cut (with a hash, to stay unique) where too long
    for a file name. Registered as the `ganlab_job_name` resolver that configs/config.yaml uses."""
    import hashlib

    name = overrides.replace("/", "_")
    if len(name) <= JOB_NAME_LIMIT:
        return name
    return name[: JOB_NAME_LIMIT - 9] + "~" + hashlib.sha1(name.encode()).hexdigest()[:8]


def _name_jobs_by_swept_keys(overrides: list[str]) -> list[str]:
    """A sweep job's folder is named by the keys being swept (`0_loss=bce`), not every override:
    the others join the exclude list of configs/config.yaml (Hydra's override_dirname)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    settings = [o for o in overrides if "=" in o and not o.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(settings)
    except HydraException:
        return []  # Hydra reports the bad override itself, in one paragraph
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    always = OmegaConf.load(config_dir() / "config.yaml").hydra.job.config.override_dirname.exclude_keys
    fixed = sorted({o.key_or_group for o in parsed} - swept) + list(always)
    return ["hydra.job.config.override_dirname.exclude_keys=[" + ",".join(f"'{k}'" for k in fixed) + "]"]


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("ganlab_job_name"):
        OmegaConf.register_new_resolver("ganlab_job_name", job_folder_name)


def _hydra_train(overrides: list[str]) -> None:
    import hydra

    from ganlab import vetting

    if any(o.startswith("--experimental-rerun") for o in overrides):
        print("ganlab: error: --experimental-rerun is not supported: it unpickles a file, which could run code. "
              "Continue a run with resume=true hydra.run.dir=DIR instead.", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    from ganlab.errors import ConfigError
    from ganlab.replay import with_run_overrides

    _register_resolvers()
    try:
        overrides, replayed = with_run_overrides(overrides)
    except ConfigError as exc:
        print(f"ganlab: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    if "-m" in overrides or "--multirun" in overrides:
        overrides = [*overrides, *_name_jobs_by_swept_keys(overrides)]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        overrides = [*overrides, *_one_run_dir_for_all_processes(overrides)]
    primary_named = any(o.split("=", 1)[0] in ("--config-name", "-cn", "--config-path", "-cp") for o in overrides)
    vetting.set_origins(vetting.Origins(replayed=replayed, primary_is_users=primary_named))
    sys.argv = ["ganlab train", *overrides]  # Hydra reads its arguments from sys.argv
    held = sys.stderr = _HeldStderr(sys.stderr)  # Hydra's composition errors become one ganlab paragraph
    try:
        with vetting.installed():
            hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(_train_job)()
    except SystemExit as exc:
        if exc.code == 1 and held.before_any_job:
            text, held.buffer = "".join(held.buffer), []
            hint = "" if "sweep job" in text or "Refused" in text else \
                " See `ganlab train --help` for the groups and keys."
            print(f"ganlab: error: {held.paragraph(text)}{hint}", file=held.stream)
            sys.exit(EXIT_CONFIG)
        if exc.code == 1 and FAILED_JOBS:
            _report_failed_jobs()
        raise
    finally:
        held.start_job()
        sys.stderr = held.stream
    if FAILED_JOBS:
        _report_failed_jobs()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from ganlab.runtime import leave_processes

        leave_processes()


def _report_failed_jobs() -> None:
    print(f"ganlab: {len(FAILED_JOBS)} sweep job(s) failed:\n" + "\n".join(f"  {j}" for j in FAILED_JOBS),
          file=sys.stderr)
    sys.exit(EXIT_CONFIG)


class _HeldStderr(io.TextIOBase):
    """Holds what is written to stderr until the first job starts, so that Hydra's composition
    errors can be printed as one ganlab paragraph; from then on it writes straight through."""

    def __init__(self, stream):
        self.stream, self.buffer, self.before_any_job = stream, [], True

    def write(self, text: str) -> int:
        (self.buffer.append if self.before_any_job else self.stream.write)(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def start_job(self) -> None:
        self.before_any_job = False
        self.stream.write("".join(self.buffer))
        self.buffer = []

    def paragraph(self, text: str | None = None) -> str:
        text = (text or "".join(self.buffer)).split("Config search path:")[0]  # Hydra's internals: noise here
        lines = [line.strip() for line in text.splitlines()]
        return " ".join(line for line in lines if line and "HYDRA_FULL_ERROR" not in line)

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def _train_job(cfg) -> None:
    """One Hydra job: train into Hydra's output dir, turning known failures into short messages.

    In a sweep a failed job raises (after writing its error to its own train.log), so every Hydra
    launcher reports it as failed; the basic launcher still runs the remaining jobs first.
    """
    import logging

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ganlab.errors import ConfigError, Interrupted, JobFailed, RunFault, TrainingDiverged
    from ganlab.rundir import open_run_logs, remove_created
    from ganlab.train import train
    from ganlab.vetting import created_by_this_process

    _register_resolvers()  # in a launcher's worker process too
    if isinstance(sys.stderr, _HeldStderr):
        sys.stderr.start_job()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    log = logging.getLogger("ganlab")
    overrides = list(hydra_cfg.overrides.task)
    global _JOBS_STARTED
    if _JOBS_STARTED:  # a sweep's later job: its start-up clock starts now, not with the first job's
        import ganlab

        ganlab.STARTED = time.perf_counter()
    _JOBS_STARTED += 1
    try:
        choices = {group: str(option) for group, option in hydra_cfg.runtime.choices.items()
                   if option is not None and group in SHOWN_CHOICES}
        loop = train(cfg, run_dir, overrides=overrides, on_accept=lambda: _write_hydra_files(cfg, run_dir),
                     choices=choices)
    except (ConfigError, TrainingDiverged, RunFault) as exc:
        kind = {TrainingDiverged: "training diverged", RunFault: "fault"}.get(type(exc), "error")
        code = {TrainingDiverged: EXIT_DIVERGED, RunFault: EXIT_FAULT}.get(type(exc), EXIT_CONFIG)
        created = created_by_this_process(run_dir) if _is_main() else []
        if sweeping:
            log.error("%s: %s", kind, exc)
            if _is_main() and run_dir.is_dir() and not any(run_dir.iterdir()):
                open_run_logs()  # a job's fresh folder keeps its error in train.log (never an earlier run's)
            FAILED_JOBS.append(f"{run_dir}: {str(exc).split('. ')[0]}")
            raise JobFailed(f"sweep job {run_dir} failed: {kind}: {exc}") from None
        if isinstance(exc, ConfigError):
            remove_created(created)  # a refused command leaves no folder behind
        print(f"ganlab: {kind}: {exc}", file=sys.stderr)
        sys.exit(code)
    except Interrupted as exc:
        if _is_main():
            print(f"ganlab: stopped at step {exc.step}; saved {run_dir / 'checkpoints' / 'last.pt'}. Continue "
                  f"with:\n  ganlab train resume=true hydra.run.dir={run_dir}", file=sys.stderr)
        sys.exit(128 + exc.signum)
    if _is_main():
        from ganlab.logging import final_summary

        print("".join(f"ganlab: final {line}\n" for line in final_summary(run_dir, loop.best)), end="")
        print(f"ganlab: run finished: {run_dir}")


def _write_hydra_files(cfg, run_dir: Path) -> None:
    """What Hydra would have written into <run>/.hydra/ at start: written once the command is
    accepted (a refused one leaves a run folder as it was), atomically, never through a link."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from ganlab.rundir import open_run_logs, write_text_atomic

    hydra_cfg = HydraConfig.get()
    folder = run_dir / ".hydra"
    write_text_atomic(folder / "config.yaml", OmegaConf.to_yaml(cfg))
    write_text_atomic(folder / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))
    write_text_atomic(folder / "overrides.yaml", OmegaConf.to_yaml(hydra_cfg.overrides.task))
    open_run_logs()


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
