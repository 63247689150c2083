"""`ganlab report DIR...`: what a run (or a sweep) learned, as files next to it.

    learning_curves.png   G's and D's losses (one axis per run), D's real/fake margin and every
                          eval/ and metrics/ series, runs overlaid and labelled by their overrides
    samples_<run>.png     the fixed-noise grids at chosen steps or epochs, side by side
    runs.md, runs.csv     one row per run: the config values that differ, final and best metrics
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganlab.training import run as runs
from ganlab.trust.checks import flatten
from ganlab.errors import ConfigError
from ganlab.commands.figures import learning_curves, samples_over_time, series
from ganlab.commands.options import option, read, takes
from ganlab.training.replay import hydra_overrides
from ganlab.trust.stored import setting_overrides
from ganlab.records.safe_files import is_disk_full
from ganlab.records.logging import read_metrics
from ganlab.records.safe_files import read_text, remove_stale_partials, write_text_atomic
from ganlab.commands.seeds import averaged_info, seed_groups, seeds_of, summary_rows

log = logging.getLogger("ganlab")

@dataclass
class ReportOptions:
    runs: list | None = option(None, "run directories, or a sweep directory (all of its runs); also given without "
                               "runs=")
    out: str | None = option(None, "output folder (default: <run>/report, or <sweep>/report for several runs)")
    steps: list | None = option(None, "steps whose sample grids to show, e.g. steps=[500,1000,2000]")
    epochs: list | None = option(None, "epochs whose sample grids to show, e.g. epochs=[1,5,10,50,100]")


SUMMARY = "Learning curves, samples over time and a table comparing runs, written as PNG, Markdown and CSV."
EXAMPLES = ["ganlab report outputs/2026-11-25/10-00-00", "ganlab report outputs/multirun/2026-11-25/10-00-00",
            "ganlab report RUN epochs=[1,5,10,50,100]", "ganlab report RUN_A RUN_B out=comparison"]


def _ranked(series_name: str) -> bool:
    from ganlab.metrics.registry import series_direction

    return series_direction(series_name) is not None


def main(args: list[str]) -> None:
    values = read("report", args, ReportOptions, SUMMARY, EXAMPLES, positional="runs")
    if values is None:
        return
    for path in report(**values):
        print(f"ganlab: wrote {path}")


@takes(ReportOptions)
def report(runs, out, steps, epochs) -> list[Path]:
    """Write the report of the `runs` (the options: `ReportOptions`); returns the files written."""
    paths = runs or []
    steps, epochs = _check_moments(steps, epochs)
    run_dirs = find_runs(paths)
    folder = Path(out) if out else _default_out(paths, run_dirs)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        if is_disk_full(exc):
            raise
        raise ConfigError(f"out={folder} cannot be written ({exc.strerror or exc}); pass out= a folder you can "
                          "write.") from None
    remove_stale_partials(folder)  # what a killed report left
    infos = [_info(d) for d in run_dirs]
    labels = run_labels(infos)
    groups = [g for g in seed_groups(infos) if len(g) > 1]  # runs that differ only in the seed
    curves, curve_labels = _seed_means(infos, labels, groups)
    written: list[Path] = []
    try:
        written.append(learning_curves(curves, curve_labels, folder / "learning_curves.png", direction_words))
        if steps or epochs:
            for info, label in zip(infos, labels):
                written.append(samples_over_time(info, label, steps, epochs, folder))
        written += comparison_table(infos, labels, folder, groups, _sweep_status(paths))
    except (OSError, RuntimeError) as exc:  # a full disk: no half report (curves without their table)
        if is_disk_full(exc):
            for path in written:
                path.unlink(missing_ok=True)
        raise
    return written


def _sweep_status(paths: list[str]) -> list[str]:
    """For each sweep folder given that keeps a record (sweep.json): a line per job, what it is now."""
    from ganlab.records import sweeps

    lines = []
    for path in map(Path, paths):
        if (path / sweeps.NAME).is_file():
            lines += [f"- {line}" for line in sweeps.status_lines(path)]
    return ["", "Sweep jobs:", *lines] if lines else []


def _seed_means(infos, labels, groups) -> tuple[list[dict[str, Any]], list[str]]:
    """The runs of the learning curves: each seed group as its mean with a band, the others as they are."""
    grouped = {i for g in groups for i in g}
    curves = [(info, label) for i, (info, label) in enumerate(zip(infos, labels)) if i not in grouped]
    for group in groups:
        members = [infos[i] for i in group]
        label = _without_seed(labels[group[0]]) or infos[group[0]]["dir"].parent.name
        curves.append((averaged_info(members), f"{label} (mean +- std, n={len(group)})"))
    return [c[0] for c in curves], [c[1] for c in curves]


def _without_seed(label: str) -> str:
    return " ".join(part for part in label.split() if not part.startswith("seed="))


def _check_moments(steps, epochs) -> tuple[list[int] | None, list[float] | None]:
    """steps=[...] are whole steps >= 0, epochs=[...] positive numbers; not both."""
    if steps and epochs:
        raise ConfigError(f"steps={steps} and epochs={epochs} were both given; the grids are chosen by one of them. "
                          "Drop one.")
    for key, values, kind in (("steps", steps, int), ("epochs", epochs, float)):
        if values is None:
            continue
        if not values:
            raise ConfigError(f"{key}=[] is empty; list the {key} whose grids to show, e.g. {key}=[1,5,10].")
        try:
            converted = [kind(v) for v in values]
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={values} must be a list of numbers, e.g. {key}=[1,5,10].") from None
        if any(v < 0 if key == "steps" else v <= 0 for v in converted) or (kind is int and any(
                isinstance(v, float) and not v.is_integer() for v in values)):
            raise ConfigError(f"{key}={values}: {key} must be {'whole steps >= 0' if key == 'steps' else 'positive'}, "
                              f"e.g. {key}=[1,5,10].")
        steps, epochs = (converted, epochs) if key == "steps" else (steps, converted)
    return steps, epochs


def find_runs(paths: list[str]) -> list[Path]:
    """Run directories (those with a metrics.jsonl): each path is a run, or a folder of runs (a sweep)."""
    if not paths:
        raise ConfigError("ganlab report needs at least one run or sweep directory, e.g. ganlab report outputs/...")
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise ConfigError(f"{path} does not exist; point ganlab report at a run folder (outputs/<date>/<time>) or "
                              "a sweep's outputs/multirun/<date>/<time>.")
        if (path / "metrics.jsonl").exists() or (path / "metrics.jsonl").is_symlink():  # read_text refuses a FIFO
            found.append(path)
            continue
        inside = sorted(p.parent for p in path.glob("*/metrics.jsonl")) if path.is_dir() else []
        if not inside:
            raise ConfigError(f"{path} is not a run (no metrics.jsonl) nor a folder of runs; point ganlab report at "
                              "outputs/<date>/<time> or a sweep's outputs/multirun/<date>/<time>.")
        found += sorted(inside, key=lambda p: (len(p.name), p.name))
    twice = sorted({str(d) for d in found if found.count(d) > 1 or [f.resolve() for f in found].count(d.resolve()) > 1})
    if twice:
        raise ConfigError(f"{twice[0]} is given twice (itself or inside a sweep folder also given); name each run once.")
    return found


def _default_out(paths: list[str], run_dirs: list[Path]) -> Path:
    if len(run_dirs) == 1:
        return run_dirs[0] / "report"
    parents = {d.parent for d in run_dirs}
    return (parents.pop() if len(parents) == 1 else Path(paths[0]).expanduser()) / "report"


def _info(run_dir: Path) -> dict[str, Any]:
    rows = read_metrics(run_dir)  # bad lines are named in the log and skipped
    try:
        summary = runs.summary(run_dir)
        overrides = summary.pop("overrides")
        overrides = hydra_overrides(run_dir) if overrides is None else overrides
    except ConfigError as exc:  # a damaged checkpoint or overrides file: this run's curves still show
        log.warning("report: %s: %s; its curves are shown without its config", run_dir,
                    str(exc).removeprefix("report: "))
        overrides, summary = [], {"config": {}, "steps_per_epoch": None, "step": 0, "best": None, "choices": {}}
    return {"dir": run_dir, "rows": rows, "overrides": setting_overrides(overrides), **summary}


# typed settings that change nothing a report compares (how the run printed, where it ran)
UNCOMPARED = ("progress", "device", "resume", "resume_from", "name", "allowed_targets")


def run_labels(infos: list[dict[str, Any]]) -> list[str]:
    """Each run named by the settings that set it apart, as the user would type them (`loss=hinge
    model=sngan`, never a `_target_` path), each key once; a single run by its folder's name."""
    if len(infos) == 1:
        return [infos[0]["dir"].name]
    typed = [dict(o.split("=", 1) for o in i["overrides"]) for i in infos]  # what the user typed
    keys: list[str] = []
    for candidates in ([k for t in typed for k in t], differing_choices(infos)):  # typed first, then groups
        keys += [k for k in dict.fromkeys(key.lstrip("+~") for key in candidates) if k not in keys and
                 k not in UNCOMPARED and len({_setting(i, t, k) for i, t in zip(infos, typed)}) > 1]
        labels = [" ".join(f"{k}={v}" for k in keys if (v := _setting(i, t, k)) != "None")  # unset: said by the others
                  for i, t in zip(infos, typed)]
        if len(set(labels)) == len(labels) and all(labels):
            return labels
    differing = [k for k in differing_keys(infos) if k not in keys]  # then the config values that differ
    labels = [" ".join([lab, *(f"{k}={flatten(i['config']).get(k)}" for k in differing[:3])]).strip()
              or i["dir"].name for lab, i in zip(labels, infos)]
    return labels if len(set(labels)) == len(labels) else [f"{i['dir'].name}: {l}" for i, l in zip(infos, labels)]


