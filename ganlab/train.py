"""`train(cfg, run_dir)`: the one place that reads the whole config. It builds and wires, nothing else."""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig

import ganlab
from ganlab import checkpoint, run as runs
from ganlab.build import allowed_prefixes, build, check_targets, to_plain
from ganlab.checks import check_known_keys, check_top_level, check_values, config_changes
from ganlab.errors import ConfigError
from ganlab.logging import NullLogger, RunLogger
from ganlab.loop import Loop
from ganlab.rundir import RunDirLock, refuse_links, write_text_atomic
from ganlab.runtime import Runtime, build_runtime, pick_device, unwrap
from ganlab.metrics.judges import ClassifierMetrics
from ganlab.metrics.measuring import open_judge, training_metrics
from ganlab.metrics.registry import known_direction
from ganlab.schedule import Schedule
from ganlab.models.blocks import count_parameters

log = logging.getLogger("ganlab")


def train(cfg: DictConfig, run_dir: Path | str, overrides: list[str] | None = None,
          on_accept: Callable[[], None] | None = None, choices: dict[str, str] | None = None) -> Loop:
    """Train the configured objective, writing everything under `run_dir`; returns the finished loop.

    `overrides`: the command line it came from (stored in checkpoints, shown in HParams with the
    config groups' `choices`, e.g. {"model": "dcgan", "loss": "bce"}). Nothing is
    written into `run_dir` until every check has passed and the networks are built (and restored);
    then `on_accept()` runs (the CLI writes `.hydra/` and starts train.log) and training begins."""
    run_dir = Path(run_dir)
    # --- check everything that can be checked before any work -----------------------------
    check_top_level(cfg)
    prefixes = allowed_prefixes(cfg.get("allowed_targets") or [])
    _check_loss_fits(cfg, prefixes)
    check_targets(cfg, prefixes)  # on the resolved config: exactly what will be built
    check_known_keys(cfg)
    check_values(cfg)
    runtime = build_runtime(pick_device(str(cfg.device)), **(to_plain(cfg.get("runtime")) or {}))
    # one process per run directory (under torchrun: the main one holds it for all)
    # one process per run directory (under torchrun: the main one holds it for all)
    lock = RunDirLock(run_dir, announce=False) if runtime.is_main else None
    try:
        with lock or contextlib.nullcontext():
            return _train_locked(cfg, run_dir, prefixes, runtime, overrides or [], lambda: _accept(lock, on_accept),
                                 choices or {})
    except (OSError, RuntimeError) as exc:  # a full disk anywhere (start-up included): one paragraph, exit 4
        if not checkpoint.is_disk_full(exc):
            raise
        raise checkpoint.disk_full(Path(getattr(exc, "filename", None) or run_dir / "checkpoints")) from None


def _accept(lock: RunDirLock | None, on_accept: Callable[[], None] | None) -> None:
    """The command is accepted: from here on the run folder is written."""
    if lock is None:
        return
    lock.announce()
    if on_accept is not None:
        on_accept()
    removed = checkpoint.remove_stale_temporaries(lock.run_dir / "checkpoints")
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted checkpoint write", len(removed))


