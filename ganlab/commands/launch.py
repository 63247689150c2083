"""`ganlab train` as a Hydra app: what ganlab adds around `hydra.main`. Resume replays the run's
overrides; the vetting loader is installed before Hydra acts on anything; a sweep's job folders
are named by the swept keys; under torchrun rank 0 picks the run folder; Hydra's composition
errors become one paragraph; each job's known failures become a short message and an exit code.
"""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

from ganlab.errors import EXIT_CONFIG, EXIT_DIVERGED, EXIT_FAULT
from ganlab.trust.paths import config_dir
from ganlab.commands.session import Session
from ganlab.trust.stored import override_key as _key
from ganlab.training.runtime import is_main_process as _is_main, launched_processes
from ganlab.commands.search import StudyComplete, metric_direction, objective_value, uses_optuna, with_direction, with_study, worst

JOB_NAME_LIMIT = 100  # characters of a sweep job's folder name taken from its overrides
# The config groups a run's HParams entry shows (the per-pair groups follow from model and the rest).
SHOWN_CHOICES = ("experiment", "model", "loss", "dataset", "optimizer", "schedule", "generator_backbone",
                 "discriminator_backbone")


class Jobs:
    """What one `ganlab train` invocation's jobs did: how many started, which failed ("run_dir: reason"),
    and the command's session (each job's start-up time, the folder where training began)."""

    def __init__(self, session: Session):
        self.started, self.failed, self.sweep_dir, self.session = 0, [], None, session