def _setting(info: dict[str, Any], typed: dict[str, str], key: str) -> str:
    """A run's value of `key`: as typed, else its config group's choice, else its config's value."""
    for form in (key, f"+{key}", f"++{key}"):
        if form in typed:
            return typed[form]
    choice = (info.get("choices") or {}).get(key)
    return str(choice) if choice is not None else str(flatten(info["config"]).get(key))


def differing_choices(infos: list[dict[str, Any]]) -> list[str]:
    """The config groups (model, loss, dataset, ...) whose chosen option differs between the runs."""
    chosen = [i.get("choices") or {} for i in infos]
    return [g for g in sorted(set().union(*chosen)) if len({c.get(g) for c in chosen}) > 1]


def differing_keys(infos: list[dict[str, Any]]) -> list[str]:
    """Config keys whose values differ between the runs and that a reader compares: not `_target_`
    paths (a differing choice names them), not a group whose choice differs nor the keys under it
    (the choice explains them all: a diffusion run's `loss` is {} beside a GAN's `loss=bce`), not
    where the run or its data lives; of keys whose columns are the same
    (loss.adversarial._target_ and model.objective.loss._target_), the first only."""
    flat = [flatten(i["config"]) for i in infos]
    explained = tuple(f"{g}." for g in differing_choices(infos) if "/" not in g)
    keys, columns = [], set()
    for key in sorted(set().union(*flat)):
        if key in UNCOMPARED or key.endswith("_target_") or f"{key}.".startswith(explained) or \
                key.startswith(("paths.", "dataset.root", "dataset.cache_dir", "metrics.classifier")):
            continue
        column = json.dumps([f.get(key) for f in flat], sort_keys=True)
        if len({json.dumps(f.get(key), sort_keys=True) for f in flat}) > 1 and column not in columns:
            keys.append(key)
            columns.add(column)
    return keys


