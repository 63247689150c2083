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
from dataclasses import dataclass
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ganlab.training import run as runs
from ganlab.trust.build import allowed_prefixes
from ganlab.training.drawing import Plan, draw, plan, with_sampling
from ganlab.errors import ConfigError
from ganlab.commands.options import RunOptions, option, read, takes
from ganlab.records.plots import labelled_grid, scatter_image, to_uint8, to_unit
from ganlab.records.safe_files import atomic_output, check_writable, claimed_name, remove_stale_partials
from ganlab.training.runtime import pick_device

log = logging.getLogger("ganlab")
GRID_LIMIT = 4096
@dataclass
class SampleOptions(RunOptions):
    n: int = option(64, "how many samples")
    out: str | None = option(None, "where to write (default: RUN/generated/<checkpoint>_<what>_<count>, never "
                             "overwritten)")
    format: str = option("grid", "grid (one PNG), png (a folder of N PNGs) or npz (uint8 arrays)", ("grid", "png", "npz"))
    labels: list | None = option(None, "conditional runs: the classes to draw, e.g. labels=[3,5] (default: every "
                                 "class)")
    flip: str | None = option(None, "attribute runs: the attribute to switch off and on with the same z, e.g. "
                              "flip=Male")
    interpolate: int = option(0, "K > 0: rows of K-step latent walks between random pairs (grid)")
    batch_size: int = option(256, "samples generated at once")


SUMMARY = "Draw samples from a trained run (EMA weights when it has them). Needs no data set."
EXAMPLES = ["ganlab sample run=outputs/2026-11-25/10-00-00", "ganlab sample run=DIR n=50000 format=png",
            "ganlab sample run=DIR checkpoint=best format=npz n=10000", "ganlab sample run=DIR labels=[3,5]",
            "ganlab sample run=DIR flip=Male n=16", "ganlab sample run=DIR interpolate=8 n=64"]


def main(args: list[str]) -> None:
    values = read("sample", args, SampleOptions, SUMMARY, EXAMPLES)
    if values is None:
        return
    for path in sample(**values):
        print(f"ganlab: wrote {path}")


@takes(SampleOptions)
def sample(run, checkpoint, ema, seed, device, allowed_targets, sampler, steps, guidance, eta, n, out, format, labels,
           flip, interpolate, batch_size) -> list[Path]:
    """Write samples of `run` as `format` (the options: `SampleOptions`); returns the files (or folder) written."""
    for key, value in (("n", n), ("batch_size", batch_size)):
        if value <= 0:
            raise ConfigError(f"{key}={value} must be positive, e.g. {key}=64.")
    if interpolate and interpolate < 2:
        raise ConfigError(f"interpolate={interpolate}: a latent walk needs at least 2 steps (interpolate=8 draws "
                          "walks of 8); interpolate=0 turns it off.")
    if interpolate and n % interpolate:
        raise ConfigError(f"interpolate={interpolate} draws walks of {interpolate} images, and n={n} is not a whole "
                          f"number of walks; set n={max(1, n // interpolate) * interpolate} (or another multiple of "
                          f"{interpolate}).")
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
    with_sampling(opened, sampler, steps, guidance, eta)
    points = opened.facts.points
    if points and format != "grid":
        raise ConfigError(f"format={format}: this run draws 2-d points; use format=grid (a scatter plot and the "
                          "points as .npz).")
    chosen = plan(opened, n, labels, flip, interpolate, torch.Generator().manual_seed(seed), grid=format == "grid")
    if out:
        target = Path(out)
        wanted = {"grid": (".png",), "npz": (".npz",), "png": ("",)}[format]
        if target.suffix.lower() not in wanted:
            raise ConfigError(f"out={out}: format={format} writes "
                              f"{'a folder' if format == 'png' else 'a ' + wanted[0] + ' file'}; name it so, e.g. "
                              f"out={target.with_suffix(wanted[0])}.")
        if target.exists() or target.is_symlink():
            raise ConfigError(f"out={target} already exists; ganlab does not overwrite earlier samples. Remove it, or "
                              "pass another out=.")
        check_writable(target.parent, f"out={out}", "pass out= a folder you can write.")
        return _write(opened, ema, chosen, target, format, batch_size)
    names = _default_names(opened, checkpoint, format, len(chosen.latent), labels, flip, interpolate)
    folder = opened.path.parent.parent / "generated"
    check_writable(folder, f"run={run}", "the run folder is read-only here: pass out=PATH to write the samples elsewhere.")
    with claimed_name(names) as target:  # two samples started at once never pick the same default name
        return _write(opened, ema, chosen, target, format, batch_size)


