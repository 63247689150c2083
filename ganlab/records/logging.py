"""One writer for a run's scalars and images: TensorBoard, `metrics.jsonl`, PNGs and the progress bar."""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ganlab.records.safe_files import atomic_output, open_append, read_text, write_text_atomic
from ganlab.records.plots import (labelled_grid, labelled_scatter, rows_by_class, scatter_image, to_uint8, to_unit,
                                  two_dimensional)

log = logging.getLogger("ganlab")
# What `make tensorboard` passes: keep every sample grid (TensorBoard 2.21 serves none with images=0
# and a random 10 by default). tests/test_tensorboard.py serves a run through a real server with it.
TENSORBOARD_SAMPLES = "images=100000"
# What each kind of run's phases log beside their loss (a chart of its own in Custom Scalars).
PHASE_TERMS = {"VAE": ("ELBO terms per image: reconstruction and KL (nats or squared error)",
                       [r"^VAE/reconstruction$", r"^VAE/kl$"]),
               "denoise": ("the loss per quarter of the noise level (t0-25: nearly clean ... t75-100: nearly noise)",
                           [r"^loss/t\d+-\d+$"])}


def custom_layout(phases: list[str], metrics: dict[str, bool | None]) -> dict[str, dict[str, list]]:
    """TensorBoard's Custom Scalars layout for one run: a category per kind of run (GAN, VAE,
    classifier), so that runs of different kinds in one folder never share a chart and a VAE's
    loss (about 40) does not flatten GAN curves near 0; one chart per metric, with its direction."""
    gan = {"D", "G"} <= set(phases)
    kind = "GAN" if gan else "classifier" if phases == ["C"] else "diffusion and flow" if phases == ["denoise"] \
        else "/".join(phases)
    # one chart per quantity, the runs overlaid in it (one chart of every phase's loss held 16 curves for 8 runs)
    charts = {f"{kind}: loss/{phase}": ["Multiline", [rf"^loss/{re.escape(phase)}$"]] for phase in phases}
    if gan:
        charts["GAN: D's mean logit on real images (logits)"] = ["Multiline", [r"^D/real_logit$"]]
        charts["GAN: D's mean logit on fake images (its gap to the real one is D's margin)"] = \
            ["Multiline", [r"^D/fake_logit$"]]
    for phase in phases:
        if phase in PHASE_TERMS:
            title, tags = PHASE_TERMS[phase]
            charts[f"{kind}: {title}"] = ["Multiline", tags]
    for tag, higher in metrics.items():
        better = "" if higher is None else " (higher is better)" if higher else " (lower is better)"
        charts[f"{kind}: {tag}{better}"] = ["Multiline", [f"^{re.escape(tag)}$"]]
    return {f"ganlab {kind} runs": charts}


