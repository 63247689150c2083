"""Shared fixtures: compose the real config tree and shrink it to CPU-sized runs in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from ganlab.paths import config_dir

# A DCGAN small enough for a CPU test: 16 px digits, narrow networks, tiny batches, few steps.
SHRINK = [
    "device=cpu",
    "progress=false",
    "dataset.resolution=16",
    "dataset.batch_size=16",
    "model.generator.width=8",
    "model.generator.latent_dim=16",
    "model.discriminator.width=8",
    "schedule.steps=8",
    "schedule.log_every=2",
    "schedule.sample_every=4",
    "schedule.ckpt_every=4",
    "schedule.snapshot_every=0",
    "schedule.sample_count=16",
]


def compose_config(overrides: list[str] = (), shrink: bool = True):
    """The real composed config (as `ganlab train` builds it), shrunk unless asked not to."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config", overrides=[*(SHRINK if shrink else []), *overrides])


@pytest.fixture
def make_cfg():
    return compose_config


def run_cli(*args: str, cwd: Path, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `ganlab` as a user would, in a fresh Python process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ganlab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
