"""What `resume=true` reads back from a run folder: the checkpoint to continue from (once the
run is built), and the overrides it records (for people to read: HParams, report labels).

A run folder is shared input (a colleague's folder, a copied run): its stored settings are read as
data (`stored.py`), never as a command line; the checkpoint is verified, never unpickled, and what
the user typed now wins over what it stores.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ganlab.records import checkpoint
from ganlab.records.rundir import read_run_id
from ganlab.trust.stored import typed_settings
from ganlab.errors import ConfigError

log = logging.getLogger("ganlab")


def check_resume_folder(overrides: list[str]) -> None:
    """`resume=true hydra.run.dir=DIR` must name a folder that exists (before Hydra composes)."""
    given = typed_settings(overrides)
    if given.get("resume", "").lower() != "true":
        return
    if "hydra.run.dir" not in given and not ("-m" in overrides or "--multirun" in overrides):
        raise ConfigError("resume=true continues a run: name its folder, e.g. ganlab train resume=true "
                          "hydra.run.dir=outputs/<date>/<time> (or ganlab resume outputs/<date>/<time>); ls outputs/*/ "
                          "lists the runs.")
    if "hydra.run.dir" not in given:
        return
    run_dir = Path(folder_value(overrides, "hydra.run.dir")).expanduser()
    if not run_dir.is_dir():
        raise ConfigError(f"resume=true but hydra.run.dir={run_dir} does not exist; point it at the folder of the run "
                          "to continue (outputs/<date>/<time>).")


def folder_value(overrides: list[str], key: str) -> str | None:
    """The value typed for `hydra.run.dir` or `hydra.sweep.dir` (quotes removed), or None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found = [o for o in overrides if o.split("=", 1)[0] == key]
    return str(OverridesParser.create().parse_override(found[-1]).value()) if found else None


def left_over(run_dir: Path) -> bool:
    """Whether a start that never reached a checkpoint left its logs in `run_dir`."""
    return (Path(run_dir) / "metrics.jsonl").exists() or (Path(run_dir) / "model_summary.txt").exists()


def hydra_overrides(run_dir: Path) -> list[str]:
    """The overrides in a run's `.hydra/overrides.yaml` ([] when it has none), read as plain data."""
    from ganlab.trust.stored import read_yaml

    saved = Path(run_dir) / ".hydra" / "overrides.yaml"
    previous = read_yaml(saved) if saved.is_file() else []
    if not isinstance(previous, list) or not all(isinstance(o, str) for o in previous):
        raise ConfigError(f"{saved} is not a list of overrides; retype the run's overrides, or remove that file.")
    return previous


# --- the checkpoint to continue from -------------------------------------------------------------
def resume_state(resume: Any, run_dir: Path) -> tuple[dict[str, Any] | None, bool]:
    """(the checkpoint to continue from, whether run_dir holds an earlier attempt of this run).

    resume=true takes the newest intact checkpoint (last.pt, else the newest good step_*.pt); a run
    killed before its first checkpoint starts again from step 0 with a clean log. A new run may not
    start in a folder that holds one already: nothing written is overwritten. resume=auto is true
    when run_dir holds a run and false otherwise (what a resubmitted cluster job needs); any other
    value is the path of a checkpoint to start from.
    """
    ckpt_dir = run_dir / "checkpoints"
    held = checkpoint.holds_run(run_dir)
    if resume == "auto":  # a job that may be resubmitted (Slurm preemption): continue if it ran before
        resume = held
    if resume in (False, None, "false", ""):
        if held:
            raise ConfigError(f"{run_dir} already holds a run. Continue it with resume=true, or pick another "
                              "hydra.run.dir for a new run (nothing already written is overwritten).")
        return None, left_over(run_dir)  # what a start without a checkpoint left is cleaned, not appended to
    if resume not in (True, "true"):
        state = checkpoint.load(Path(str(resume)))
        saved = checkpoint.Saved(state)
        log.warning("resume=%s: a warm start from that checkpoint (run %s, step %s) into a new run", resume,
                    saved.run_id or "without an identity", saved.step)
        return state, False
    latest = checkpoint.load_latest(ckpt_dir, run_id=read_run_id(run_dir))
    if latest is not None:
        log.info("resume: continuing from %s", latest[1])
        return latest[0], True
    if not left_over(run_dir) and not (run_dir / ".hydra" / "config.yaml").is_file():
        raise ConfigError(f"resume=true but {run_dir} holds no run (no checkpoint, no log, no .hydra/config.yaml). "
                          "Point hydra.run.dir at a run's folder (ls outputs/*/ lists them), or drop resume=true "
                          "to start a new run there.")
    log.warning("resume: %s has no checkpoint yet (stopped before its first one); starting from step 0 with a "
                "clean log", run_dir)
    return None, True


def restore(training_state, state: dict[str, Any], changes: dict[str, tuple[Any, Any]], images: int | None) -> None:
    """Load the checkpoint into the freshly built `training_state` (a `run.TrainingState`); what the
    user typed now wins, and each of the `changes` from the stored config (`check_resumable`) is
    logged. `images`: how many the data set holds now (another dataset.root may be other images)."""
    saved = checkpoint.Saved(state)
    try:
        training_state.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()) or "none in the config"
        raise ConfigError(f"resume: the checkpoint does not fit the configured model or optimizer ({first}). "
                          f"Differences from the run's config: {listed}. Resume with the run's own model and "
                          "data settings, or start a new run.") from None
    for key, (old, new) in changes.items():
        log.info("resume: %s %r -> %r (as typed now)", key, old, new)
    before = saved.images
    if before is not None and images is not None and before != images:
        old_root = saved.data_root
        log.warning("resume: the data set now holds %s images, but the run trained on %s (dataset.root was %s); "
                    "the run continues on the data found now", f"{images:,}", f"{before:,}", old_root)