class RunLogger:
    def __init__(self, run_dir: Path, total_steps: int, start_step: int = 0, progress: bool = True,
                 resumed: bool = False):
        """`resumed`: the run directory holds an earlier attempt that continues (or restarts) at `start_step`."""
        self.run_dir = run_dir
        self.metrics_path = run_dir / "metrics.jsonl"
        self.samples_dir = run_dir / "samples"
        if resumed:
            # The steps after the checkpoint are trained again: drop what was logged for them.
            _truncate_jsonl(self.metrics_path, start_step)
        self.rows = open_append(self.metrics_path)  # once, never through a link: kept for the run
        # an events file name nobody can predict (a link planted under it would be written through)
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=start_step + 1 if resumed else None,
                                    filename_suffix=f".{secrets.token_hex(8)}")
        self.total_steps, self.progress = total_steps, progress
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not progress, dynamic_ncols=True,
                        unit="step", desc="train")

    def scalars(self, step: int, values: dict[str, float], progress: bool = True) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.rows.write(json.dumps({"step": step, **{k: _json_number(v) for k, v in values.items()}}) + "\n")
        self.rows.flush()
        if not progress:
            return
        shown = {k.split("/")[-1] if k.startswith("loss/") or k.endswith("/kl") else k.replace("perf/", ""): f"{v:.3g}"
                 for k, v in values.items() if k.startswith("loss/") or k.endswith("/kl") or k == "perf/images_per_s"}
        line = "  ".join(f"{k} {v}" for k, v in shown.items())
        if self.progress:  # the bar on the console; train.log still gets the line (hydra/job_logging)
            self.bar.set_postfix(shown, refresh=False)
            logging.getLogger("ganlab.progress").info("step %d/%d  %s", step, self.total_steps, line)
        else:  # no bar (clusters, files): one line per log step instead
            log.info("step %d/%d  %s", step, self.total_steps, line)

    def describe(self, values: dict[str, object], phases: list[str], metrics: dict[str, bool | None]) -> None:
        """The run's HParams entry (its config choices and overrides beside its losses and
        `metrics`, {tag: higher is better}) and its Custom Scalars layout.

        Only the session is written, not an experiment summary: TensorBoard then builds the HParams
        columns from every run's sessions, so a folder mixing sweeps, presets and models shows each
        one's varied keys (with an experiment summary per run it shows one run's columns only)."""
        from torch.utils.tensorboard.summary import hparams

        shown = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in values.items()}
        losses = [f"loss/{phase}" for phase in phases]
        _, session_start, session_end = hparams(shown, {tag: 0.0 for tag in [*losses, *metrics]})
        self.writer.file_writer.add_summary(session_start)
        self.writer.file_writer.add_summary(session_end)
        self.writer.add_custom_scalars(custom_layout(phases, metrics))

    def images(self, step: int, name: str, shown, value_range: str = "tanh", labels: torch.Tensor | None = None,
               class_names: tuple[str, ...] = ()) -> Path:
        """Draw what an objective shows (a `Grid` of images in `value_range`, or `Points`), titled
        with its name and step, and save it as a PNG and to TensorBoard; a grid with class `labels`
        gets one named row a class. Returns the PNG path."""
        picture = render(shown, value_range, f"{name}, step {step:,}", labels, class_names)
        stem = f"step_{step:06d}" if name == "samples" else f"{name}_step_{step:06d}"
        path = self.samples_dir / f"{stem}.png"
        with atomic_output(path) as tmp:
            picture.save(tmp, format="png")
        self.writer.add_image(name, torch.from_numpy(np.array(picture)).permute(2, 0, 1), step)
        return path

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def message(self, text: str) -> None:
        self.bar.write(text)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
        self.rows.close()


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep the rows up to `last_step`; a partial last line (a kill during an append) is dropped,
    and any other line that is not a row is named and dropped."""
    if not path.exists() and not path.is_symlink():
        return
    rows, problems = parse_rows(read_text(path), path)
    for problem in problems:
        log.warning("%s", problem)
    kept = [json.dumps(row) for row in rows if row.get("step", 0) <= last_step]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of a run's `metrics.jsonl` (for scripts, reports and tests); bad lines are named in
    the log and skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    rows, problems = parse_rows(read_text(path), path)
    for problem in problems:
        log.warning("%s", problem)
    return rows


def render(shown, value_range: str, title: str, labels: torch.Tensor | None = None,
           class_names: tuple[str, ...] = ()):
    """A PIL picture of a snapshot: a scatter plot of `Points`, or a titled grid of `Grid` images."""
    from PIL import Image

    if hasattr(shown, "points"):
        if shown.labels is not None:  # a labelled scatter (a VAE's test latents) carries its own title
            image = labelled_scatter(two_dimensional(shown.points), shown.labels, shown.names, shown.title)
            return Image.fromarray(to_uint8(image, "unit").permute(1, 2, 0).numpy())
        return labelled_grid(scatter_image(shown.points, shown.reference)[None], 1, title=title)
    images, columns, rows = to_unit(shown.images.detach().float().cpu(), value_range), shown.columns, []
    if labels is not None and labels.dtype == torch.long and labels.ndim == 1 and len(labels) == len(images):
        images, columns, rows = rows_by_class(images, labels, class_names)
    return labelled_grid(images, columns, rows, title=title)


def final_summary(run_dir: Path, best: dict | None) -> list[str]:
    """What a finished run measured, for its last lines: the last value of each held-out and
    sample metric (a classifier's test accuracy, a VAE's test error, FD, ...) and where best.pt is."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = read_metrics(run_dir) if path.is_file() else []
    last: dict[str, tuple[int, float]] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith(("eval/", "metrics/")) and isinstance(value, (int, float)):
                last[key] = (row["step"], value)
    lines = [f"{key} {value:.5g} (step {step:,})" for key, (step, value) in sorted(last.items())]
    if best:
        lines.append(f"best.pt: {best['metric']} {best['value']:.5g} at step {best['step']:,} "
                     f"({Path(run_dir) / 'checkpoints' / 'best.pt'})")
    return lines


class NullLogger:
    """What processes other than the main one log to under torchrun: nothing (rank 0 writes)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


# --- metrics.jsonl, read back as shared input: bounded rows ----------------------------------------
ROW_CHARACTERS = 65_536  # one metrics.jsonl line
ROW_KEYS = 1_000  # values per metrics.jsonl row (a run logs a few dozen)


def parse_rows(text: str, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of a `metrics.jsonl` and a warning per line that was not used. Only the last line
    can be partial (a kill during an append); any other bad line is named by its number."""
    rows, problems = [], []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        last = number == len(lines) and not text.endswith("\n")
        problem = None
        if len(line) > ROW_CHARACTERS:
            problem = f"is {len(line):,} characters, over the {ROW_CHARACTERS:,} a row may have"
        else:
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                problem = "is not a JSON row" if not last else "is a partial line left by an interrupted write"
            else:
                if not isinstance(row, dict):
                    problem = f"is a JSON {type(row).__name__}, not a row of named values"
                elif len(row) > ROW_KEYS:
                    problem = f"has {len(row):,} values, over the {ROW_KEYS:,} a row may have"
                elif not isinstance(row.get("step", 0), int) or isinstance(row.get("step"), bool):
                    problem = "has no whole-number step"
                else:
                    rows.append(row)
        if problem:
            problems.append(f"{path}: line {number} {problem}; it is not used")
    return rows, problems
