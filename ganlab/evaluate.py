"""`ganlab eval run=DIR`: measure what a run learned, and the same measurement during training.

    ganlab eval run=DIR classifier=outputs/<classifier run>/checkpoints/last.pt     # offline metrics
    ganlab eval run=DIR metrics=[fid,kid,is,pr] inception_weights=PATH n=10000        # the paper numbers

It writes `eval.json` in the run (values plus the protocol: checkpoint and step, real split and
count, generated count, feature network and its checksum) and prints a table. Without
`metrics=`, it computes what it can here and now: the classifier metrics when `classifier=` is
given, the toy metrics on the 2-d toys, the Inception metrics when their weights are at hand.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

from ganlab import run as runs
from ganlab.build import allowed_prefixes, build
from ganlab.cache import file_sha256
from ganlab.errors import ConfigError
from ganlab.metrics import Inputs, available, run_metrics
from ganlab.metrics.classifier import Judge
from ganlab.metrics.inception import weights_at_hand
from ganlab.metrics.registry import check_names
from ganlab.options import CHECKPOINT, DRAWING, Option, read
from ganlab.plots import to_uint8
from ganlab.rundir import write_text_atomic
from ganlab.runtime import pick_device, stream_seed
from ganlab.sample import generate

log = logging.getLogger("ganlab")
REAL_LIMIT = 10_000  # real images compared with (the usual FID protocol: a test split of 10k)
MIN_SAMPLES = 10  # generated or real: fewer cannot be measured (k-NN radii need k + 1 neighbours)
OPTIONS = [
    Option("run", None, "the run directory (or a checkpoint file) to measure"),
    CHECKPOINT,
    Option("metrics", "auto", "a list such as [fid,kid,classifier_fd]; auto: what can be computed here", (list, str)),
    Option("classifier", None, "a classifier run's checkpoint: the feature network of the classifier metrics"),
    Option("inception_weights", None, "a local copy of torch-fidelity's InceptionV3 weights (offline machines)"),
    Option("n", 10000, "generated samples (the toys: 2,500 is the published protocol)", int),
    Option("split", "test", "the real images to compare with: test (held out), train, ..."),
    Option("real_n", 10000, "at most this many real images (the usual protocol: a 10,000-image test split)", int),
    Option("dataset_root", None, "where the run's data set lies on this machine, if not where it trained"),
    *DRAWING,
    Option("out", None, "where to write the JSON (default: RUN/eval.json)"),
]
SUMMARY = "Measure a run's samples (FID, KID, IS, precision/recall, classifier and toy metrics); writes eval.json."
EXAMPLES = ["ganlab eval run=DIR classifier=CLASSIFIER_RUN/checkpoints/last.pt",
            "ganlab eval run=DIR metrics=[fid,kid] inception_weights=~/weights-inception-2015-12-05-6726825d.pth",
            "ganlab eval run=TOY_RUN n=2500", "ganlab eval run=DIR checkpoint=best metrics=[classifier_fd]"]


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
    network, value_range = runs.open_classifier(path, key, facts, device, prefixes)
    return Judge(network, value_range, f"{Path(path).name} sha256:{file_sha256(path)[:16]}")


def held_out_data(dataset: dict[str, Any], split: str, prefixes, root: str | None = None):
    """A builder of the run's data set on `split` (None when it is a toy or has no such split)."""
    node = {**dataset, "split": split} if "split" in dataset else dict(dataset)
    if root:
        node["root"] = root
    from omegaconf import OmegaConf

    def load():
        try:
            return build(OmegaConf.create(node), f"dataset (split={split})", prefixes)
        except ConfigError as exc:
            raise ConfigError(f"the run's real images (split={split}) could not be read on this machine: {exc} Pass "
                              "dataset_root=PATH (the folder that holds them here) to ganlab eval.") from None

    return load


def main(args: list[str]) -> None:
    values = read("eval", args, OPTIONS, SUMMARY, EXAMPLES)
    if values is None:
        return
    result = evaluate(**values)
    width = max(len(k) for k in result["metrics"]) if result["metrics"] else 10
    print(f"{'metric':<{width}}  value")
    for key, value in result["metrics"].items():
        print(f"{key:<{width}}  {value:.6g}")
    print(f"ganlab: wrote {result['path']}")


