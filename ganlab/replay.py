"""What `resume=true` reads back from a run folder: the overrides the run was started with.

They are shared input (a colleague's folder, a copied run): the vetting (`vetting.py`) is told which
overrides were replayed, and those may neither configure Hydra nor widen `allowed_targets`.
"""

from __future__ import annotations

from pathlib import Path

from ganlab.errors import ConfigError


def with_run_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """`resume=true hydra.run.dir=DIR` continues that run: its saved overrides are applied first,
    so `model=sngan` and friends need not be typed again; overrides given now still win.
    They go just before the first typed override, after flags such as `--cfg job`.

    Returns (all overrides, the replayed ones). What is read back is shared input: the vetting
    lets replayed overrides neither configure Hydra nor widen allowed_targets. They come from the
    run's newest intact checkpoint (which holds them), else from its `.hydra/overrides.yaml`."""
    given = {_key(o): o.split("=", 1)[1] for o in overrides if "=" in o and not o.startswith("-")}
    if given.get("resume", "").lower() != "true" or "hydra.run.dir" not in given:
        return overrides, []
    run_dir = Path(given["hydra.run.dir"]).expanduser()
    if not run_dir.is_dir():
        raise ConfigError(f"resume=true but hydra.run.dir={run_dir} does not exist; point it at the folder of the run "
                          "to continue (outputs/<date>/<time>).")
    previous = saved_overrides(run_dir)
    skip = set(given) | {"resume", "hydra.run.dir"}
    previous = [o for o in previous if _key(o) not in skip]
    first = next(i for i, o in enumerate(overrides) if "=" in o and not o.startswith("-"))
    return overrides[:first] + previous + overrides[first:], previous


def saved_overrides(run_dir: Path) -> list[str]:
    """The overrides a run was started with: from its newest intact checkpoint, else `.hydra/`."""
    from ganlab import run as runs

    stored = runs.stored_overrides(run_dir)
    return stored if stored is not None else hydra_overrides(run_dir)


def hydra_overrides(run_dir: Path) -> list[str]:
    """The overrides in a run's `.hydra/overrides.yaml` ([] when it has none), read as plain data."""
    import yaml

    saved = Path(run_dir) / ".hydra" / "overrides.yaml"
    try:
        previous = yaml.safe_load(saved.read_text(encoding="utf-8")) if saved.is_file() else []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{saved} could not be read ({str(exc).splitlines()[0]}); retype the run's overrides, or "
                          "remove that file.") from None
    if not isinstance(previous, list) or not all(isinstance(o, str) for o in previous):
        raise ConfigError(f"{saved} is not a list of overrides; retype the run's overrides, or remove that file.")
    return previous


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")