def _train_locked(cfg: DictConfig, run_dir: Path, prefixes, runtime: Runtime, overrides: list[str],
                  accept: Callable[[], None], choices: dict[str, str]) -> Loop:
    device = runtime.device
    if runtime.is_main:
        refuse_links(run_dir)  # a shared run folder's planted links would redirect every write
    resume_state, resumed = _resume_state(cfg, run_dir) if runtime.is_main else (None, False)
    resume_state, resumed = runtime.broadcast((resume_state, resumed))  # rank 0 decides, all follow
    if resume_state:
        _check_same_seed(resume_state, cfg)

    # --- build -----------------------------------------------------------------------------
    runtime.apply_global_settings(int(cfg.seed))
    config = to_plain(cfg)  # the resolved config as plain values: what is built, stored and compared
    objective = runs.objective_class(config["model"]["objective"].get("_target_"), prefixes)
    dataset = _training_split(cfg.dataset, objective.wants_evaluation)
    data = build(dataset, "dataset", prefixes)
    value_range = getattr(data, "value_range", "tanh")
    run = runs.build(config, data.facts, value_range, device, prefixes, overrides=overrides,
                     ema=float(cfg.schedule.ema_decay) > 0 or bool(cfg.schedule.get("ema_kimg")))
    run.images = _count(data)
    _check_value_range(run.objective, value_range)
    for name, net in run.networks.items():  # SyncBatchNorm, channels_last, compile: the objective calls these
        run.objective.networks[name] = runtime.prepare(net)
    optimizers = {name: runtime.fuse(_build_optimizer(cfg.optimizer, name, net, prefixes), net.parameters())
                  for name, net in run.networks.items()}
    schedule = _schedule(cfg.schedule, data.batches_per_epoch, run.objective.batches_per_step())
    run.steps_per_epoch = data.batches_per_epoch / run.objective.batches_per_step()
    metrics = to_plain(cfg.get("metrics")) or {}
    held_out = _held_out(dataset, data, prefixes) if run.objective.wants_evaluation else None
    judge = open_judge(str(metrics["classifier"]), data.facts, device, prefixes, "metrics.classifier") \
        if metrics.get("classifier") else None
    diagnose = _diagnostics(data, value_range, judge)
    measure, best, metric_tags = training_metrics(  # the real side is loaded on the first measurement
        metrics, run, data, lambda: held_out or _held_out(dataset, data, prefixes), device, to_plain(dataset), judge)
    loop = Loop(run, optimizers, data.batches(device, int(cfg.seed)), schedule, NullLogger(run_dir), run_dir,
                runtime, batch_size=data.batch_size, diagnose=diagnose,
                evaluation_batches=(lambda: held_out.ordered_batches(device)) if held_out else None,
                measure=measure, best=best)
    if resume_state:
        _restore(loop, resume_state, config)
        _warn_if_other_data(resume_state, data)

    # --- accepted: the run folder is written from here on -----------------------------------
    accept()
    if runtime.is_main:
        _write_summary({name: unwrap(net) for name, net in run.networks.items()}, run_dir)  # the run's first file
    start = int(resume_state["step"]) if resume_state else 0
    logger = RunLogger(run_dir, schedule.steps, start_step=start, progress=bool(cfg.get("progress", True)),
                       resumed=resumed) if runtime.is_main else NullLogger(run_dir)
    phases = [phase.name for phase in run.objective.phases]
    logger.describe({**(choices or {}), **_override_values(overrides)}, phases,
                    {tag: known_direction(tag.split("/", 1)[1]) for tag in metric_tags})
    loop.logger = logger
    ganlab.TRAINING_IN = run_dir  # a signal from now on finds checkpoints to continue from
    try:
        if resume_state:
            log.info("resumed from step %d of %d", start, schedule.steps)
        loop.run()
    finally:
        logger.close()
    return loop


def _check_loss_fits(cfg: DictConfig, prefixes) -> None:
    """A GAN objective needs an adversarial loss; a VAE's or classifier's would silently be ignored."""
    reads_loss = runs.objective_class(cfg.model.objective.get("_target_"), prefixes).needs_adversarial_loss
    if cfg.get("loss") and not reads_loss:
        raise ConfigError("a loss was chosen, but this model trains its own objective and ignores it (VAEs and "
                          "classifiers set theirs under model.objective); drop the loss= override.")
    if reads_loss and not cfg.get("loss"):
        raise ConfigError("loss=none, but this model is a GAN and needs an adversarial loss; pick one of "
                          "bce, minimax, wgan, wgan_gp, lsgan, hinge (e.g. loss=bce).")