def evaluate(run: str, checkpoint: str = "last", metrics: list[str] | str = "auto", classifier: str | None = None,
             inception_weights: str | None = None, n: int = 10000, split: str = "test", real_n: int = REAL_LIMIT,
             dataset_root: str | None = None, ema: str | bool = "auto", seed: int = 0, device: str = "auto",
             out: str | None = None, allowed_targets: list | None = None) -> dict[str, Any]:
    for key, value in (("n", n), ("real_n", real_n)):
        if value < MIN_SAMPLES:
            raise ConfigError(f"{key}={value} is too few to measure (at least {MIN_SAMPLES}: the nearest-neighbour "
                              f"metrics need several points); the usual protocol is {key}=10000.")
    if isinstance(metrics, str) and metrics != "auto":
        metrics = [metrics]  # metrics=classifier_fd, without brackets
    if isinstance(metrics, list) and not metrics:
        raise ConfigError("metrics=[] names no metric; list some, e.g. metrics=[classifier_fd,classifier], or leave "
                          "metrics out (auto: what can be computed here).")
    if classifier and Path(classifier).expanduser().is_dir():
        classifier = str(runs.checkpoint_path(classifier, "last", "classifier"))  # a classifier run's folder
    device = pick_device(device)
    prefixes = allowed_prefixes(allowed_targets or [])  # the user's list, never the checkpoint's
    opened = runs.open(run, checkpoint, device, prefixes)
    if opened.objective.sampler is None:
        raise ConfigError(f"run={run} trained a {type(opened.objective).__name__}, which does not generate; "
                          "measure a GAN or VAE run.")
    dataset = opened.config["dataset"]
    mixture = build_toy(dataset, prefixes)
    judge = open_judge(classifier, opened.facts, device, prefixes, "classifier") if classifier else None
    names = available(judge is not None, weights_at_hand(inception_weights), mixture is not None) \
        if metrics == "auto" else list(metrics)
    check_names(names, "metrics")
    if metrics == "auto" and not opened.objective.conditional:
        names = [name for name in names if name != "class_accuracy"]  # what applies to this run
    if "class_accuracy" in names and not opened.objective.conditional:
        raise ConfigError(f"metrics=[class_accuracy] measures whether samples asked for class k are classified as k; "
                          f"run={run} is not class-conditional (model=cgan or acgan). Drop class_accuracy.")
    if not names:
        raise ConfigError("no metric can be computed here: give classifier=PATH (a classifier run's checkpoint) "
                          "for the offline metrics, or inception_weights=PATH for FID/KID/IS/precision-recall.")
    measure = Measurer(names, n, device, None if mixture else held_out_data(dataset, split, prefixes, dataset_root),
                       real_key=real_key(dataset, split, dataset_root, opened.facts.shape, real_n), judge=judge,
                       inception_weights=inception_weights, mixture=mixture, real_limit=real_n)
    values, protocol = measure(opened, opened.sampling_networks(ema), seed)
    result = {"metrics": values, "checkpoint": str(opened.path), "step": opened.step,
              "protocol": {"generated_count": n, "seed": seed, "ema": bool(opened.ema) and ema != False,  # noqa: E712
                           "real_split": None if mixture else split,
                           "feature_network": judge.identity if judge else None, **protocol}}
    path = Path(out) if out else opened.path.parent.parent / "eval.json"
    write_text_atomic(path, json.dumps(merged_with_earlier(path, result), indent=2) + "\n")
    result["path"] = path
    return result


def merged_with_earlier(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """eval.json keeps what earlier evaluations measured: metrics are merged by name (this one's
    values win), and `protocols` says, per metric, which checkpoint, step and protocol gave it."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        earlier = {}
    earlier = earlier if isinstance(earlier, dict) else {}
    mine = {"checkpoint": result["checkpoint"], "step": result["step"], **result["protocol"]}
    protocols = {k: v for k, v in (earlier.get("protocols") or {}).items() if isinstance(v, dict)}
    for name in earlier.get("metrics") or {}:
        protocols.setdefault(name, {"checkpoint": earlier.get("checkpoint"), "step": earlier.get("step"),
                                    **(earlier.get("protocol") or {})})
    protocols.update({name: mine for name in result["metrics"]})
    return {**result, "metrics": {**(earlier.get("metrics") or {}), **result["metrics"]}, "protocols": protocols}


def build_toy(dataset: dict[str, Any], prefixes):
    """The 2-d mixture a toy run trained on (it has no files), else None."""
    if not str(dataset.get("_target_", "")).startswith("ganlab.data.toys."):
        return None
    from omegaconf import OmegaConf

    return build(OmegaConf.create(dataset), "dataset", prefixes)


def real_key(dataset: dict[str, Any], split: str, root: str | None, shape, limit: int) -> str:
    """What names a real side in the caches: the data set, where it lies, split, shape, pixel range, count."""
    return json.dumps({"dataset": dataset.get("_target_"), "root": str(root or dataset.get("root")), "split": split,
                       "shape": list(shape), "value_range": dataset.get("value_range"), "limit": limit},
                      sort_keys=True)


def training_metrics(settings: dict[str, Any], run: runs.Run, data, real_data: Callable[[], Any],
                     device: torch.device, dataset, judge: Judge | None) -> tuple[Callable | None, tuple[str, bool] | None, list[str]]:
    """What `schedule.eval_every` measures during training: (measure(networks, fixed, step) -> values,
    (the value that keeps best.pt, whether higher is better), the TensorBoard tags), from `metrics.*`."""
    from dataclasses import replace

    from ganlab.metrics.registry import METRICS, direction

    mixture = data if hasattr(data, "mode_coverage") else None
    names = settings.get("names") or []
    if names == "auto":
        names = available(judge is not None, False, mixture is not None)
    if not names or run.objective.sampler is None:
        return None, None, []
    split = "test" if dataset.get("split") == "train" else dataset.get("split")  # what _held_out gives
    measurer = Measurer(list(names), int(settings.get("n") or 2000), device, None if mixture else real_data,
                        real_key=real_key(dataset, split, None, data.facts.shape, REAL_LIMIT),
                        judge=judge, inception_weights=settings.get("inception_weights"), mixture=mixture)
    values = [k for n in names for k in METRICS[n].higher_is_better]
    key = settings.get("best")
    if key and key not in values:
        raise ConfigError(f"metrics.best={key} is not measured; the metrics measured give {', '.join(values)}.")
    # metrics.best decides alone; by default the first metric's values in order (ties broken by the next)
    rule = [(key, direction(key))] if key else list(METRICS[names[0]].higher_is_better.items())
    seed = int(run.config.get("seed") or 0)

    def measure(networks, fixed, step: int) -> dict[str, float]:
        return measurer(replace(run, fixed=fixed), networks, stream_seed(seed, step))[0]

    return measure, rule, [f"metrics/{v}" for v in values]
