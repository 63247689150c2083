"""Runs that differ only in their seed, as one result: the mean, the sample standard deviation
(n - 1) and n of every figure, beside each seed's own value. `ganlab train -m seed=0,1,2 ...` makes
such a group; `ganlab report` on the sweep shows it in runs.md / runs.csv and as a mean curve with a
band of one standard deviation in learning_curves.png."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

from ganlab.trust.checks import flatten

IGNORED = ("seed", "resume")  # what may differ inside a group


def seed_groups(infos: list[dict[str, Any]]) -> list[list[int]]:
    """Indices of the runs whose configs are the same but for the seed, in their first run's order
    (a run whose config could not be read stands alone)."""
    groups: dict[str, list[int]] = {}
    for index, info in enumerate(infos):
        flat = {k: v for k, v in flatten(info["config"]).items() if k not in IGNORED}
        key = json.dumps(flat, sort_keys=True, default=str) if flat else f"alone {index}"
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def seeds_of(infos: list[dict[str, Any]]) -> str:
    return ",".join(str(i["config"].get("seed")) for i in infos)


def mean_and_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summary_rows(rows: list[list[Any]], first_numeric: int, label: str, seeds: str) -> list[list[Any]]:
    """Two table rows over a group's `rows`: the mean and the standard deviation of every numeric
    column from `first_numeric` on (the columns before it: the group's common value, or the seeds)."""
    n = len(rows)
    mean_row: list[Any] = [f"{label} mean (n={n}, seeds {seeds})"]
    std_row: list[Any] = [f"{label} std (n={n}, seeds {seeds})"]
    for column in range(1, len(rows[0])):
        values = [row[column] for row in rows]
        if column < first_numeric:
            common = values[0] if all(v == values[0] for v in values) else seeds
            mean_row.append(common)
            std_row.append(common)
            continue
        numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(float(v))]
        mean, std = mean_and_std(numbers) if len(numbers) == n else (None, None)
        mean_row.append(mean)
        std_row.append(std)
    return [mean_row, std_row]


def averaged_info(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """A run-like record of a group for the learning curves: at each step every run logged, the mean
    of each series all of them logged there; `band` holds the standard deviation beside it."""
    by_step = [{row["step"]: row for row in info["rows"] if "step" in row} for info in infos]
    steps = sorted(set.intersection(*(set(s) for s in by_step)))
    rows, band = [], {}
    for step in steps:
        keys = set.intersection(*(set(s[step]) for s in by_step)) - {"step"}
        row = {"step": step}
        for key in sorted(keys):
            values = [s[step][key] for s in by_step]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                row[key], spread = mean_and_std([float(v) for v in values])
                band.setdefault(key, {})[step] = spread
        rows.append(row)
    return {**infos[0], "rows": rows, "band": band}
