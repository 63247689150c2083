"""Checkpoints: one plain dict with everything an exact resume needs, written atomically, verified on read.

* Writing goes to a temporary file in the same folder, is flushed to disk and renamed into place,
  so a crash leaves either the old checkpoint or the new one; a full disk is a `RunFault` naming
  the path, with the earlier checkpoint intact. Files follow the umask, like any other output.
* Every checkpoint carries a SHA-256 of its content (`checksum`), checked when it is read: flipped
  bytes are refused instead of training on with corrupted weights.
* Reading uses `torch.load(weights_only=True)`, so opening a checkpoint never runs code from it:
  the dict holds only tensors, numbers, strings and containers of them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import torch

from ganlab.records.cache import load_tensors
from ganlab.errors import ConfigError
from ganlab.records.safe_files import disk_full, is_disk_full, refuse_link_folder, remove_stale_partials, write_atomic

FORMAT_VERSION = 3  # 3: each stateful part under its own key in `parts`; 2 kept their keys at the top level
READABLE_VERSIONS = (2, 3)
LAST, BEST = "last.pt", "best.pt"
_PERIODIC = re.compile(r"^step_(\d+)\.pt$")
log = logging.getLogger("ganlab")


class CorruptCheckpoint(ConfigError):
    """A checkpoint that exists but cannot be trusted (unreadable, foreign, or its checksum differs)."""


def checksum(state: Any) -> str:
    """SHA-256 over the whole state (keys, numbers, strings and every tensor's bytes), in key order."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != "checksum"})
    return digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(value, dict):
        digest.update(b"{")
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(repr(value).encode())


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write `state` plus its checksum to a temporary file, flush it to disk, then rename over `path`."""
    state = {**state, "checksum": checksum(state)}
    try:
        write_atomic(path, lambda handle: torch.save(state, handle), sync=True)
    except BaseException as exc:
        if is_disk_full(exc):
            raise disk_full(path, trained=True) from None
        raise


def load(path: Path | str, key: str = "resume") -> dict[str, Any]:
    """Load and verify a checkpoint; a missing, foreign, old or corrupt file is a ConfigError naming
    `key` (the setting that pointed at it) and the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}: checkpoint {path} does not exist. " + (
            "Pass resume=true with hydra.run.dir set to an earlier run's folder, or resume=PATH to a "
            "checkpoints/*.pt file." if key == "resume" else f"Set {key} to an existing checkpoints/*.pt file."))
    try:
        state = load_tensors(path)
    except Exception as exc:  # torch raises several types for truncated or non-checkpoint files
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""  # not torch's advice
        raise CorruptCheckpoint(f"{key}: {path} could not be read as a ganlab checkpoint ({type(exc).__name__}: "
                                f"{first}). Use another checkpoint, e.g. an earlier checkpoints/step_*.pt.") from None
    version = state.get("format_version") if isinstance(state, dict) else None
    if version not in READABLE_VERSIONS:
        raise CorruptCheckpoint(f"{key}: {path} has checkpoint format {version!r}; this ganlab reads formats "
                                f"{READABLE_VERSIONS} (format 1 checkpoints lack the data facts and the checksum). "
                                "Use it with the ganlab version that wrote it, or train a new run.")
    if state.get("checksum") != checksum(state):
        raise CorruptCheckpoint(f"{key}: {path} is corrupt: its content does not match its checksum (bytes were "
                                "changed on disk). Use an earlier checkpoints/step_*.pt.")
    problem = layout_problem(state)
    if problem:
        raise CorruptCheckpoint(f"{key}: {path} is not a ganlab checkpoint of this format: {problem}. It was changed "
                                "or written by something else; use an earlier checkpoints/step_*.pt.")
    return state


# The keys every reader relies on, and what each must be (a re-signed file can hold anything).
_LAYOUT = {"config": dict, "facts": dict, "networks": dict, "ema": dict, "fixed": dict, "step": int,
           "value_range": str}
_OPTIONAL = {"overrides": list, "run_id": (str, type(None)), "choices": dict, "optimizer_types": dict,
             "images": (int, type(None)), "steps_per_epoch": (int, float, type(None)), "optimizers": dict,
             "batches": dict, "rng": dict, "objective": (dict, type(None)), "best": (dict, type(None)), "parts": dict}


