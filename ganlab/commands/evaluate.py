"""`ganlab eval run=DIR`: measure what a run learned (the machinery, shared with training, is
`metrics/measuring.py`).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganlab.training import run as runs
from ganlab.trust.build import allowed_prefixes
from ganlab.errors import ConfigError
from ganlab.metrics import available
from ganlab.metrics import nvidia_inception
from ganlab.metrics.inception import weights_at_hand
from ganlab.training.assembly import evaluation_data, toy_mixture
from ganlab.training.drawing import generate, with_sampling
from ganlab.metrics.measurer import REAL_LIMIT, Measurer, real_key
from ganlab.training.measuring import open_judge
from ganlab.metrics.registry import check_names
from ganlab.commands.options import RunOptions, option, read, takes
from ganlab.records.safe_files import check_writable, read_text, write_text_atomic
from ganlab.trust.stored import stored_dataset
from ganlab.training.runtime import pick_device

log = logging.getLogger("ganlab")
MIN_SAMPLES = 10  # generated or real: fewer cannot be measured (k-NN radii need k + 1 neighbours)
@dataclass
class EvalOptions(RunOptions):
    metrics: list | str = option("auto", "a list such as [fid,kid,classifier_fd]; auto: what can be computed here")
    classifier: str | None = option(None, "a classifier run (its folder or a checkpoint): the feature network of "
                                          "the classifier metrics")
    inception_weights: str | None = option(None, "a local copy of torch-fidelity's InceptionV3 weights (offline "
                                           "machines)")
    n: int | None = option(None, "generated samples; default 10,000, or 1,000 where the Inception network runs on a "
                                 "CPU (minutes, not an hour: KID compares at that n, FID is biased there); the toys: "
                                 "2,500 is the published protocol")
    inception_precision: str = option("auto", "the offline Inception pass: auto (bf16 on a CPU with bf16 units: 2.4x "
                                      "faster, FID within 0.2%), fp32 (NVIDIA's protocol exactly), bf16")
    split: str = option("test", "the real images to compare with: test (held out), train, ...")
    real_n: int | None = option(None, "at most this many real images; default 10,000 (the usual protocol: a test "
                                      "split of 10,000), or 1,000 where the Inception network runs on a CPU")
    dataset_root: str | None = option(None, "where the run's data set lies on this machine, if not where it trained")
    out: str | None = option(None, "where to write the JSON (default: RUN/eval.json)")


SUMMARY = "Measure a run's samples (FID, KID, IS, precision/recall, classifier and toy metrics); writes eval.json."
EXAMPLES = ["ganlab eval run=DIR classifier=CLASSIFIER_RUN/checkpoints/last.pt",
            "ganlab eval run=DIR metrics=[fid,kid] inception_weights=~/weights-inception-2015-12-05-6726825d.pth",
            "ganlab eval run=TOY_RUN n=2500", "ganlab eval run=DIR checkpoint=best metrics=[classifier_fd]"]


def main(args: list[str]) -> None:
    values = read("eval", args, EvalOptions, SUMMARY, EXAMPLES)
    if values is None:
        return
    result = evaluate(**values)
    width = max(len(k) for k in result["metrics"]) if result["metrics"] else 10
    print(f"{'metric':<{width}}  value")
    for key, value in result["metrics"].items():
        print(f"{key:<{width}}  {value:.6g}")
    print(f"ganlab: wrote {result['path']}")


@takes(EvalOptions)
def evaluate(run, checkpoint, ema, seed, device, allowed_targets, sampler, steps, guidance, eta, metrics, classifier,
             inception_weights, inception_precision, n, split, real_n, dataset_root, out) -> dict[str, Any]:
    """Measure `run` (the options: `EvalOptions`); writes eval.json and returns what it holds."""
    for key, value in (("n", n), ("real_n", real_n)):
        if value is not None and value < MIN_SAMPLES:
            raise ConfigError(f"{key}={value} is too few to measure (at least {MIN_SAMPLES}: the nearest-neighbour "
                              f"metrics need several points); the usual protocol is {key}=10000.")
    if isinstance(metrics, str) and metrics != "auto":
        metrics = [metrics]  # metrics=classifier_fd, without brackets
    if isinstance(metrics, list) and not metrics:
        raise ConfigError("metrics=[] names no metric; list some, e.g. metrics=[classifier_fd,classifier], or leave "
                          "metrics out (auto: what can be computed here).")
    device = pick_device(device)
    nvidia_inception.uses_bfloat16(device, inception_precision)  # a misspelt precision: refused before any work
    prefixes = allowed_prefixes(allowed_targets or [])  # the user's list, never the checkpoint's
    opened = runs.open(run, checkpoint, device, prefixes)
    if opened.objective.sampler is None:
        raise ConfigError(f"run={run} trained a {type(opened.objective).__name__}, which does not generate; "
                          "measure a GAN or VAE run.")
    sampling = with_sampling(opened, sampler, steps, guidance, eta)  # eval.json records it beside the numbers
    # a stored data set never downloads nor writes a cache where the run says: only where you say
    dataset = stored_dataset(opened.config["dataset"], os.environ.get("GANLAB_DATA", "data"), verb="eval")
    mixture = toy_mixture(dataset, opened.facts, prefixes)
    judge = open_judge(classifier, opened.facts, device, prefixes, "classifier") if classifier else None
    images = not opened.facts.points  # the Inception metrics need images, not the toys' points
    # the offline network's features cost minutes per 1,000 images on a CPU: auto takes them there only
    # when nothing else can be measured (named metrics always run)
    offline = images and nvidia_inception.at_hand() and (device.type == "cuda" or judge is None)
    names = available(judge is not None, images and weights_at_hand(inception_weights), mixture is not None,
                      judge is not None and judge.per_channel, has_features=offline) \
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
    n, real_n = protocol_sizes(names, device, n, real_n)
    path = Path(out) if out else opened.path.parent.parent / "eval.json"
    check_writable(path.parent, f"out={out}" if out else f"run={run}",  # before minutes of measuring, not after
                   "pass out= a folder you can write." if out else
                   "the run folder is read-only here: pass out=PATH to write eval.json elsewhere.")
    measure = Measurer(names, n, device, None if mixture else evaluation_data(dataset, split, prefixes, dataset_root),
                       real_key=real_key(dataset, split, dataset_root, opened.facts.shape, real_n), judge=judge,
                       inception_weights=inception_weights, mixture=mixture, real_limit=real_n,
                       inception_precision=inception_precision)
    values, protocol = measure(*generate(opened, opened.sampling_networks(ema), n, torch.Generator().manual_seed(seed)))
    result = {"metrics": values, "checkpoint": str(opened.path), "step": opened.step,
              "protocol": {"generated_count": n, "seed": seed, "ema": bool(opened.ema) and ema != False,  # noqa: E712
                           "real_split": None if mixture else split,
                           "feature_network": judge.identity if judge else None,
                           **({"sampling": sampling} if sampling else {}), **protocol}}
    write_text_atomic(path, json.dumps(merged_with_earlier(path, result), indent=2) + "\n")
    result["path"] = path
    return result


CPU_INCEPTION_N = 1_000  # images a side where the Inception network runs on a CPU (40-94 s per 1,000 here)


def protocol_sizes(names: list[str], device, n: int | None, real_n: int | None) -> tuple[int, int]:
    """The generated and real counts: as typed, else the published 10,000, else (the Inception
    network on a CPU) 1,000 a side, said in the log: a number in minutes, with KID to compare by."""
    from ganlab.metrics.registry import METRICS

    inception_on_cpu = device.type != "cuda" and any(METRICS[name].needs.startswith("inception") for name in names)
    default = CPU_INCEPTION_N if inception_on_cpu else REAL_LIMIT
    if inception_on_cpu and (n is None or real_n is None):
        log.info("eval: the Inception network runs on this CPU, so the default protocol is %s generated and %s real "
                 "images (a few minutes); KID is unbiased at this n, FID is not (compare FIDs only at equal n). "
                 "n=10000 real_n=10000 gives the published protocol.", f"{n or default:,}", f"{real_n or default:,}")
    return (n if n is not None else default), (real_n if real_n is not None else default)


def merged_with_earlier(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """eval.json keeps what earlier evaluations measured: metrics are merged by name (this one's
    values win), and `protocols` says, per metric, which checkpoint, step and protocol gave it."""
    try:  # a FIFO, a link or a device planted as eval.json is refused (read_text), never read
        earlier = json.loads(read_text(path, limit=2**20)) if path.exists() or path.is_symlink() else {}
    except (ValueError, RecursionError):
        earlier = {}
    earlier = earlier if isinstance(earlier, dict) else {}
    mine = {"checkpoint": result["checkpoint"], "step": result["step"], **result["protocol"]}
    protocols = {k: v for k, v in (earlier.get("protocols") or {}).items() if isinstance(v, dict)}
    for name in earlier.get("metrics") or {}:
        protocols.setdefault(name, {"checkpoint": earlier.get("checkpoint"), "step": earlier.get("step"),
                                    **(earlier.get("protocol") or {})})
    protocols.update({name: mine for name in result["metrics"]})
    return {**result, "metrics": {**(earlier.get("metrics") or {}), **result["metrics"]}, "protocols": protocols}
