"""Shared fixtures: compose the real config tree and shrink it to CPU-sized runs in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from ganlab.trust.paths import config_dir, config_groups

# Small enough for a CPU test: tiny batches, few steps (configs/debug/tiny.yaml), narrow networks.
SHRINK = ["debug=tiny"]
# Network sizes for CPU tests, applied to every model of configs/model (a new model is shrunk
# too): each network constructor that takes one of these gets it, unless the test typed it.
TINY_SIZES = {"width": 8, "latent_dim": 16, "hidden": [32]}
BACKBONE_SIZES = {"width": 8}  # a wrapper (cgan, acgan) passes its own latent size to its backbone
# Resolution per model when the data is images: what each builds cheaply.
TINY_RESOLUTION = {"convstack": 28}


def _choice(overrides, group: str, default: str) -> str:
    picked = [o.split("=", 1)[1] for o in overrides if o.startswith(f"{group}=")]
    return picked[-1] if picked else default


def shrink_overrides(overrides) -> list[str]:
    """SHRINK plus a resolution the chosen model builds cheaply (given overrides still win)."""
    if any(o.startswith("experiment=") for o in overrides):
        return list(SHRINK)
    model, dataset = _choice(overrides, "model", "dcgan"), _choice(overrides, "dataset", "digits")
    data = [] if dataset in ("ring", "grid") else [f"dataset.resolution={TINY_RESOLUTION.get(model, 16)}"]
    return [*SHRINK, *data]


def shrink_networks(cfg, overrides) -> None:
    """Set TINY_SIZES on every network node of cfg.model whose constructor takes them."""
    import inspect

    from hydra._internal.utils import _locate
    from omegaconf import DictConfig, open_dict

    typed = {o.split("=", 1)[0].lstrip("+~") for o in overrides}

    def shrink(node, path, sizes):
        try:
            params = inspect.signature(_locate(node._target_)).parameters
        except (ValueError, TypeError, ImportError):  # not a ganlab network (a test's own target)
            return
        for key, value in sizes.items():
            if key in params and f"{path}.{key}" not in typed:
                node[key] = value
        for key, child in node.items():
            if isinstance(child, DictConfig) and "_target_" in child:
                shrink(child, f"{path}.{key}", BACKBONE_SIZES)

    with open_dict(cfg):
        for name, node in cfg.model.items():
            if name != "objective" and isinstance(node, DictConfig) and "_target_" in node:
                shrink(node, f"model.{name}", TINY_SIZES)


def compose_config(overrides: list[str] = (), shrink: bool = True):
    """The real composed config (as `ganlab train` builds it), shrunk unless asked not to. Each
    distinct composition is made once per test session (Hydra's composition is most of a small
    test's time); every caller gets its own copy."""
    import copy

    key = (tuple(overrides), shrink)
    if key not in _COMPOSED:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose("config", overrides=[*(shrink_overrides(overrides) if shrink else []), *overrides])
        if shrink and not any(o.startswith("experiment=") for o in overrides):
            shrink_networks(cfg, overrides)
        _COMPOSED[key] = cfg
    return copy.deepcopy(_COMPOSED[key])


_COMPOSED: dict = {}


def gan_models() -> list[str]:
    """The model group's GANs (their objective trains against a loss), read from configs/model."""
    from hydra._internal.utils import _locate

    return [m for m in config_groups()["model"]
            if _locate(compose_config([f"model={m}"], shrink=False).model.objective._target_).needs_adversarial_loss]


def adversarial_losses() -> list[str]:
    return [loss for loss in config_groups()["loss"] if loss != "none"]


@pytest.fixture
def make_cfg():
    return compose_config


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `ganlab` as a user would: the real CLI and Hydra path, in this process (no interpreter
    start-up per test; tests that signal a run start their own process)."""
    import contextlib
    import io
    import logging
    import signal

    from ganlab.commands import cli

    out, err, code = io.StringIO(), io.StringIO(), 0
    saved_cwd, saved_env, saved_argv = os.getcwd(), dict(os.environ), sys.argv
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    GlobalHydra.instance().clear()
    try:
        os.chdir(cwd)
        os.environ.update(env or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        root.handlers[:] = root_handlers  # Hydra's handlers write to the streams captured here
        root.setLevel(root_level)
        GlobalHydra.instance().clear()
    return subprocess.CompletedProcess(["ganlab", *args], code, out.getvalue(), err.getvalue())


def cli_in_process(*args: str, cwd: Path, monkeypatch=None, capsys=None) -> tuple[int, str, str]:
    """`run_cli` in this process, as (exit code, stdout, stderr)."""
    result = run_cli(*args, cwd=cwd)
    return result.returncode, result.stdout, result.stderr


CLI_TINY = ["device=cpu", "progress=false", "dataset.resolution=16", "dataset.batch_size=16",
            "model.generator.width=8", "model.discriminator.width=8"]


def sweep_table(text: str) -> list[dict[str, str]]:
    """The rows of the table a sweep ends with, by its header."""
    lines = [line.split() for line in text.splitlines()[1:] if line.startswith("  ") and "compare:" not in line]
    return [dict(zip(lines[0], row)) for row in lines[1:]]