class Saved:
    """What a checkpoint says about its run, read through names instead of its layout (resume,
    replay, stored settings, sweeps and reports ask here): config, step, identity, images, data root,
    the command line and config groups it was started with, best.pt's record."""

    def __init__(self, state: dict[str, Any]):
        self.state = state

    @property
    def config(self) -> dict[str, Any]:
        return self.state.get("config") or {}

    @property
    def step(self) -> int:
        return int(self.state.get("step") or 0)

    @property
    def run_id(self) -> str | None:
        return self.state.get("run_id")

    @property
    def images(self) -> int | None:
        return self.state.get("images")

    @property
    def networks(self) -> dict[str, dict[str, Any]]:
        """Each network's weights (state dict) by name."""
        return self.state.get("networks") or {}

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def data_root(self) -> Any:
        return (self.config.get("dataset") or {}).get("root")

    @property
    def overrides(self) -> list[str] | None:
        stored = self.state.get("overrides")
        return [str(o) for o in stored] if isinstance(stored, list) else None

    @property
    def choices(self) -> dict[str, str]:
        return dict(self.state.get("choices") or {})

    @property
    def steps_per_epoch(self) -> float | None:
        return self.state.get("steps_per_epoch")

    @property
    def best(self) -> dict[str, Any] | None:
        """best.pt's record: {metric, value, step, score} (format 3 keeps it with the maintenance)."""
        own = (self.state.get("parts") or {}).get("maintenance") or self.state
        best = own.get("best") if isinstance(own, dict) else None
        return best if isinstance(best, dict) else None


def layout_problem(state: dict[str, Any]) -> str | None:
    """What in `state` breaks the checkpoint layout (None: it fits): a missing key, a value of the
    wrong type, a network that is not a mapping of tensors."""
    for name, kind in _LAYOUT.items():
        if name not in state:
            return f"it has no `{name}`"
        if not isinstance(state[name], kind) or isinstance(state[name], bool):
            return f"its `{name}` is a {type(state[name]).__name__}, not a {kind.__name__}"
    for name, kind in _OPTIONAL.items():
        if name in state and not isinstance(state[name], kind):
            return f"its `{name}` is a {type(state[name]).__name__}"
    if state["step"] < 0:
        return f"its step is {state['step']}"
    for part in ("networks", "ema"):
        for net, tensors in state[part].items():
            if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
                return f"its `{part}.{net}` is not a mapping of tensors"
    if not all(isinstance(t, torch.Tensor) for t in state["fixed"].values()):
        return "its `fixed` inputs are not tensors"
    if "overrides" in state and not all(isinstance(o, str) for o in state["overrides"]):
        return "its `overrides` are not strings"
    where = interpolation_in(state["config"])
    if where:  # a stored config is resolved: a ${...} would be evaluated (an environment variable, a resolver)
        return f"its config holds an interpolation at {where}, which is never resolved"
    return None


def interpolation_in(node: Any, path: str = "config") -> str | None:
    """The key of the first `${...}` in a stored config (plain containers), or None."""
    if isinstance(node, dict):
        return next((found for key, value in node.items() if (found := interpolation_in(value, f"{path}.{key}"))), None)
    if isinstance(node, list):
        return next((found for i, value in enumerate(node) if (found := interpolation_in(value, f"{path}[{i}]"))), None)
    return path if isinstance(node, str) and "${" in node else None


