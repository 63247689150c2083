"""Measuring samples: the registered metrics on a batch of generated images against a real side
(loaded once, its statistics cached), and the `Evaluator` the maintenance calls at
`schedule.eval_every`. What draws the samples is given (`draw`): metrics know nothing of runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from ganlab.data.memory import stream_seed
from ganlab.metrics.classifier import Judge
from ganlab.metrics.registry import Inputs, check_names, run_metrics
from ganlab.records.plots import to_uint8

REAL_LIMIT = 10_000  # real images compared with (the usual FID protocol: a test split of 10k)
# (networks, fixed inputs, count, generator) -> (samples, their labels or None)
Draw = Callable[[dict[str, torch.nn.Module], dict[str, torch.Tensor], int, torch.Generator],
                tuple[torch.Tensor, torch.Tensor | None]]


def cache_dir() -> Path:
    """Where real-side statistics and clean weight copies are kept ($GANLAB_CACHE, else ~/.cache/ganlab)."""
    return Path(os.environ.get("GANLAB_CACHE", Path.home() / ".cache" / "ganlab")).expanduser()


class Measurer:
    """Runs the chosen metrics on generated samples: what `ganlab eval` and `schedule.eval_every`
    share. Real images come from `real_data` (a data set, loaded on first use)."""

    def __init__(self, names: list[str], n: int, device: torch.device, real_data: Callable[[], Any] | None,
                 real_key: str, judge: Judge | None = None, inception_weights: str | None = None, mixture=None,
                 real_limit: int = REAL_LIMIT, inception_precision: str = "auto"):
        check_names(names, "metrics")
        self.names, self.n, self.device, self.real_limit = names, n, device, real_limit
        self.real_data, self.real_key, self.judge = real_data, real_key, judge
        self.inception_weights, self.mixture, self.inception_precision = inception_weights, mixture, inception_precision
        self._real: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def real(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The held-out images, up to `real_limit`: the same set whatever n is asked."""
        if self._real is None:
            self._real = real_images(self.real_data(), self.real_limit)
        return self._real

    def __call__(self, generated: torch.Tensor, labels: torch.Tensor | None) -> tuple[dict[str, float], dict[str, Any]]:
        """(metric values, protocol) of the `n` samples `generated` (with the labels they were asked for)."""
        inputs = Inputs(generated, labels, self.real if self.real_data else None, self.real_key, self.device,
                        cache_dir(), self.judge, self.inception_weights, self.mixture,
                        inception_precision=self.inception_precision)
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


def real_key(dataset: dict[str, Any], split: str, root: str | None, shape, limit: int) -> str:
    """What names a real side in the caches: the data set, where it lies, split, shape, pixel range, count.
    `read` 2: before it, a training run measured its training images under its test split's key
    (the test split's build was refused and fell back), so those entries are not reused."""
    return json.dumps({"dataset": dataset.get("_target_"), "root": str(root or dataset.get("root")), "split": split,
                       "shape": list(shape), "value_range": dataset.get("value_range"), "limit": limit, "read": 2},
                      sort_keys=True)


class Evaluator:
    """What the maintenance evaluates a training run with: judges of the fixed sample batch (a toy's
    modes, a classifier's classes), the held-out data the objective evaluates on, and the metrics of
    fresh samples (`draw`n with a seed of their own) with the rule that keeps best.pt
    (`best_rule` = [(value, higher is better), ...])."""

    def __init__(self, draw: Draw, seed: int, device: torch.device, judges: list[Callable] = (), held_out=None,
                 measurer: Measurer | None = None, best_rule: list[tuple[str, bool]] | None = None,
                 metric_tags: list[str] = ()):
        self.draw, self.seed, self.device, self.judges, self.held_out = draw, seed, device, list(judges), held_out
        self.measurer, self.best_rule, self.metric_tags = measurer, best_rule, list(metric_tags)

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
        generator = torch.Generator().manual_seed(stream_seed(self.seed, step))
        return self.measurer(*self.draw(networks, fixed, self.measurer.n, generator))[0]