def _write(opened: runs.Run, ema, chosen: Plan, target: Path, format: str, batch_size: int) -> list[Path]:
    remove_stale_partials(target.parent)
    networks = opened.sampling_networks(ema)
    if format == "grid":
        return _write_grid(opened, networks, chosen, target, batch_size)
    return [_write_files(opened, networks, chosen, target, format, batch_size)]


def _class_list(labels) -> list[int]:
    if not isinstance(labels, list) or not labels:
        raise ConfigError(f"labels={labels} must name at least one class, e.g. labels=[3,5].")
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in labels):
        raise ConfigError(f"labels={labels} must be class numbers, e.g. labels=[3,5] (the run's classes are numbered "
                          "from 0; `ganlab sample run=DIR` shows them as row labels).")
    return labels


def _write_grid(opened: runs.Run, networks, chosen: Plan, target: Path, batch_size: int) -> list[Path]:
    count = len(chosen.latent)
    samples = torch.cat([draw(opened, networks, chosen, i, min(i + batch_size, count))
                         for i in range(0, count, batch_size)])
    if opened.facts.points:  # a scatter plot, and the points themselves
        from torchvision.utils import save_image

        points = target.with_suffix(".npz")
        with atomic_output(target) as image, atomic_output(points) as arrays:
            save_image(scatter_image(samples, opened.fixed.get("reference")), image, format="png")
            _save_npz(arrays, points=samples.numpy())
        return [target, points]
    written = [target]
    with atomic_output(target) as tmp:
        labelled_grid(to_unit(samples, opened.value_range), chosen.columns, chosen.row_labels,
                      title=_title(opened, networks)).save(tmp, format="png")
    if "inputs" in opened.fixed and hasattr(opened.objective, "reconstruction_pairs"):  # VAEs: held-out inputs
        pairs = opened.objective.reconstruction_pairs(networks, opened.fixed["inputs"]).cpu()
        written.append(target.with_name(target.stem + "_reconstructions.png"))
        with atomic_output(written[-1]) as tmp:
            labelled_grid(to_unit(pairs, opened.value_range), 8).save(tmp, format="png")
    return written


def _title(opened: runs.Run, networks) -> str:
    """What a sampled grid shows, as the training grids say it: the run, the step, the weights."""
    ema = " (EMA)" if opened.ema and any(networks.get(name) is not net for name, net in opened.networks.items()) else ""
    return f"{opened.path.parent.parent.name}, step {opened.step:,}, {opened.path.name}{ema}"


def _write_files(opened: runs.Run, networks, chosen: Plan, target: Path, format: str, batch_size: int) -> Path:
    """N samples in batches, each written as it comes: PNG files into a folder, or rows of a
    memory-mapped array. Everything goes to a temporary name renamed onto `target` when complete:
    a kill or a full disk never leaves a partial folder or an unreadable .npz under the final name."""
    from PIL import Image

    count, images = len(chosen.latent), None
    with atomic_output(target, folder=format == "png") as tmp, contextlib.ExitStack() as scratch:
        for start in tqdm(range(0, count, batch_size), desc="sample", unit="batch", disable=count <= batch_size):
            stop = min(start + batch_size, count)
            batch = draw(opened, networks, chosen, start, stop)
            pixels = to_uint8(batch, opened.value_range).permute(0, 2, 3, 1).numpy()
            if format == "png":
                for i, image in enumerate(pixels, start):
                    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(tmp / f"{i:06d}.png")
                continue
            if images is None:
                images = scratch.enter_context(_scratch_array(target.parent, (count, *pixels.shape[1:])))
            images[start:stop] = pixels
        if format == "npz":
            _save_npz(tmp, images=images, **({"labels": chosen.labels.numpy()} if chosen.labels is not None else {}))
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


def _default_names(opened: runs.Run, checkpoint: str, format: str, n: int, labels=None, flip=None,
                   interpolate: int = 0):
    """RUN/generated/<checkpoint>_<what>_<count>[_k].<ext>: named by what it holds, and never an
    earlier output's name (a number is added); the caller claims the first free one."""
    folder = opened.path.parent.parent / "generated"
    what = (f"interpolate{interpolate}" if interpolate else f"flip_{flip}" if flip else
            "labels_" + "-".join(map(str, labels)) if labels is not None else format if format != "grid" else "grid")
    stem = f"{opened.path.stem}_{what}_{n}"
    suffix = {"grid": ".png", "png": "", "npz": ".npz"}[format]
    for k in range(1, 100_000):
        target = folder / (f"{stem}{suffix}" if k == 1 else f"{stem}_{k}{suffix}")
        if not (suffix == ".png" and target.with_name(target.stem + "_reconstructions.png").exists()):
            yield target