def higher_is_better(series_name: str) -> bool:
    from ganlab.metrics.registry import series_direction  # torch: imported only when a table is written

    return bool(series_direction(series_name))


def direction_words(series_name: str) -> str:
    from ganlab.metrics.registry import series_direction

    higher = series_direction(series_name)
    if higher is None:
        return "nats; near 0: the posterior collapsed"
    return "higher is better" if higher else "lower is better"


def comparison_table(infos: list[dict[str, Any]], labels: list[str], folder: Path,
                     groups: list[list[int]] = (), sweep_lines: list[str] = ()) -> list[Path]:
    """runs.md and runs.csv: the differing config values; the final losses (a GAN's loss has no
    "best"); each quality measure's final and best value, saying which way is better; the
    figures of each run's eval.json; and for each group of runs that differ only in the seed, a
    mean and a standard-deviation row after its runs."""
    choice_groups = differing_choices(infos) if len(infos) > 1 else []
    keys = differing_keys(infos) if len(infos) > 1 else []
    losses = sorted({k for i in infos for r in i["rows"] for k in r if k.startswith("loss/")})
    names = sorted({k for i in infos for r in i["rows"] for k in r if k.startswith(("eval/", "metrics/", "diagnostics/"))})
    evaluated = [_eval_json(info["dir"]) for info in infos]
    judged = sorted({k for e in evaluated for k in e})
    ranked = _ranking(infos)  # a sweep's trials ranked by the metric that keeps best.pt (what Optuna optimises)
    header = ["run", *choice_groups, *keys, *ranked[0], *(f"{n} final" for n in losses),
              *(f"{n} {which}" for n in names for which in (("final", f"best ({direction_words(n)})") if _ranked(n)
                                                            else (f"final ({direction_words(n)})",))),
              *(f"eval.json {n} ({direction_words(n)})" for n in judged)]
    table = []
    for info, label, judged_values in zip(infos, labels, evaluated):
        flat = flatten(info["config"])
        row = [label, *((info.get("choices") or {}).get(g) for g in choice_groups), *(flat.get(k) for k in keys),
               *ranked[1][len(table)]]
        row += [(series(info["rows"], n)[1] or [None])[-1] for n in losses]
        for name in names:
            _, values = series(info["rows"], name)
            best = (max if higher_is_better(name) else min)(values) if values and _ranked(name) else None
            row += [values[-1] if values else None, best] if _ranked(name) else [values[-1] if values else None]
        row += [judged_values.get(n) for n in judged]
        table.append(row)
    for group in groups:
        members = [infos[i] for i in group]
        summary = summary_rows([table[i] for i in group], 1 + len(choice_groups) + len(keys), _without_seed(labels[group[0]]) or "runs",
                               seeds_of(members))
        if ranked[0]:  # a mean rank means nothing
            for row in summary:
                row[2 + len(choice_groups) + len(keys)] = None
        table += summary
    rows = io.StringIO(newline="")
    csv.writer(rows).writerows([header, *table])
    write_text_atomic(folder / "runs.csv", rows.getvalue())
    shown = [[_cell(v) for v in row] for row in table]
    markdown = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    markdown += ["| " + " | ".join(row) + " |" for row in shown]
    if groups:
        markdown += ["", "Rows ending in mean / std: over the runs that differ only in their seed (std: the sample "
                     "standard deviation, n - 1)."]
    write_text_atomic(folder / "runs.md", "\n".join(markdown + list(sweep_lines)) + "\n")
    return [folder / "runs.md", folder / "runs.csv"]