def periodic(folder: Path) -> list[Path]:
    """The `step_XXXXXX.pt` files of a run, oldest first."""
    found = [p for p in folder.glob("step_*.pt") if _PERIODIC.match(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(_PERIODIC.match(p.name).group(1)))


def holds_run(run_dir: Path | str) -> bool:
    """Whether `run_dir` holds a run: a checkpoint. (A start that left logs but no checkpoint, one
    stopped by a fault say, is not a run: starting again there begins with a clean log.)"""
    folder = Path(run_dir) / "checkpoints"
    return bool(periodic(folder)) or (folder / LAST).exists()


def load_latest(folder: Path, key: str = "resume", run_id: str | None = None) -> tuple[dict[str, Any], Path] | None:
    """The newest intact checkpoint of a run: `last.pt`, else the newest verified `step_*.pt`
    (each refused one is named in the log). A snapshot whose stored step is not the one its name
    says (renamed or copied in) is refused too: snapshots are chosen by what they hold. None when
    the run has no checkpoint at all."""
    candidates = [folder / LAST, *reversed(periodic(folder))]
    existing = [p for p in candidates if p.is_file()]
    refused = []
    for path in existing:
        try:
            state = load(path, key)
            named = _PERIODIC.match(path.name)
            if named and int(named.group(1)) != int(state.get("step", -1)):
                raise CorruptCheckpoint(f"{key}: {path} holds step {state.get('step')}, not the step its name says "
                                        "(it was renamed or copied in); it is not used.")
            if run_id is not None and state.get("run_id") not in (None, run_id):
                raise CorruptCheckpoint(f"{key}: {path} belongs to another run (run id {state.get('run_id')}, this "
                                        f"folder's is {run_id}): it was copied in; it is not used. To start from it "
                                        f"deliberately, pass resume={path} (a warm start into a new folder).")
        except CorruptCheckpoint as exc:
            refused.append(str(exc))
            log.warning("%s", exc)
            continue
        if refused:
            log.warning("%s: falling back to %s (step %d), the newest intact checkpoint", key, path, state["step"])
        return state, path
    if refused:
        advice = " Start a new run, or point resume=PATH at a copy you trust." if key == "resume" else ""
        raise ConfigError(f"{key}: no intact checkpoint in {folder}; every one was refused ({refused[0]}).{advice}")
    return None


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries a process killed mid-write left in `folder`: the guarded writer's
    `.NAME.<pid>.<token>.partial*` of processes no longer running, and older versions' `.NAME.*.tmp`
    (the run directory is locked, so no other process is writing them)."""
    stale = [p for p in folder.glob(".*.tmp") if p.is_file() or p.is_symlink()] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale + remove_stale_partials(folder)


def save_periodic(state: dict[str, Any], folder: Path, step: int, keep_last: int) -> Path:
    """Save `step_XXXXXX.pt` and delete the oldest periodic checkpoints beyond `keep_last`."""
    path = folder / f"step_{step:06d}.pt"
    save_atomic(state, path)
    # Only snapshots of earlier steps are pruned: one named for a later step was not written by
    # this run's progress (renamed or copied in) and is left alone, never counted as newer.
    earlier = [p for p in periodic(folder) if int(_PERIODIC.match(p.name).group(1)) <= step]
    for old in earlier[:-keep_last] if keep_last > 0 else []:
        old.unlink(missing_ok=True)
    return path


def first_non_finite(state: dict[str, Any], parts: tuple[str, ...] = ("networks", "ema")) -> str | None:
    """The first network tensor (weights or BatchNorm statistics) that is NaN or infinite, as 'part.net.name'."""
    for part in parts:
        for net, tensors in (state.get(part) or {}).items():
            for name, tensor in tensors.items():
                if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    return f"{part}.{net}.{name}"
    return None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def network_weights(run: str | Path | None, key: str) -> dict[str, dict[str, Any]] | None:
    """Each network's weights (state dict) by name, from `run` (a checkpoint, or a run folder: its
    last.pt; None when the setting `key` is unset)."""
    return Saved(read_run(str(run), "last", key)[1]).networks if run else None


def read_run(run: str | Path, which: str = "last", key: str = "run") -> tuple[Path, dict[str, Any]]:
    """The checkpoint `which` of `run` (a run directory or a checkpoint file) and its verified state."""
    path = checkpoint_path(run, which, key)
    return path, load(path, key)


def checkpoint_path(run: str | Path, which: str = "last", key: str = "run") -> Path:
    """`which`: last, best, step_N (or step_000N), or a path; `run` a run directory or a checkpoint."""
    run = Path(run).expanduser()
    if run.is_file():
        return run
    refuse_link_folder(run, key)  # its generated/ and report/ would land in the link's target
    if not run.is_dir():
        raise ConfigError(f"{key}={run} is neither a run directory nor a checkpoint file; point it at a folder "
                          "under outputs/ (the one holding checkpoints/).")
    folder = run / "checkpoints"
    if not folder.is_dir():
        raise ConfigError(_not_a_run(run, key))
    if which in ("last", "best"):
        path = folder / f"{which}.pt"
    elif re.fullmatch(r"step_\d+", which):
        path = folder / f"step_{int(which[5:]):06d}.pt"
    else:
        path = Path(which).expanduser()
    if not path.is_file():
        present = sorted(p.stem for p in folder.glob("*.pt"))
        if not present:
            raise ConfigError(f"{key}={run} has no checkpoint yet: it stopped before its first one "
                              "(schedule.ckpt_every). Continue it with ganlab train resume=true "
                              f"hydra.run.dir={run}, or pick a run that has checkpoints/last.pt.")
        hint = ("best.pt is kept when metrics run during training (schedule.eval_every with metrics)"
                if which == "best" else f"this run has: {', '.join(present)}")
        raise ConfigError(f"checkpoint={which}: {path} does not exist; {hint}.")
    return path


def _not_a_run(folder: Path, key: str) -> str:
    """Why `folder` is not a run: a sweep's folder (naming its jobs), a run that never started, or neither."""
    jobs = sorted(p.parent.name for p in folder.glob("*/checkpoints"))
    if jobs:
        shown = ", ".join(jobs[:6]) + (f" and {len(jobs) - 6} more" if len(jobs) > 6 else "")
        return (f"{key}={folder} is a sweep's folder, not one run; pass one of its runs: {shown} "
                f"(e.g. {key}={folder / jobs[0]}).")
    if (folder / "metrics.jsonl").is_file() or (folder / ".hydra").is_dir():
        return (f"{key}={folder} is a run that has no checkpoint yet (it stopped before its first one, "
                "schedule.ckpt_every); continue it with resume=true, or pick another run.")
    return (f"{key}={folder} is not a run folder (it has no checkpoints/); point it at a folder under outputs/ "
            "that holds checkpoints/, or at a checkpoint file.")