def _resume_state(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, Any] | None, bool]:
    """(the checkpoint to continue from, whether run_dir holds an earlier attempt of this run).

    resume=true takes the newest intact checkpoint (last.pt, else the newest good step_*.pt); a run
    killed before its first checkpoint starts again from step 0 with a clean log. A new run may not
    start in a folder that holds one already: nothing written is overwritten. resume=auto is true
    when run_dir holds a run and false otherwise (what a resubmitted cluster job needs).
    """
    resume, ckpt_dir = cfg.resume, run_dir / "checkpoints"
    earlier = (run_dir / "metrics.jsonl").exists() or (run_dir / "model_summary.txt").exists()
    holds_run = bool(checkpoint.periodic(ckpt_dir)) or (ckpt_dir / checkpoint.LAST).exists() or earlier
    if resume == "auto":  # a job that may be resubmitted (Slurm preemption): continue if it ran before
        resume = holds_run
    if resume in (False, None, "false", ""):
        if holds_run:
            raise ConfigError(f"{run_dir} already holds a run. Continue it with resume=true, or pick another "
                              "hydra.run.dir for a new run (nothing already written is overwritten).")
        return None, False
    if resume not in (True, "true"):
        return checkpoint.load(Path(str(resume))), False
    latest = checkpoint.load_latest(ckpt_dir)
    if latest is not None:
        log.info("resume: continuing from %s", latest[1])
        return latest[0], True
    log.warning("resume: %s has no checkpoint yet (stopped before its first one); starting from step 0 with a "
                "clean log", run_dir)
    return None, True


def _restore(loop: Loop, state: dict[str, Any], config: dict[str, Any]) -> None:
    """Load the checkpoint into the freshly built loop; what the user typed now wins (and is logged)."""
    changes = config_changes(state.get("config") or {}, config)
    try:
        loop.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()) or "none in the config"
        raise ConfigError(f"resume: the checkpoint does not fit the configured model or optimizer ({first}). "
                          f"Differences from the run's config: {listed}. Resume with the run's own model and "
                          "data settings, or start a new run.") from None
    for key, (old, new) in changes.items():
        log.info("resume: %s %r -> %r (as typed now)", key, old, new)


def _check_same_seed(state: dict[str, Any], cfg: DictConfig) -> None:
    stored = (state.get("config") or {}).get("seed")
    if stored is not None and int(cfg.seed) != int(stored):
        raise ConfigError(f"resume: seed={cfg.seed} differs from the run's seed={stored}; a resumed run continues its "
                          "own random stream. Start a new run for another seed.")


def _warn_if_other_data(state: dict[str, Any], data) -> None:
    """Another dataset.root on resume may be other images: say so with both counts."""
    before, now = state.get("images"), _count(data)
    if before is not None and now is not None and before != now:
        old_root = ((state.get("config") or {}).get("dataset") or {}).get("root")
        log.warning("resume: the data set now holds %s images, but the run trained on %s (dataset.root was %s); "
                    "the run continues on the data found now", f"{now:,}", f"{before:,}", old_root)


def _count(data) -> int | None:
    try:
        return len(data)
    except TypeError:  # drawn on the fly (the 2-d toys)
        return None


def _build_optimizer(node: DictConfig, network: str, module: torch.nn.Module, prefixes) -> torch.optim.Optimizer:
    """The shared optimizer settings, updated by `per_network.<network>` when given."""
    own = (node.get("per_network") or {}).get(network) or {}
    settings = {k: v for k, v in node.items() if k != "per_network"}
    settings.update(own)
    try:
        return build(DictConfig(settings), f"optimizer ({network})", prefixes, module.parameters())
    except ConfigError as exc:  # torch's text names the value, not the key: name the key
        cause = str(exc).split("): ", 1)[-1]
        key = next((k for k in settings if not k.startswith("_") and _OPTIMIZER_WORDS.get(k, k) in cause.lower()), None)
        if key is None:
            raise
        where = f"optimizer.per_network.{network}.{key}" if key in own else f"optimizer.{key}"
        example = {"betas": "[0.5,0.999]", "momentum": "0.9", "lr": "2e-4", "eps": "1e-8"}.get(key, "<value>")
        raise ConfigError(f"{where}={settings[key]!r} is not valid for {settings['_target_']} ({cause.rstrip('.')}); "
                          f"set e.g. {where}={example}.") from None