def _ranking(infos: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(header, per run [best value, rank]) when two runs or more kept best.pt by the same metric,
    else no columns. Rank 1 is the best; a run without a best value (diverged early) has none."""
    bests = [i.get("best") or {} for i in infos]
    metrics = {b.get("metric") for b in bests if b.get("metric")}
    if len(infos) < 2 or len(metrics) != 1 or sum(bool(b) for b in bests) < 2:
        return [], [[] for _ in infos]
    metric = metrics.pop()
    higher = higher_is_better(metric)
    values = [b.get("value") if b.get("metric") == metric else None for b in bests]
    order = sorted((v for v in values if v is not None), reverse=higher)
    return ([f"best.pt {metric} ({direction_words(metric)})", "rank"],
            [[v, order.index(v) + 1 if v is not None else None] for v in values])


def _eval_json(run_dir: Path) -> dict[str, float]:
    """The metrics of a run's `ganlab eval` (eval.json), {} when it has none or it is unreadable."""
    try:
        values = _eval_metrics(run_dir / "eval.json")
    except (OSError, ValueError, AttributeError, RecursionError, ConfigError):
        return {}
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float))} if isinstance(values, dict) else {}


def _eval_metrics(path: Path) -> Any:
    return json.loads(read_text(path, limit=2**20)).get("metrics") or {}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "\\|")


