"""The `ganlab` command: picks the verb and hands the rest to Hydra."""

from __future__ import annotations

import sys
from pathlib import Path

from ganlab.paths import config_dir, config_groups

USAGE = """usage: ganlab <command> [overrides...]

Commands:
  train          compose configs/ with the overrides and train (Hydra: -m sweeps, --cfg job, --help)

Config groups (pick one with group=option):
{groups}

Examples:
  ganlab train                                   DCGAN on the bundled scikit-learn digits
  ganlab train model=dcgan dataset=mnist dataset.root=~/data
  ganlab train -m loss=bce,hinge optimizer.lr=1e-4,2e-4
  ganlab train resume=true hydra.run.dir=outputs/2026-01-01/12-00-00
  ganlab train --help                            the train command's options and full config
"""

EXIT_CONFIG, EXIT_DIVERGED = 2, 3
FAILED_JOBS: list[str] = []  # sweep jobs that stopped on bad input or divergence


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        groups = "\n".join(f"  {group:<14} {', '.join(options) or '(none yet)'}"
                           for group, options in config_groups().items())
        print(USAGE.format(groups=groups))
        return
    verb, rest = args[0], args[1:]
    if verb != "train":
        print(f"ganlab: unknown command {verb!r}; the commands are: train. See `ganlab --help`.", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    _hydra_train(rest)


def _hydra_train(overrides: list[str]) -> None:
    import hydra

    sys.argv = ["ganlab train", *with_run_overrides(overrides)]  # Hydra reads its arguments from sys.argv
    hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(_train_job)()
    if FAILED_JOBS:  # a sweep goes on past a failed job, then says which failed
        print(f"ganlab: {len(FAILED_JOBS)} sweep job(s) failed:\n" + "\n".join(f"  {j}" for j in FAILED_JOBS),
              file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def with_run_overrides(overrides: list[str]) -> list[str]:
    """`resume=true hydra.run.dir=DIR` continues that run: its saved overrides are applied first,
    so `model=sngan` and friends need not be typed again; overrides given now still win."""
    given = {_key(o): o.split("=", 1)[1] for o in overrides if "=" in o and not o.startswith("-")}
    if given.get("resume", "").lower() != "true" or "hydra.run.dir" not in given:
        return overrides
    saved = Path(given["hydra.run.dir"]).expanduser() / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        return overrides
    import yaml

    previous = yaml.safe_load(saved.read_text(encoding="utf-8")) or []
    skip = set(given) | {"resume", "hydra.run.dir"}
    return [o for o in previous if _key(o) not in skip] + overrides


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _train_job(cfg) -> None:
    """One Hydra job: train into Hydra's output dir, turning known failures into short messages."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ganlab.errors import ConfigError, TrainingDiverged
    from ganlab.loop import Interrupted
    from ganlab.train import train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        train(cfg, run_dir)
    except (ConfigError, TrainingDiverged) as exc:
        diverged = isinstance(exc, TrainingDiverged)
        print(f"ganlab: {'training diverged' if diverged else 'error'}: {exc}", file=sys.stderr)
        if sweeping:
            FAILED_JOBS.append(f"{run_dir}: {str(exc).split('. ')[0]}")
            return
        sys.exit(EXIT_DIVERGED if diverged else EXIT_CONFIG)
    except Interrupted as exc:
        print(f"ganlab: stopped at step {exc.step}; saved {run_dir / 'checkpoints' / 'last.pt'}. Continue with:\n"
              f"  ganlab train resume=true hydra.run.dir={run_dir}  (plus the overrides you used)", file=sys.stderr)
        sys.exit(128 + exc.signum)
    print(f"ganlab: run finished: {run_dir}")
