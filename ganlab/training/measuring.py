"""Wiring a run's measuring: the classifier that judges its samples, and the `Evaluator` of a
training run from `metrics.*` (the machinery itself is `metrics/measurer.py`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from ganlab.metrics.classifier import Judge
from ganlab.metrics.measurer import REAL_LIMIT, Evaluator, Measurer, real_key
from ganlab.metrics.registry import training_plan
from ganlab.records import checkpoint
from ganlab.records.cache import file_sha256
from ganlab.training import run as runs
from ganlab.training.drawing import generate

log = logging.getLogger("ganlab")


def open_judge(path: str, facts, device: torch.device, prefixes, key: str) -> Judge:
    """The classifier run at `path` (`key`=`path` as typed) as the judge of samples of data shaped as `facts`."""
    return judge_from(path, checkpoint.read_run(path, key=key), facts, device, prefixes, key)


def judge_from(path: str, read: tuple[Path, dict[str, Any]], facts, device: torch.device, prefixes, key: str) -> Judge:
    """The judge of `read`, the checkpoint file and verified state `path` named, already read."""
    file, state = read
    network, value_range, per_channel = runs.classifier_of(runs.from_checkpoint(file, state, device, prefixes),
                                                           path, key, facts)
    return Judge(network, value_range, f"{Path(file).name} sha256:{file_sha256(file)[:16]}", per_channel)


def drawer(run: runs.Run):
    """`draw(networks, fixed, n, generator)`: `n` samples of `run`'s objective from `networks`."""
    return lambda networks, fixed, n, generator: generate(replace(run, fixed=fixed), networks, n, generator)


def training_evaluator(settings: dict[str, Any], run: runs.Run, data, held_out, real_data: Callable[[], Any],
                       device: torch.device, dataset: dict[str, Any], judge: Judge | None) -> Evaluator:
    """The evaluator of a training run from `metrics.*` (`held_out`: the data the objective
    evaluates on, or None; `real_data`: what the metrics compare with, loaded on first use)."""
    seed = int(run.config.get("seed") or 0)
    mixture = data if data.facts.points else None
    judges = [mixture.mode_coverage] if mixture is not None else []
    if judge is not None:
        judges.append(lambda samples: judge.diagnose(samples, run.value_range))
    names, rule, values = training_plan(settings.get("names") or [], settings.get("best"), judge is not None,
                                        mixture is not None, judge is not None and judge.per_channel)
    if not names or run.objective.sampler is None:
        if settings.get("best"):  # best.pt will not be kept: say so (presets set it for when a classifier is given)
            why = "this model does not generate" if run.objective.sampler is None else \
                "metrics.names=auto finds none computable here (no metrics.classifier, and not a 2-d toy)"
            log.warning("metrics.best=%s keeps best.pt by a metric measured during training, but none is measured: "
                        "%s, so no best.pt is kept. Name the metric and what it needs (e.g. metrics.names=[classifier_fd]"
                        " metrics.classifier=PATH), or drop metrics.best.", settings["best"], why)
        return Evaluator(drawer(run), seed, device, judges, held_out)
    split = "test" if dataset.get("split") == "train" else dataset.get("split")  # what train's held-out split is
    measurer = Measurer(list(names), int(settings.get("n") or 2000), device, None if mixture else real_data,
                        real_key=real_key(dataset, split, None, data.facts.shape, REAL_LIMIT),
                        judge=judge, inception_weights=settings.get("inception_weights"), mixture=mixture)
    return Evaluator(drawer(run), seed, device, judges, held_out, measurer, rule, [f"metrics/{v}" for v in values])