# how torch's optimizer messages name each setting
_OPTIMIZER_WORDS = {"betas": "beta", "lr": "learning rate", "eps": "epsilon", "weight_decay": "weight_decay",
                    "momentum": "momentum", "alpha": "alpha", "dampening": "dampening"}


def _schedule(node: DictConfig, batches_per_epoch: int, batches_per_step: int) -> Schedule:
    settings = {f.name: to_plain(node[f.name]) for f in fields(Schedule) if f.name in node}
    if node.get("epochs"):
        settings["steps"] = max(1, math.ceil(node.epochs * batches_per_epoch / batches_per_step))
    if settings.get("eval_every") is None:  # default: once per epoch
        settings["eval_every"] = max(1, batches_per_epoch // batches_per_step)
    return Schedule(**settings)


def _training_split(node: DictConfig, evaluates: bool) -> DictConfig:
    """Held-out data must be held out: a model that is evaluated on the test split (VAEs,
    classifiers) trains on split=train when the data set's default is split=all."""
    if evaluates and node.get("split") == "all":
        log.info("dataset.split=all would train on the test images too: training on split=train, evaluating "
                 "on the held-out split=test")
        return DictConfig({**node, "split": "train"})
    return node


def _diagnostics(data, value_range: str, judge):
    """Measures of the fixed samples at each sample step: the data set's own (modes of the toys) and
    the classifier's (`metrics.classifier`)."""
    judges = [getattr(data, "mode_coverage", None)]
    if judge is not None:
        judges.append(ClassifierMetrics(judge.network, rescale=value_range == "tanh" and judge.value_range == "unit"))
    judges = [j for j in judges if j is not None]
    if not judges:
        return None
    return lambda samples: {k: v for j in judges for k, v in j(samples).items()}


def _check_value_range(objective, given: str) -> None:
    wanted = objective.value_range
    if wanted and given and wanted != given:
        raise ConfigError(f"dataset.value_range={given} but this model needs {wanted} "
                          f"({'[0, 1]' if wanted == 'unit' else '[-1, 1]'} pixels); set dataset.value_range={wanted}.")


def _held_out(node: DictConfig, data, prefixes):
    """The test split for evaluation: the same data set with split=test, when it has one."""
    if node.get("split") in (None, "test", "all"):
        if node.get("split") is not None:
            log.info("dataset.split=%s: nothing is held out, so evaluation and metrics compare with the training "
                     "images (dataset.split=train holds out the test split)", node.split)
        else:
            log.info("evaluation uses the training data: dataset %s has no test split", node._target_)
        return data
    try:
        return build(DictConfig({**node, "split": "test"}), "dataset (test split)", prefixes)
    except ConfigError as exc:
        log.warning("no test split (%s); evaluation uses the training data", str(exc).split(";")[0])
        return data


def _override_values(overrides: list[str]) -> dict[str, Any]:
    """The command-line overrides as {key: value} (HParams show them)."""
    pairs = (line.split("=", 1) for line in overrides if "=" in line and not line.startswith("hydra"))
    return {key.lstrip("+~"): value for key, value in pairs}


def _write_summary(networks: dict[str, torch.nn.Module], run_dir: Path) -> None:
    """One line per network with its parameter count (printed and saved), then the architectures."""
    lines = [f"{name:<14} {count_parameters(net):>12,} params  ({type(net).__name__})" for name, net in networks.items()]
    for line in lines:
        log.info(line)
    text = "\n".join(lines) + "\n\n" + "\n\n".join(f"{name}: {net}" for name, net in networks.items()) + "\n"
    write_text_atomic(run_dir / "model_summary.txt", text)
