"""Sweeps that search: what `ganlab train` returns to a Hydra sweeper, so that Optuna's
(`hydra/sweeper=optuna`, the `ganlab[optuna]` extra) optimises a run's metric.

The value is the best value, over the run's measurements (`schedule.eval_every`), of the metric
that keeps best.pt: `metrics.best`, else the first value of the first of `metrics.names`. A run
that diverged returns the worst value (+inf when lower is better, -inf when higher is), never NaN,
which stops Optuna's sweeper. The sweeper's direction follows the metric unless it is typed.
"""

from __future__ import annotations

import math
from typing import Any

from ganlab.errors import ConfigError


def uses_optuna(overrides: list[str]) -> bool:
    return any(o.replace(" ", "") in ("hydra/sweeper=optuna",) for o in overrides)


def metric_direction(metrics: dict[str, Any]) -> tuple[str, bool]:
    """(the metric a sweep optimises, whether higher is better), from the `metrics` settings."""
    from ganlab.metrics.registry import METRICS, direction

    best, names = metrics.get("best"), metrics.get("names")
    if best:
        return str(best), direction(str(best))
    if isinstance(names, (list, tuple)) and names and names[0] in METRICS:
        name, higher = next(iter(METRICS[names[0]].higher_is_better.items()))
        return name, higher
    raise ConfigError("an Optuna sweep optimises a metric measured during training: name it, e.g. "
                      "metrics.names=[classifier_fd] metrics.classifier=PATH schedule.eval_every=500 (or "
                      "metrics.names=[toy] on the 2-d toys), or metrics.best=NAME.")


def with_direction(overrides: list[str]) -> list[str]:
    """An Optuna sweep's overrides with `hydra.sweeper.direction` from the metric, unless typed."""
    if not uses_optuna(overrides) or any(o.startswith("hydra.sweeper.direction=") for o in overrides):
        return overrides
    from ganlab.trust.paths import compose

    settings = [o for o in overrides if o.split("=", 1)[0].lstrip("+~").startswith(("metrics.", "experiment"))]
    from omegaconf import OmegaConf

    try:
        metrics = OmegaConf.to_container(compose(settings).metrics, resolve=True)
    except Exception as exc:  # noqa: BLE001 - a preset outside ganlab's configs, a bad value: Hydra raises several kinds
        raise ConfigError(f"could not tell which way the Optuna sweep should optimise from {', '.join(settings)} "
                          f"({str(exc).splitlines()[0]}); type it: hydra.sweeper.direction=minimize (or maximize).") \
            from None
    _, higher = metric_direction(metrics)
    return [*overrides, f"hydra.sweeper.direction={'maximize' if higher else 'minimize'}"]


def objective_value(best: dict[str, Any] | None, higher: bool | None) -> float | None:
    """The run's value for the sweeper: the best measured value; None when nothing was measured."""
    if best is None or "value" not in best:
        return None
    value = float(best["value"])
    return worst(bool(higher)) if math.isnan(value) else value


def worst(higher: bool) -> float:
    return -math.inf if higher else math.inf


STUDY_FILE = "optuna.db"  # an Optuna search's study, kept in its sweep folder
STUDY_NAME = "ganlab"
DEFAULT_TRIALS = 20  # hydra-optuna-sweeper's n_trials when none is typed


def _typed(overrides: list[str], key: str) -> str | None:
    found = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == key]
    return found[-1] if found else None


def with_study(overrides: list[str]) -> list[str]:
    """An Optuna search with a typed hydra.sweep.dir keeps its study in <sweep>/optuna.db (SQLite:
    plain rows, no pickles); with resume=true the search continues that study: the trials it
    finished are not run again, a trial a kill left running is marked failed, and the search runs
    the trials still missing from hydra.sweeper.n_trials, in job folders numbered after the earlier ones."""
    from ganlab.training.replay import folder_value

    if not uses_optuna(overrides):
        return overrides
    sweep_dir, resume = folder_value(overrides, "hydra.sweep.dir"), str(_typed(overrides, "resume")).lower() == "true"
    if sweep_dir is None:
        if resume:
            raise ConfigError("resume=true continues an Optuna search from its sweep folder: type "
                              "hydra.sweep.dir=<the search's folder>.")
        return overrides
    from pathlib import Path

    db = Path(sweep_dir).expanduser().absolute() / STUDY_FILE
    added = [] if _typed(overrides, "hydra.sweeper.storage") else [f"hydra.sweeper.storage='sqlite:///{db}'"]
    added += [] if _typed(overrides, "hydra.sweeper.study_name") else [f"hydra.sweeper.study_name={STUDY_NAME}"]
    if not resume:
        return [*overrides, *added]
    if not db.is_file():
        raise ConfigError(f"resume=true: {db} does not exist, so there is no study to continue (a search keeps one "
                          "when it is started with hydra.sweep.dir typed). Start the search without resume=true.")
    done = _close_study(f"sqlite:///{db}", _typed(overrides, "hydra.sweeper.study_name") or STUDY_NAME)
    wanted = int(_typed(overrides, "hydra.sweeper.n_trials") or DEFAULT_TRIALS)
    if done >= wanted:
        raise StudyComplete(f"the search in {sweep_dir} has finished {done} of hydra.sweeper.n_trials={wanted} trials; "
                            "nothing to run. Raise hydra.sweeper.n_trials to search on.")
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("resume", "hydra.sweeper.n_trials")]
    subdir = "${ganlab_offset:${hydra.job.num}," + str(done) + "}_${ganlab_job_name:${hydra.job.override_dirname}}"
    return [*kept, *added, f"hydra.sweeper.n_trials={wanted - done}", f"hydra.sweep.subdir='{subdir}'"]


class StudyComplete(Exception):
    """resume=true on a search that has run all its trials."""


def _close_study(storage: str, name: str) -> int:
    """The trials of the study that finished (complete, pruned or failed); the ones a kill left
    running are marked failed first."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception as exc:  # noqa: BLE001 - a damaged file or another study name: one paragraph
        raise ConfigError(f"resume=true: the study {name!r} in {storage} could not be opened "
                          f"({str(exc).splitlines()[0]}); start the search again in another folder.") from None
    for trial in study.trials:
        if trial.state == TrialState.RUNNING:
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
               for t in optuna.load_study(study_name=name, storage=storage).trials)

