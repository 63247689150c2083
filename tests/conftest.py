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

# Small enough for a CPU test: tiny batches, few steps, narrow networks.
SHRINK = [
    "device=cpu",
    "progress=false",
    "dataset.batch_size=16",
    "schedule.steps=8",
    "schedule.log_every=2",
    "schedule.sample_every=4",
    "schedule.ckpt_every=4",
    "schedule.snapshot_every=0",
    "schedule.sample_count=16",
]
TINY_DCGAN = ["model.generator.width=8", "model.generator.latent_dim=16", "model.discriminator.width=8"]
TINY_BACKBONES = ["+model.generator.backbone.width=8", "model.generator.latent_dim=16",
                  "+model.discriminator.backbone.width=8"]
TINY_MODELS = {
    "dcgan": TINY_DCGAN,
    "sngan": TINY_DCGAN,
    "mlp": ["model.generator.hidden=[32]", "model.generator.latent_dim=8", "model.discriminator.hidden=[32]"],
    "wgan_conv": ["model.generator.width=8", "model.generator.latent_dim=8", "model.discriminator.width=8"],
    "resnet": ["model.generator.width=8", "model.generator.latent_dim=16", "model.discriminator.width=8"],
    "convstack": [],  # its default layers are the Fashion-MNIST report's; already small
    "cgan": TINY_BACKBONES,
    "acgan": TINY_BACKBONES,
}
# Resolution per model when the data is images: what each builds cheaply.
TINY_RESOLUTION = {"convstack": 28}


def _choice(overrides, group: str, default: str) -> str:
    picked = [o.split("=", 1)[1] for o in overrides if o.startswith(f"{group}=")]
    return picked[-1] if picked else default


def shrink_overrides(overrides) -> list[str]:
    """SHRINK plus the tiny sizes of the chosen model and dataset (given overrides still win)."""
    if any(o.startswith("experiment=") for o in overrides):
        return list(SHRINK)
    model, dataset = _choice(overrides, "model", "dcgan"), _choice(overrides, "dataset", "digits")
    data = [] if dataset in ("ring", "grid") else [f"dataset.resolution={TINY_RESOLUTION.get(model, 16)}"]
    return [*SHRINK, *data, *TINY_MODELS.get(model, [])]


def compose_config(overrides: list[str] = (), shrink: bool = True):
    """The real composed config (as `ganlab train` builds it), shrunk unless asked not to."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config", overrides=[*(shrink_overrides(overrides) if shrink else []), *overrides])


@pytest.fixture
def make_cfg():
    return compose_config


def run_cli(*args: str, cwd: Path, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `ganlab` as a user would, in a fresh Python process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ganlab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def cli_in_process(*args: str, cwd: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    """Run `ganlab.cli.main` in this process (the real Hydra path, without a new interpreter's
    start-up cost): (exit code, stdout, stderr)."""
    import signal

    from ganlab import cli

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["ganlab", *args])
    monkeypatch.setattr(cli, "FAILED_JOBS", [])
    import logging

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    GlobalHydra.instance().clear()
    code = 0
    try:
        cli.main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        root.handlers[:] = root_handlers  # Hydra's handlers write to this test's captured streams
        root.setLevel(root_level)
        GlobalHydra.instance().clear()
    out, err = capsys.readouterr()
    return code, out, err


CLI_TINY = ["device=cpu", "progress=false", "dataset.resolution=16", "dataset.batch_size=16",
            "model.generator.width=8", "model.discriminator.width=8"]
