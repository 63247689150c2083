"""`ganlab sample run=DIR`: draw images from a trained run, without its data set.

    grid   one PNG (conditional runs: one labelled row per class; flip=ATTR: off/on rows with the
           same z; interpolate=K: K-step latent walks); VAEs add a reconstructions grid, the 2-d
           toys give a scatter plot and their points
    png    a folder of N PNG files (what external FID tools read)
    npz    `images` as uint8 (N, H, W, C) and `labels` when the model is conditional
N = 50,000 works in bounded memory: batches go straight to files (npz through a memory-mapped array).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ganlab import run as runs
from ganlab.build import allowed_prefixes
from ganlab.errors import ConfigError
from ganlab.options import CHECKPOINT, DRAWING, Option, read
from ganlab.plots import labelled_grid, scatter_image, to_uint8, to_unit
from ganlab.rundir import atomic_output, remove_stale_partials
from ganlab.runtime import pick_device

log = logging.getLogger("ganlab")
GRID_LIMIT = 4096
OPTIONS = [
    Option("run", None, "the run directory (or a checkpoint file) to sample from"),
    CHECKPOINT,
    Option("n", 64, "how many samples", int),
    Option("out", None, "where to write (default: RUN/generated/<checkpoint>_<what>_<count>, never overwritten)"),
    Option("format", "grid", "grid (one PNG), png (a folder of N PNGs) or npz (uint8 arrays)", str,
           ("grid", "png", "npz")),
    *DRAWING,
    Option("labels", None, "conditional runs: the classes to draw, e.g. labels=[3,5] (default: every class)", list),
    Option("flip", None, "attribute runs: the attribute to switch off and on with the same z, e.g. flip=Male"),
    Option("interpolate", 0, "K > 0: rows of K-step latent walks between random pairs (grid)", int),
    Option("batch_size", 256, "samples generated at once", int),
]
SUMMARY = "Draw samples from a trained run (EMA weights when it has them). Needs no data set."
EXAMPLES = ["ganlab sample run=outputs/2026-11-25/10-00-00", "ganlab sample run=DIR n=50000 format=png",
            "ganlab sample run=DIR checkpoint=best format=npz n=10000", "ganlab sample run=DIR labels=[3,5]",
            "ganlab sample run=DIR flip=Male n=16", "ganlab sample run=DIR interpolate=8 n=64"]


def main(args: list[str]) -> None:
    values = read("sample", args, OPTIONS, SUMMARY, EXAMPLES)
    if values is None:
        return
    for path in sample(**values):
        print(f"ganlab: wrote {path}")


@dataclass
class Plan:
    """What to draw: latent codes, their labels, and how a grid shows them."""

    latent: torch.Tensor
    labels: torch.Tensor | None
    columns: int
    row_labels: list[str]


def sample(run: str, checkpoint: str = "last", n: int = 64, out: str | None = None, format: str = "grid",
           ema: str | bool = "auto", seed: int = 0, device: str = "auto", labels: list | None = None,
           flip: str | None = None, interpolate: int = 0, batch_size: int = 256,
           allowed_targets: list | None = None) -> list[Path]:
    """Write samples of `run` as `format`; returns the files (or folder) written."""
    for key, value in (("n", n), ("batch_size", batch_size)):
        if value <= 0:
            raise ConfigError(f"{key}={value} must be positive, e.g. {key}=64.")
    if interpolate and interpolate < 2:
        raise ConfigError(f"interpolate={interpolate}: a latent walk needs at least 2 steps (interpolate=8 draws "
                          "walks of 8); interpolate=0 turns it off.")
    if labels is not None:
        labels = _class_list(labels)
    if format == "grid" and n > GRID_LIMIT:
        raise ConfigError(f"n={n} is too many for one grid (at most {GRID_LIMIT}); use format=png or format=npz.")
    if (flip or interpolate) and format != "grid":
        raise ConfigError("flip= and interpolate= draw a grid; use format=grid with them.")
    opened = runs.open(run, checkpoint, pick_device(device), allowed_prefixes(allowed_targets or []))
    if opened.objective.sampler is None:
        raise ConfigError(f"run={run} trained a {type(opened.objective).__name__}, which does not generate "
                          "images; sample from a GAN or VAE run.")
    points = len(opened.facts.shape) == 1  # the 2-d toys
    if points and format != "grid":
        raise ConfigError(f"format={format}: this run draws 2-d points; use format=grid (a scatter plot and the "
                          "points as .npz).")
    plan = _plan(opened, n, labels, flip, interpolate, torch.Generator().manual_seed(seed), grid=format == "grid")
    target = Path(out) if out else _default_out(opened, checkpoint, format, len(plan.latent), labels, flip,
                                                interpolate)
    wanted = {"grid": (".png",), "npz": (".npz",), "png": ("",)}[format]
    if target.suffix.lower() not in wanted:
        raise ConfigError(f"out={out}: format={format} writes {'a folder' if format == 'png' else 'a ' + wanted[0] + ' file'}"
                          f"; name it so, e.g. out={target.with_suffix(wanted[0])}.")
    if out and target.exists():
        raise ConfigError(f"out={target} already exists; ganlab does not overwrite earlier samples. Remove it, or pass "
                          "another out=.")
    remove_stale_partials(target.parent)
    networks = opened.sampling_networks(ema)
    if format == "grid":
        return _write_grid(opened, networks, plan, target, batch_size)
    return [_write_files(opened, networks, plan, target, format, batch_size)]


def _class_list(labels) -> list[int]:
    if not isinstance(labels, list) or not labels:
        raise ConfigError(f"labels={labels} must name at least one class, e.g. labels=[3,5].")
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in labels):
        raise ConfigError(f"labels={labels} must be class numbers, e.g. labels=[3,5] (the run's classes are numbered "
                          "from 0; `ganlab sample run=DIR` shows them as row labels).")
    return labels


# --- what to draw -------------------------------------------------------------------------------
def _plan(opened: runs.Run, n: int, labels, flip, interpolate: int, rng: torch.Generator, grid: bool = True) -> Plan:
    """Grids share one z per column across class rows; files get independent codes."""
    objective, facts = opened.objective, opened.facts
    if (labels is not None or flip) and not objective.conditional:
        raise ConfigError("labels= and flip= are for conditional runs (model=cgan or acgan); this run is not one.")
    if flip:
        return _flip_plan(opened, n, flip, rng)
    if interpolate:
        pairs = max(1, n // interpolate)
        start, end = objective.latent(pairs, rng), objective.latent(pairs, rng)
        weights = torch.linspace(0, 1, interpolate).view(1, interpolate, *[1] * (start.ndim - 1))
        walks = torch.lerp(start[:, None], end[:, None], weights).flatten(0, 1)
        rows = _class_labels(opened, pairs, labels, rng) if objective.conditional else None
        return Plan(walks, rows.repeat_interleave(interpolate) if rows is not None else None, interpolate,
                    [f"walk {i + 1}" for i in range(pairs)])
    if objective.conditional and facts.num_classes:
        classes = [int(c) for c in (labels if labels is not None else range(facts.num_classes))]
        bad = [c for c in classes if not 0 <= c < facts.num_classes]
        if bad:
            raise ConfigError(f"labels={labels}: {bad} not among this run's {facts.num_classes} classes (0 to "
                              f"{facts.num_classes - 1}).")
        per_class = max(1, math.ceil(n / len(classes)))
        count = per_class * len(classes) if grid else n
        z = objective.latent(per_class, rng) if grid else objective.latent(n, rng)
        z = z.repeat(len(classes), *[1] * (z.ndim - 1))[:count] if grid else z  # grid: one z per column
        names = [facts.class_names[c] if c < len(facts.class_names) else str(c) for c in classes]
        return Plan(z, torch.tensor(classes).repeat_interleave(per_class)[:count], per_class,
                    [f"{c}: {name}" if name != str(c) else name for c, name in zip(classes, names)])
    z = objective.latent(n, rng)
    rows = opened.fixed["labels"].cpu().repeat(math.ceil(n / len(opened.fixed["labels"])), 1)[:n] \
        if objective.conditional else None  # attribute runs: the attribute rows the run showed
    return Plan(z, rows, 8, [])


def _flip_plan(opened: runs.Run, n: int, flip: str, rng: torch.Generator) -> Plan:
    names = list(opened.facts.attribute_names)
    if not names:
        raise ConfigError(f"flip={flip} switches an attribute off and on, but this run is class-conditional (it has "
                          f"{opened.facts.num_classes} classes, no attributes); draw classes with labels=[...].")
    if flip not in names:
        raise ConfigError(f"flip={flip}: this run's attributes are {names or '(none: it is class-conditional)'}; "
                          "pick one of them.")
    columns = max(1, n // 2)
    base = opened.fixed["labels"].cpu().float()
    base = base.repeat(math.ceil(columns / len(base)), 1)[:columns]
    off, on = base.clone(), base.clone()
    off[:, names.index(flip)], on[:, names.index(flip)] = 0.0, 1.0
    z = opened.objective.latent(columns, rng)
    return Plan(torch.cat([z, z]), torch.cat([off, on]), columns, [f"{flip} off", f"{flip} on"])


def _class_labels(opened: runs.Run, count: int, labels, rng: torch.Generator) -> torch.Tensor:
    pool = torch.tensor([int(c) for c in labels]) if labels is not None else torch.arange(opened.facts.num_classes)
    return pool[torch.randint(len(pool), (count,), generator=rng)]


# --- drawing and writing --------------------------------------------------------------------------
@torch.no_grad()
def _draw(opened: runs.Run, networks, plan: Plan, start: int, stop: int) -> torch.Tensor:
    device = next(networks[opened.objective.sampler].parameters()).device
    labels = plan.labels[start:stop].to(device) if plan.labels is not None else None
    return opened.objective.decode(networks, plan.latent[start:stop].to(device), labels).float().cpu()


def generate(opened: runs.Run, networks, n: int, rng: torch.Generator, batch_size: int = 500):
    """`n` fresh samples as uint8 images (N, C, H, W), or float points for the 2-d toys, with the labels
    a conditional model was asked for (classes in equal shares)."""
    plan = _plan(opened, n, None, None, 0, rng, grid=False)
    batches = [_draw(opened, networks, plan, start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    samples = torch.cat(batches)
    if samples.ndim > 2:
        samples = to_uint8(samples, opened.value_range)
    return samples, plan.labels


def _write_grid(opened: runs.Run, networks, plan: Plan, target: Path, batch_size: int) -> list[Path]:
    count = len(plan.latent)
    samples = torch.cat([_draw(opened, networks, plan, i, min(i + batch_size, count))
                         for i in range(0, count, batch_size)])
    if samples.ndim == 2:  # 2-d toys: a scatter plot, and the points themselves
        from torchvision.utils import save_image

        points = target.with_suffix(".npz")
        with atomic_output(target) as image, atomic_output(points) as arrays:
            save_image(scatter_image(samples, opened.fixed.get("reference")), image, format="png")
            _save_npz(arrays, points=samples.numpy())
        return [target, points]
    written = [target]
    with atomic_output(target) as tmp:
        labelled_grid(to_unit(samples, opened.value_range), plan.columns, plan.row_labels).save(tmp, format="png")
    if "inputs" in opened.fixed and hasattr(opened.objective, "reconstruction_pairs"):  # VAEs: held-out inputs
        pairs = opened.objective.reconstruction_pairs(networks, opened.fixed["inputs"]).cpu()
        written.append(target.with_name(target.stem + "_reconstructions.png"))
        with atomic_output(written[-1]) as tmp:
            labelled_grid(to_unit(pairs, opened.value_range), 8).save(tmp, format="png")
    return written


def _write_files(opened: runs.Run, networks, plan: Plan, target: Path, format: str, batch_size: int) -> Path:
    """N samples in batches, each written as it comes: PNG files into a folder, or rows of a
    memory-mapped array. Everything goes to a temporary name renamed onto `target` when complete:
    a kill or a full disk never leaves a partial folder or an unreadable .npz under the final name."""
    from PIL import Image

    if format == "png" and target.exists():
        raise ConfigError(f"out={target} already exists; ganlab does not overwrite a folder of samples. Remove it, "
                          "or pass another out=.")
    count, images = len(plan.latent), None
    with atomic_output(target) as tmp, contextlib.ExitStack() as scratch:
        if format == "png":
            tmp.mkdir()
        for start in tqdm(range(0, count, batch_size), desc="sample", unit="batch", disable=count <= batch_size):
            stop = min(start + batch_size, count)
            batch = _draw(opened, networks, plan, start, stop)
            pixels = to_uint8(batch, opened.value_range).permute(0, 2, 3, 1).numpy()
            if format == "png":
                for i, image in enumerate(pixels, start):
                    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(tmp / f"{i:06d}.png")
                continue
            if images is None:
                images = scratch.enter_context(_scratch_array(target.parent, (count, *pixels.shape[1:])))
            images[start:stop] = pixels
        if format == "npz":
            _save_npz(tmp, images=images, **({"labels": plan.labels.numpy()} if plan.labels is not None else {}))
    return target


@contextlib.contextmanager
def _scratch_array(folder: Path, shape: tuple[int, ...]):
    """A uint8 array of `shape` on disk, for N too large for memory: its space is reserved first (a
    full disk is an error here, not a SIGBUS later) and its file is unlinked at once, so nothing is
    left behind even by a kill."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=".sample-", suffix=".npy")
    try:
        array = np.lib.format.open_memmap(name, mode="w+", dtype=np.uint8, shape=shape)
        os.posix_fallocate(fd, 0, os.path.getsize(name))
    finally:
        os.unlink(name)  # the mapping keeps the data until the array is dropped
        os.close(fd)
    yield array


def _save_npz(path: Path, **arrays) -> None:
    with open(path, "wb") as handle:  # a handle: np.savez would add ".npz" to a name without it
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())


def _default_out(opened: runs.Run, checkpoint: str, format: str, n: int, labels=None, flip=None,
                 interpolate: int = 0) -> Path:
    """RUN/generated/<checkpoint>_<what>_<count>[_k].<ext>: named by what it holds, and never an
    earlier output's name (a number is added)."""
    folder = opened.path.parent.parent / "generated"
    what = (f"interpolate{interpolate}" if interpolate else f"flip_{flip}" if flip else
            "labels_" + "-".join(map(str, labels)) if labels is not None else format if format != "grid" else "grid")
    stem = f"{opened.path.stem}_{what}_{n}"
    suffix = {"grid": ".png", "png": "", "npz": ".npz"}[format]
    target, k = folder / f"{stem}{suffix}", 2
    while target.exists() or (suffix == ".png" and target.with_name(target.stem + "_reconstructions.png").exists()):
        target, k = folder / f"{stem}_{k}{suffix}", k + 1
    return target