def _one_run_dir_for_all_processes(overrides: list[str]) -> list[str]:
    """Under torchrun every process composes its own config, and Hydra's ${now} differs between
    them: rank 0 picks the run directory and the others receive it. Only rank 0 keeps Hydra's
    files and log (the others write nothing)."""
    import torch.distributed as dist

    if "-m" in overrides or "--multirun" in overrides:
        print("ganlab: error: a sweep (-m) cannot run under torchrun; launch one torchrun per sweep point, or use "
              "hydra/launcher=submitit_slurm with GPUs per job.", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    from ganlab.training.runtime import join_processes

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


def run_name(name, experiment, model, dataset) -> str:
    """A run folder's name after its time: `name=` as typed, else the experiment preset, else
    <model>_<dataset> (so a VAE, a cGAN and a classifier are told apart in TensorBoard and report)."""
    chosen = name if name not in (None, "", "None") else (
        experiment if experiment not in (None, "", "None") else f"{model}_{dataset}")
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", str(chosen)).strip("-.")[:JOB_NAME_LIMIT] or "run"


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
    if not OmegaConf.has_resolver("ganlab_run_name"):  # outputs/<date>/<time>_<name>
        OmegaConf.register_new_resolver("ganlab_run_name", run_name)
    if not OmegaConf.has_resolver("ganlab_offset"):  # a continued search numbers its jobs after the earlier ones
        OmegaConf.register_new_resolver("ganlab_offset", lambda num, offset: str(int(num) + int(offset)))


def train(overrides: list[str], session: Session | None = None) -> None:
    """`ganlab train OVERRIDES`: compose, vet, then let Hydra run the job(s)."""
    import hydra

    from ganlab.trust import vetting

    if any(o.startswith("--experimental-rerun") for o in overrides):
        print("ganlab: error: --experimental-rerun is not supported: it unpickles a file, which could run code. "
              "Continue a run with resume=true hydra.run.dir=DIR instead.", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    from ganlab.errors import ConfigError
    from ganlab.training.replay import check_resume_folder

    _register_resolvers()
    overrides = typeable_folders(overrides)
    try:
        check_resume_folder(overrides)
    except ConfigError as exc:
        print(f"ganlab: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    if _prints_resumed_config(overrides):
        return
    if _resumes_sweep(overrides, session):
        return
    if "-m" in overrides or "--multirun" in overrides:
        try:
            overrides = with_direction(overrides)  # an Optuna sweep optimises the run's metric its way
            overrides = with_study(overrides)  # ... keeping its study in the sweep folder, resumable
        except ConfigError as exc:
            print(f"ganlab: error: {exc}", file=sys.stderr)
            sys.exit(EXIT_CONFIG)
        except StudyComplete as exc:
            print(f"ganlab: {exc}")
            return
        overrides = [*overrides, *_name_jobs_by_swept_keys(overrides)]
    if launched_processes() > 1:
        overrides = [*overrides, *_one_run_dir_for_all_processes(overrides)]
    primary_named = any(o.split("=", 1)[0] in ("--config-name", "-cn", "--config-path", "-cp") for o in overrides)
    prints_only = any(o in ("--cfg", "-c", "--help", "-h", "--info", "--hydra-help") for o in overrides)
    vetting.set_origins(vetting.Origins(primary_is_users=primary_named, runs_jobs=not prints_only))
    sys.argv = ["ganlab train", *overrides]  # Hydra reads its arguments from sys.argv
    held = sys.stderr = _HeldStderr(sys.stderr)  # Hydra's composition errors become one ganlab paragraph
    jobs = Jobs(session or Session())

    def job(cfg) -> float | None:
        return _train_job(cfg, jobs)  # what a searching sweeper (Optuna) optimises

    try:
        with vetting.installed():
            hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(job)()
    except SystemExit as exc:
        if exc.code == 1 and held.before_any_job:
            text, held.buffer = "".join(held.buffer), []
            hint = "" if "sweep job" in text or "Refused" in text else \
                " See `ganlab train --help` for the groups and keys."
            nearest = _did_you_mean(text)
            if nearest:  # Hydra's `+key` advice would only lead to a second refusal
                text = re.sub(r"To append to your config use \S+", "", text)
            print(f"ganlab: error: {nearest}{held.paragraph(text)}{hint}", file=held.stream)
            sys.exit(EXIT_CONFIG)
        if exc.code == 1 and jobs.failed:
            if jobs.sweep_dir is not None:
                _sweep_summary(jobs.sweep_dir)
            _report_failed_jobs(jobs)
        raise
    finally:
        held.start_job()
        sys.stderr = held.stream
    if jobs.sweep_dir is not None:
        _sweep_summary(jobs.sweep_dir)
    if jobs.failed:
        _report_failed_jobs(jobs)
    if launched_processes() > 1:
        from ganlab.training.runtime import leave_processes

        leave_processes()


FOLDER_KEYS = ("hydra.run.dir", "hydra.sweep.dir")


def typeable_folders(overrides: list[str]) -> list[str]:
    """A run or sweep folder passes as typed: a sweep job's folder (`S/1_loss=hinge`, `0_a=1,b=2`)
    holds characters of Hydra's override grammar, so its value is quoted for Hydra, unless it
    already parses as it is."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser, fixed = OverridesParser.create(), []
    for override in overrides:
        key, _, value = override.partition("=")
        if key in FOLDER_KEYS and value and value[0] not in "'\"":
            try:
                parser.parse_override(override)
            except HydraException:
                override = f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        fixed.append(override)
    return fixed


def _prints_resumed_config(overrides: list[str]) -> bool:
    """`--cfg job resume=true hydra.run.dir=DIR` prints what the resumed job would train: the run's
    stored settings with the typed overrides on top (Hydra alone would print the defaults)."""
    from ganlab.training.replay import folder_value
    from ganlab.trust.stored import typed_settings

    flags = [i for i, o in enumerate(overrides) if o in ("--cfg", "-c")]
    typed = [o for o in overrides if "=" in o and not o.startswith("-")]
    given = typed_settings(typed)
    if not flags or given.get("resume", "").lower() != "true" or "hydra.run.dir" not in given:
        return False
    run_dir = folder_value(typed, "hydra.run.dir")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ganlab.trust import vetting
    from ganlab.errors import ConfigError, Refused

    try:
        with vetting.installed(), initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=typed)
            job, _, _ = _with_stored_settings(cfg, Path(run_dir), [o for o in typed
                                                                               if not _key(o).startswith("hydra")])
    except (ConfigError, Refused) as exc:
        print(f"ganlab: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    print(OmegaConf.to_yaml(job), end="")
    return True


def _resumes_sweep(overrides: list[str], session: Session | None) -> bool:
    """`ganlab train -m resume=true hydra.sweep.dir=S [overrides]`: continue every job of the sweep
    in S from its record (`sweeps.py`), one after another; returns False for any other command."""
    from ganlab.training.replay import folder_value
    from ganlab.trust.stored import typed_settings

    typed = [o for o in overrides if "=" in o and not o.startswith("-")]
    given = typed_settings(typed)
    if not ("-m" in overrides or "--multirun" in overrides) or given.get("resume", "").lower() != "true" \
            or uses_optuna(overrides):  # a search continues its study instead (search.with_study)
        return False
    folder = folder_value(typed, "hydra.sweep.dir")
    if folder is None:
        print("ganlab: error: resume=true with -m continues a sweep: name its folder, e.g. ganlab train -m resume=true "
              "hydra.sweep.dir=outputs/multirun/<date>/<time> (or ganlab resume <that folder>).", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    rest = [o for o in typed if _key(o) not in ("resume", "hydra.sweep.dir")]
    resume_sweep(Path(folder).expanduser(), rest, session)
    return True


def resume_sweep(sweep_dir: Path, typed: list[str], session: Session | None = None) -> None:
    """Walk the sweep's record: skip finished jobs, continue killed ones, start the ones that never
    started (their planned config written as their stored settings), each as `ganlab train
    resume=true hydra.run.dir=JOB`; then one line per job, the sweep's table, and exit 2 if any failed."""
    from hydra.core.global_hydra import GlobalHydra

    from ganlab.records import sweeps
    from ganlab.errors import ConfigError
    from ganlab.records.safe_files import write_text_atomic

    try:
        if not sweep_dir.is_dir():
            raise ConfigError(f"hydra.sweep.dir={sweep_dir} does not exist; point it at a sweep's folder "
                              "(outputs/multirun/<date>/<time>).")
        record = sweeps.read_or_discover(sweep_dir)
    except ConfigError as exc:
        print(f"ganlab: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    done, failed = [], []
    for job in record["jobs"]:
        job_dir = sweep_dir / job["dir"]
        step, wanted = sweeps.progress(job_dir, job["config"]) if job_dir.is_dir() else (0, 0)
        steps_typed = any(_key(o) == "schedule.steps" for o in typed)
        if job["status"] == "finished" and step >= wanted and not steps_typed:
            done.append(f"{job['dir']}: finished at step {step}, skipped")
            continue
        if job["config"] and not (job_dir / ".hydra" / "config.yaml").exists() and not (job_dir / "checkpoints").exists():
            from omegaconf import OmegaConf

            write_text_atomic(job_dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(job["config"]))
            write_text_atomic(job_dir / ".hydra" / "overrides.yaml", OmegaConf.to_yaml(job["overrides"]))
        print(f"ganlab: sweep {sweep_dir}: job {job['dir']} " + (f"continues from step {step}" if step else "starts"))
        GlobalHydra.instance().clear()
        try:
            train(["resume=true", f"hydra.run.dir={job_dir}", *typed], session)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        (failed if code else done).append(f"{job['dir']}: " + ("finished" if not code else f"failed (exit {code})"))
        sweeps.mark(job_dir, "finished" if not code else "failed", None if not code else f"exit {code}")
    print(f"ganlab: sweep {sweep_dir} resumed:\n" + "\n".join(f"  {line}" for line in done + failed))
    _sweep_summary(sweep_dir)  # the table a sweep ends with, as it stands now
    if failed:
        sys.exit(EXIT_CONFIG)


def _did_you_mean(text: str) -> str:
    """For Hydra's 'Could not override X' (a key or group that does not exist): the nearest group or
    key, first, instead of Hydra's `+X` advice that only leads to a second refusal; for 'Could not
    find group/option', the nearest option."""
    import difflib

    from ganlab.trust.paths import config_groups

    missing = re.search(r"Could not find '([^/']+)/([^']+)'", text)  # an option the group does not have
    if missing:
        group, option = missing.groups()
        near = difflib.get_close_matches(option, config_groups().get(group) or [], n=1, cutoff=0.6)
        return f"{group}={option} is not an option of {group}. Did you mean {group}={near[0]}? " if near else ""
    found = re.search(r"Could not override '([^']+)'", text)
    if not found:
        return ""
    wrong = found.group(1)
    groups = sorted(g for g in config_groups() if not g.startswith(("_", "hydra")))
    near = [] if "." in wrong else difflib.get_close_matches(wrong, groups, n=1, cutoff=0.7)
    if near:
        return f"{wrong} is not a config group or key. Did you mean {near[0]}= (one of: {', '.join(groups)})? "
    try:
        from omegaconf import OmegaConf

        from ganlab.trust.checks import flatten
        from ganlab.trust.paths import compose

        keys = sorted(flatten(OmegaConf.to_container(compose([]), resolve=False)))
    except Exception:  # noqa: BLE001 - a hint only
        return ""
    if wrong in keys:  # a setting of another model (model.generator.width on a VAE): Hydra's words say it
        return ""
    near = difflib.get_close_matches(wrong, keys, n=1, cutoff=0.75)
    return f"{wrong} is not a ganlab setting. Did you mean {near[0]}? " if near else ""


def _report_failed_jobs(jobs: Jobs) -> None:
    print(f"ganlab: {len(jobs.failed)} sweep job(s) failed:\n" + "\n".join(f"  {j}" for j in jobs.failed),
          file=sys.stderr)
    sys.exit(EXIT_CONFIG)


# What Hydra prints around a failed sweep job: its own advice, which would point at a traceback
_HYDRA_JOB_NOISE = re.compile(r"^\s*(Error executing job with overrides: .*|Set the environment variable "
                              r"HYDRA_FULL_ERROR=1 for a complete stack trace\.)\s*$", re.S)


class _HeldStderr(io.TextIOBase):
    """Holds what is written to stderr until the first job starts, so that Hydra's composition
    errors can be printed as one ganlab paragraph; from then on it writes straight through."""

    def __init__(self, stream):
        self.stream, self.buffer, self.before_any_job = stream, [], True

    def write(self, text: str) -> int:
        if not self.before_any_job and _HYDRA_JOB_NOISE.match(text):
            return len(text)  # a failed sweep job is reported by ganlab in one line, with its reason
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


def _train_job(cfg, jobs: Jobs) -> float | None:
    """One Hydra job: train into Hydra's output dir, turning known failures into short messages.

    In a sweep a failed job raises (after writing its error to its own train.log), so every Hydra
    launcher reports it as failed; the basic launcher still runs the remaining jobs first.
    """
    import logging

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from ganlab.records import sweeps
    from ganlab.errors import ConfigError, Interrupted, JobFailed, RunFault, TrainingDiverged
    from ganlab.records.rundir import open_run_logs, remove_created
    from ganlab.training.train import train
    from ganlab.trust.vetting import created_by_this_process

    _register_resolvers()  # in a launcher's worker process too
    if isinstance(sys.stderr, _HeldStderr):
        sys.stderr.start_job()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    log = logging.getLogger("ganlab")
    overrides = list(hydra_cfg.overrides.task)
    if jobs.started:  # a sweep's later job: its start-up clock starts now, not with the first job's
        jobs.session.started = time.perf_counter()
    jobs.started += 1
    if sweeping and _is_main():
        jobs.sweep_dir = run_dir.parent
        sweeps.mark(run_dir, "running")
    try:
        choices = {group: str(option) for group, option in hydra_cfg.runtime.choices.items()
                   if option is not None and group in SHOWN_CHOICES}
        cfg, overrides, stored_choices = _with_stored_settings(cfg, run_dir, overrides)
        choices = stored_choices or choices  # a resumed run keeps the groups it chose
        loop = train(cfg, run_dir, overrides=overrides, on_accept=lambda: _accepted(cfg, run_dir, overrides, sweeping),
                     choices=choices, started=jobs.session.started, on_begin=lambda: setattr(
                         jobs.session, "training_in", run_dir))
    except (ConfigError, TrainingDiverged, RunFault) as exc:
        kind = {TrainingDiverged: "training diverged", RunFault: "fault"}.get(type(exc), "error")
        code = {TrainingDiverged: EXIT_DIVERGED, RunFault: EXIT_FAULT}.get(type(exc), EXIT_CONFIG)
        created = created_by_this_process(run_dir) if _is_main() else []
        if isinstance(exc, TrainingDiverged) and "optuna" in str(hydra_cfg.sweeper.get("_target_", "")):
            value = worst(metric_direction(OmegaConf.to_container(cfg.metrics, resolve=True))[1])
            log.error("%s: %s; the sweeper is told %s", kind, exc, value)
            return value  # a trial Optuna can rank (an exception would end the whole study)
        if sweeping:
            log.error("%s: %s", kind, exc)
            if _is_main():
                sweeps.mark(run_dir, "diverged" if isinstance(exc, TrainingDiverged) else "failed", str(exc).split(". ")[0])
            if _is_main() and run_dir.is_dir() and not any(run_dir.iterdir()):
                open_run_logs()  # a job's fresh folder keeps its error in train.log (never an earlier run's)
            jobs.failed.append(f"{run_dir}: {str(exc).split('. ')[0]}")
            raise JobFailed(f"sweep job {run_dir} failed: {kind}: {exc}") from None
        if isinstance(exc, (ConfigError, RunFault)):
            remove_created(created)  # a refused (or never started) command leaves no empty folder behind
        print(f"ganlab: {kind}: {exc}", file=sys.stderr)
        sys.exit(code)
    except Interrupted as exc:
        if sweeping and _is_main():
            sweeps.mark(run_dir, "stopped", f"at step {exc.step}")
        if _is_main():
            print(f"ganlab: stopped at step {exc.step}; saved {run_dir / 'checkpoints' / 'last.pt'}. Continue "
                  f"with:\n  ganlab train resume=true hydra.run.dir={run_dir}", file=sys.stderr)
        sys.exit(128 + exc.signum)
    value = objective_value(loop.best, loop.best_higher)
    if sweeping and _is_main():
        sweeps.mark(run_dir, "finished", f"step {loop.step}")
    if _is_main():
        from ganlab.records.logging import final_summary

        print("".join(f"ganlab: final {line}\n" for line in final_summary(run_dir, loop.best)), end="")
        print(f"ganlab: run finished: {run_dir}")
        from ganlab.records.rundir import incomplete_logs

        for lost in incomplete_logs():
            print(f"ganlab: warning: the log {lost} is incomplete: writing it failed during the run.", file=sys.stderr)
    if value is not None:
        log.info("objective value for the sweeper: %s = %.6g", loop.best["metric"], value)
    return value


def _accepted(cfg, run_dir: Path, overrides: list[str], sweeping: bool) -> None:
    """The command is accepted: write `.hydra/`, and say where the run is and how to watch it (a
    sweep says it for the whole sweep when it ends)."""
    _write_hydra_files(cfg, run_dir, overrides)
    if not sweeping and _is_main():
        print(f"ganlab: run folder {run_dir}\n  watch:   tensorboard --logdir {run_dir}\n"
              f"  compare: ganlab report {run_dir}", flush=True)


def _sweep_summary(sweep_dir: Path) -> None:
    """A sweep's end: a table of its jobs (status, last step, final losses, latest metrics) and the
    report command."""
    from ganlab.records import sweeps
    from ganlab.records.logging import read_metrics

    if not (sweep_dir / sweeps.NAME).is_file():
        return
    table = []
    for job in sweeps.read(sweep_dir)["jobs"]:
        rows = read_metrics(sweep_dir / job["dir"]) if (sweep_dir / job["dir"] / "metrics.jsonl").is_file() else []
        latest = {k: v for row in rows for k, v in row.items() if k.startswith(("metrics/", "eval/"))}
        losses = {k: v for k, v in (rows[-1] if rows else {}).items() if k.startswith("loss/")}
        table.append({"job": job["dir"], "status": job["status"], "step": rows[-1]["step"] if rows else "-",
                      **losses, **latest})
    columns = list(dict.fromkeys(k for row in table for k in row))
    cells = [[_cell(row.get(c, "-")) for c in columns] for row in table]
    widths = [max(len(c), *(len(r[n]) for r in cells)) for n, c in enumerate(columns)]
    lines = ["  " + "  ".join(text.ljust(w) for text, w in zip(row, widths)).rstrip() for row in [columns, *cells]]
    print(f"ganlab: sweep {sweep_dir}:\n" + "\n".join(lines) + f"\n  compare: ganlab report {sweep_dir}")


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _with_stored_settings(cfg, run_dir: Path, typed: list[str]):
    """On resume, the run's stored settings (plain data, `stored.py`) with what was typed now on
    top, and the overrides to record (the run's, then the typed ones that changed them); a new
    run's config and overrides as composed."""
    from hydra import compose
    from omegaconf import OmegaConf

    from ganlab.trust import stored
    from ganlab.trust.build import to_plain
    from ganlab.records.checkpoint import holds_run

    resume = cfg.get("resume")
    if str(resume).lower() not in ("true", "auto") or (str(resume).lower() == "auto" and not holds_run(run_dir)):
        return cfg, typed, None
    found = stored.read(run_dir)
    if found is None:
        return cfg, typed, None
    settings, recorded, chosen = found
    again = [o for o in typed if o in recorded]  # typed now as the run was started: no change
    baseline = compose(config_name="config", overrides=again)
    now = to_plain(cfg)
    merged = stored.merged(settings, now, to_plain(OmegaConf.masked_copy(baseline, [k for k in baseline
                                                                                  if k != "hydra"])), typed)
    keys = {_key(o) for o in typed}
    chosen = {**chosen, **{_key(o): o.split("=", 1)[1] for o in typed if _key(o) in SHOWN_CHOICES}}  # typed now wins
    return (OmegaConf.create(stored.drop_unknown(merged, now)), [o for o in recorded if _key(o) not in keys] + list(typed),
            chosen or None)


def _write_hydra_files(cfg, run_dir: Path, overrides: list[str]) -> None:
    """What Hydra would have written into <run>/.hydra/ at start: written once the command is
    accepted (a refused one leaves a run folder as it was), atomically, never through a link.
    config.yaml holds the resolved settings (plain values: what resume reads back as data);
    overrides.yaml the command line, for people to read (nothing ever parses it)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from ganlab.records.rundir import open_run_logs
    from ganlab.records.safe_files import write_text_atomic

    hydra_cfg = HydraConfig.get()
    folder = run_dir / ".hydra"
    write_text_atomic(folder / "config.yaml", OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True)))
    write_text_atomic(folder / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))
    write_text_atomic(folder / "overrides.yaml", OmegaConf.to_yaml(list(overrides)))
    open_run_logs()
