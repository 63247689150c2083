"""The report's figures: learning curves (runs overlaid) and each run's samples over time. What a
series is and which way is better is the report's business (`report.py`); drawing them is this one's."""

from __future__ import annotations

import logging

import math
from pathlib import Path
from typing import Any, Callable

from ganlab.errors import ConfigError
from ganlab.records.safe_files import atomic_output

log = logging.getLogger("ganlab")

# What the learning curves plot beside the losses: held-out and sample metrics, a VAE's ELBO terms.
CURVES = ("eval/", "metrics/", "VAE/")
UNPLOTTED = {"VAE/beta"}


def series(rows: list[dict], name: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[name]) for r in rows if isinstance(r.get(name), (int, float))]
    return [p[0] for p in points], [float(p[1]) for p in points]


def learning_curves(infos: list[dict[str, Any]], labels: list[str], path: Path, direction_words: Callable[[str], str]) -> Path:
    figure = curve_figure(infos, labels, direction_words)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    _pyplot().close(figure)
    return path


def curve_figure(infos: list[dict[str, Any]], labels: list[str], direction_words: Callable[[str], str]):
    """Each run's losses; D's margin (GANs); one panel per quality series, runs overlaid, its title
    saying which way is better (`direction_words(series name)`)."""
    plt = _pyplot()
    names = sorted({k for i in infos for r in i["rows"] for k in r if k.startswith(CURVES) and k not in UNPLOTTED})
    margin = any(series(i["rows"], "D/real_logit")[0] for i in infos)  # GANs only: VAEs and classifiers have no D
    panels = len(infos) + margin + len(names)
    columns = min(3, panels)
    figure, axes = plt.subplots(math.ceil(panels / columns), columns, figsize=(5 * columns, 3.4 * math.ceil(panels / columns)),
                                squeeze=False)
    axes = list(axes.flat)
    for axis, info, label in zip(axes, infos, labels):  # losses, one axis per run
        for name in sorted(k for k in {k for r in info["rows"] for k in r} if k.startswith("loss/")):
            _plot_with_band(axis, info, name, name.split("/", 1)[1])
        _finish(axis, fit(f"losses: {label}", 80), "loss")
    if margin:
        margin_axis = axes[len(infos)]
        for info, label in zip(infos, labels):
            steps, real = series(info["rows"], "D/real_logit")
            _, fake = series(info["rows"], "D/fake_logit")
            if steps:
                _plot(margin_axis, steps, [r - f for r, f in zip(real, fake)], label=fit(label, 48))
        _finish(margin_axis, "D's margin: mean real logit - mean fake logit", "logit")
    for axis, name in zip(axes[len(infos) + margin:], names):
        for info, label in zip(infos, labels):
            _plot_with_band(axis, info, name, fit(label, 60))
        _finish(axis, f"{name} ({direction_words(name)})", name.split("/", 1)[1])
    for axis in axes[panels:]:
        axis.axis("off")
    figure.tight_layout()
    return figure


def fit(label: str, width: int) -> str:
    """`label` in at most `width` characters, cut between whole settings and marked with an ellipsis
    (a value cut in the middle would read as another value: steps=300 as steps=30)."""
    if len(label) <= width:
        return label
    words, kept = label.split(" "), ""
    for word in words:
        if len(f"{kept} {word}".strip()) + 2 > width:
            break
        kept = f"{kept} {word}".strip()
    return f"{kept} …" if kept else label[:width - 1] + "…"


def _plot(axis, steps: list[int], values: list[float], label: str) -> None:
    """A curve; with few points, each is marked (a series of one point is a dot, not a blank panel)."""
    if steps:
        axis.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3, label=label)


def _plot_with_band(axis, info: dict[str, Any], name: str, label: str) -> None:
    """A run's series; for a seed group's mean, one standard deviation either side as a band."""
    steps, values = series(info["rows"], name)
    _plot(axis, steps, values, label=label)
    spread = (info.get("band") or {}).get(name)
    if spread and steps:
        widths = [spread.get(s, 0.0) for s in steps]
        axis.fill_between(steps, [v - w for v, w in zip(values, widths)], [v + w for v, w in zip(values, widths)],
                          alpha=0.25)


def _finish(axis, title: str, ylabel: str) -> None:
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("step")
    axis.set_ylabel(ylabel)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)


def chosen_grids(info: dict[str, Any], steps, epochs) -> list[tuple[str, Path]]:
    """(title, grid) for each step (or epoch) asked for: the saved sample grid nearest to it."""
    saved = {int(p.stem[5:]): p for p in (info["dir"] / "samples").glob("step_*.png")
             if p.stem[5:].isdigit() and p.is_file()}  # a file named otherwise is not a grid of the run's
    if not saved:
        raise ConfigError(f"{info['dir']} has no sample grids (samples/step_*.png) to show.")
    if epochs:
        per_epoch = info["steps_per_epoch"]
        if not per_epoch:
            raise ConfigError(f"{info['dir']}: its checkpoint does not say how many steps an epoch is; use steps=[...].")
        wanted = [(f"epoch {e}", round(float(e) * per_epoch)) for e in epochs]
    else:
        wanted = [(f"step {s}", int(s)) for s in steps]
    chosen = []
    for title, step in wanted:
        nearest = min(sorted(saved), key=lambda s: abs(s - step))  # a tie: the earlier grid
        if step > max(saved):
            log.warning("report: %s: %s is past the run's last grid (step %d); that grid is shown", info["dir"],
                        title, max(saved))
        chosen.append((title if nearest == step else f"{title} (grid of step {nearest})", saved[nearest]))
    return chosen


def samples_over_time(info: dict[str, Any], label: str, steps, epochs, folder: Path) -> Path:
    """The grids at the saved sample steps nearest to the chosen steps (or epochs), side by side."""
    from PIL import Image

    wanted = chosen_grids(info, steps, epochs)
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(wanted), figsize=(3.2 * len(wanted), 3.6), squeeze=False)
    for axis, (title, grid) in zip(axes[0], wanted):
        axis.imshow(Image.open(grid))
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.suptitle(fit(label, 100), fontsize=9)
    figure.tight_layout()
    path = folder / f"samples_{info['dir'].name}.png"
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
