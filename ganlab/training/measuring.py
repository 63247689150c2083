"""Measuring a run's samples: what `schedule.eval_every` does during training and `ganlab eval`
does afterwards, with the same machinery: fresh samples, the real side (loaded once, its statistics
cached), the registered metrics, and the rule that keeps best.pt."""

from __future__ import annotations

import logging

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from ganlab.training import run as runs
from ganlab.records.cache import file_sha256
from ganlab.training.drawing import generate
from ganlab.metrics.classifier import Judge
from ganlab.metrics.registry import Inputs, check_names, run_metrics, training_plan
from ganlab.records.plots import to_uint8
from ganlab.data.memory import stream_seed

log = logging.getLogger("ganlab")
REAL_LIMIT = 10_000  # real images compared with (the usual FID protocol: a test split of 10k)


def cache_dir() -> Path:
    """Where real-side statistics and clean weight copies are kept ($GANLAB_CACHE, else ~/.cache/ganlab)."""
    return Path(os.environ.get("GANLAB_CACHE", Path.home() / ".cache" / "ganlab")).expanduser()


class Measurer:
    """Runs the chosen metrics on fresh samples of a run's networks: what `ganlab eval` and
    `schedule.eval_every` share. Real images come from `real_data` (a data set, loaded on first use)."""

    def __init__(self, names: list[str], n: int, device: torch.device, real_data: Callable[[], Any] | None,
                 real_key: str, judge: Judge | None = None, inception_weights: str | None = None, mixture=None,
                 real_limit: int = REAL_LIMIT):
        check_names(names, "metrics")
        self.names, self.n, self.device, self.real_limit = names, n, device, real_limit
        self.real_data, self.real_key, self.judge = real_data, real_key, judge
        self.inception_weights, self.mixture = inception_weights, mixture
        self._real: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def real(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The held-out images, up to `real_limit`: the same set whatever n is asked."""
        if self._real is None:
            self._real = real_images(self.real_data(), self.real_limit)
        return self._real

    def __call__(self, run: runs.Run, networks, seed: int) -> tuple[dict[str, float], dict[str, Any]]:
        """(metric values, protocol) of `n` fresh samples drawn with `seed` (the training RNG is untouched)."""
        generated, labels = generate(run, networks, self.n, torch.Generator().manual_seed(seed))
        inputs = Inputs(generated, labels, self.real if self.real_data else None, self.real_key, self.device,
                        cache_dir(), self.judge, self.inception_weights, self.mixture)
        values = run_metrics(self.names, inputs)
        protocol = {k: v for k, v in inputs.protocol.items() if not k.startswith("_") and k != "requested"}
        return values, protocol


def real_images(data, limit: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Up to `limit` images of a data set as uint8 (N, C, H, W), with their labels."""
    images, labels, count = [], [], 0
    for batch in data.ordered_batches(torch.device("cpu")):
        x = batch["image"]
        images.append(to_uint8(x, data.value_range))
        labels.append(batch["label"])
        count += len(x)
        if count >= limit:
            break
    return torch.cat(images)[:limit], torch.cat(labels)[:limit]


def open_judge(path: str, facts, device: torch.device, prefixes, key: str) -> Judge:
    network, value_range, per_channel = runs.open_classifier(path, key, facts, device, prefixes)
    return Judge(network, value_range, f"{Path(path).name} sha256:{file_sha256(path)[:16]}", per_channel)


def real_key(dataset: dict[str, Any], split: str, root: str | None, shape, limit: int) -> str:
    """What names a real side in the caches: the data set, where it lies, split, shape, pixel range, count."""
    return json.dumps({"dataset": dataset.get("_target_"), "root": str(root or dataset.get("root")), "split": split,
                       "shape": list(shape), "value_range": dataset.get("value_range"), "limit": limit},
                      sort_keys=True)


class Evaluator:
    """What the maintenance evaluates a training run with: judges of the fixed sample batch (a toy's
    modes, a classifier's classes), the held-out data the objective evaluates on, and the metrics of
    fresh samples with the rule that keeps best.pt (`best_rule` = [(value, higher is better), ...])."""

    def __init__(self, run: runs.Run, device: torch.device, judges: list[Callable] = (), held_out=None,
                 measurer: Measurer | None = None, best_rule: list[tuple[str, bool]] | None = None,
                 metric_tags: list[str] = ()):
        self.run, self.device, self.judges, self.held_out = run, device, list(judges), held_out
        self.measurer, self.best_rule, self.metric_tags = measurer, best_rule, list(metric_tags)
        self.seed = int(run.config.get("seed") or 0)

    @property
    def measures(self) -> bool:
        return self.measurer is not None

    @property
    def evaluates(self) -> bool:
        """Whether anything is due at schedule.eval_every."""
        return self.held_out is not None or self.measures

    def diagnose(self, samples: torch.Tensor) -> dict[str, float]:
        return {k: v for judge in self.judges for k, v in judge(samples).items()}

    def held_out_batches(self):
        return self.held_out.ordered_batches(self.device)

    def measure(self, networks, fixed, step: int) -> dict[str, float]:
        """The metrics of fresh samples drawn with a seed of their own (the training RNG is untouched)."""
        return self.measurer(replace(self.run, fixed=fixed), networks, stream_seed(self.seed, step))[0]


def training_evaluator(settings: dict[str, Any], run: runs.Run, data, held_out, real_data: Callable[[], Any],
                       device: torch.device, dataset: dict[str, Any], judge: Judge | None) -> Evaluator:
    """The evaluator of a training run from `metrics.*` (`held_out`: the data the objective
    evaluates on, or None; `real_data`: what the metrics compare with, loaded on first use)."""
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
        return Evaluator(run, device, judges, held_out)
    split = "test" if dataset.get("split") == "train" else dataset.get("split")  # what train's held-out split is
    measurer = Measurer(list(names), int(settings.get("n") or 2000), device, None if mixture else real_data,
                        real_key=real_key(dataset, split, None, data.facts.shape, REAL_LIMIT),
                        judge=judge, inception_weights=settings.get("inception_weights"), mixture=mixture)
    return Evaluator(run, device, judges, held_out, measurer, rule, [f"metrics/{v}" for v in values])
