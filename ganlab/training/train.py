"""`train(cfg, run_dir)`: the one place that reads the whole config. It builds and wires, nothing else:

    run         = run.build(...)                         networks, objective, EMA copies, fixed inputs
    step        = Step(objective, optimizers, batches)   the phases, learning rates, adaptive rule, EMA
    maintenance = Maintenance(state, evaluator)          log, grids, metrics, best.pt, the finite guard
    loop.train_steps(step, maintenance, state)           counts steps
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig

from ganlab.records import checkpoint
from ganlab.training import run as runs
from ganlab.trust.build import allowed_prefixes, build, check_targets, to_plain
from ganlab.trust.checks import check_known_keys, check_top_level, check_values
from ganlab.data.memory import limited, split_limit
from ganlab.errors import ConfigError, RunFault
from ganlab.records.logging import NullLogger, RunLogger, read_metrics
from ganlab.training.loop import train_steps
from ganlab.training.maintenance import Maintenance
from ganlab.metrics.measuring import Evaluator, open_judge, training_evaluator
from ganlab.metrics.registry import known_direction
from ganlab.models.blocks import count_parameters
from ganlab.training.replay import (check_same_seed, holds_run, new_run_id, override_values, read_run_id, restore, resume_state,
                           write_run_id)
from ganlab.records.rundir import RunDirLock, refuse_links
from ganlab.records.safe_files import refuse_link_folder, write_text_atomic
from ganlab.training.runtime import Runtime, build_runtime, pick_device, unwrap
from ganlab.training.schedule import Schedule, schedule_from
from ganlab.training.step import Step

log = logging.getLogger("ganlab")


@dataclass
class Training:
    """A wired training run, as `train` returns it: the run, its step, its maintenance, and the
    state a checkpoint holds."""

    run: runs.Run
    state: runs.TrainingState
    step_runner: Step
    maintenance: Maintenance
    evaluator: Evaluator
    schedule: Schedule
    runtime: Runtime
    resumed: bool = False  # run_dir held an earlier attempt of this run

    def train(self, steps: int | None = None, started: float | None = None) -> int:
        """Train up to step `steps` (default: the schedule's); returns the last step done. `started`:
        when start-up began (perf_counter), for the log line of the time to the first step."""
        return train_steps(self.step_runner, self.maintenance, self.state, self.runtime,
                           self.schedule.steps if steps is None else steps, started)

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def networks(self) -> dict[str, torch.nn.Module]:
        return self.run.networks

    @property
    def objective(self):
        return self.run.objective

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.state.optimizers

    @property
    def batches(self):
        return self.state.batches

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def best(self) -> dict[str, Any] | None:
        return self.maintenance.best

    @property
    def best_higher(self) -> bool | None:
        """Whether a higher value of the metric that keeps best.pt is better (None: no metric)."""
        rule = self.evaluator.best_rule
        return rule[0][1] if rule else None


def train(cfg: DictConfig, run_dir: Path | str, overrides: list[str] | None = None,
          on_accept: Callable[[], None] | None = None, choices: dict[str, str] | None = None,
          started: float | None = None, on_begin: Callable[[], None] | None = None) -> Training:
    """Train the configured objective, writing everything under `run_dir`; returns the finished run.

    `overrides`: the command line it came from (stored in checkpoints, shown in HParams with the
    config groups' `choices`, e.g. {"model": "dcgan", "loss": "bce"}). Nothing is
    written into `run_dir` until every check has passed and the networks are built (and restored);
    then `on_accept()` runs (the CLI writes `.hydra/` and starts train.log) and training begins
    (`on_begin()`: from then on checkpoints exist to continue from). `started`: when start-up began
    (perf_counter; default now), for the time to the first step."""
    run_dir = Path(run_dir)
    started = time.perf_counter() if started is None else started
    # --- check everything that can be checked before any work -----------------------------
    check_top_level(cfg)
    prefixes = allowed_prefixes(cfg.get("allowed_targets") or [])
    _check_loss_fits(cfg, prefixes)
    check_known_keys(cfg)
    check_values(cfg)  # sizes and rates by key name, where the user typed them
    check_targets(cfg, prefixes)  # on the resolved config: exactly what will be built
    config = to_plain(cfg)  # the resolved config as plain values: what is built, stored and compared
    runtime = build_runtime(pick_device(str(config["device"])), **(config.get("runtime") or {}))
    # one process per run directory (under torchrun: the main one holds it for all)
    if runtime.is_main:
        refuse_link_folder(run_dir, "hydra.run.dir")  # before the lock creates anything through it
    lock = RunDirLock(run_dir, announce=False) if runtime.is_main else None
    try:
        with lock or contextlib.nullcontext():
            training = _build(config, run_dir, prefixes, runtime, overrides or [])
            training.run.choices = dict(choices or {})
            _accept(lock, on_accept)
            if lock is not None:
                write_run_id(run_dir, training.run.run_id)
            _start(training, config, run_dir, overrides or [], choices or {}, started, on_begin)
            return training
    except (OSError, RuntimeError, MemoryError) as exc:  # a full disk or memory (start-up included): exit 4
        if _is_out_of_memory(exc):
            raise RunFault(_out_of_memory(exc, config, run_dir)) from None
        if not checkpoint.is_disk_full(exc):
            raise
        where = getattr(exc, "filename", None)
        if not holds_run(run_dir):
            raise RunFault(f"could not write {where or run_dir}: the disk is full. Nothing was trained yet (the run has "
                           "no checkpoint); free some space and start it again.") from None
        raise checkpoint.disk_full(Path(where or run_dir / "checkpoints")) from None


def _resume_setting(config: dict[str, Any]) -> Any:
    """`resume` (false/true/auto/PATH), or `resume_from=PATH`, the warm start's own key."""
    warm = config.get("resume_from")
    if warm in (None, "", False):
        return config["resume"]
    if config["resume"] not in (False, "false", None, ""):
        raise ConfigError(f"resume={config['resume']} and resume_from={warm} are both set; resume continues this "
                          "folder's run, resume_from starts a new run from another checkpoint. Keep one.")
    return str(warm)


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "out of memory" in str(exc)))


def _out_of_memory(exc: BaseException, config: dict[str, Any], run_dir: Path) -> str:
    """One paragraph: what ran out, the batch size and resolution that asked for it, and the fix."""
    import re

    asked = re.search(r"allocate (\d+) bytes", str(exc))
    amount = f" ({int(asked.group(1)) / 2**30:.1f} GiB asked for at once)" if asked else ""
    dataset = config.get("dataset") or {}
    saved = checkpoint.load_latest(run_dir / "checkpoints") if (run_dir / "checkpoints").is_dir() else None
    after = (f" The newest checkpoint (step {saved[0]['step']}) is kept; continue with resume=true and the smaller "
             "setting." if saved else " Nothing was trained yet; start again with the smaller setting.")
    return (f"out of {'GPU ' if 'CUDA' in str(exc) else ''}memory{amount} with dataset.batch_size="
            f"{dataset.get('batch_size')} at dataset.resolution={dataset.get('resolution')}: lower "
            "dataset.batch_size (or the resolution, or the networks' width)." + after)


def _accept(lock: RunDirLock | None, on_accept: Callable[[], None] | None) -> None:
    """The command is accepted: from here on the run folder is written."""
    if lock is None:
        return
    lock.announce()
    if on_accept is not None:
        on_accept()
    removed = [path for folder in ("", ".hydra", "checkpoints", "samples")
               for path in checkpoint.remove_stale_temporaries(lock.run_dir / folder)]
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted write", len(removed))


def _build(config: dict[str, Any], run_dir: Path, prefixes, runtime: Runtime, overrides: list[str]) -> Training:
    """Build (and, on resume, restore) the whole run without writing anything."""
    device = runtime.device
    if runtime.is_main:
        refuse_links(run_dir)  # a shared run folder's planted links would redirect every write
    stored, resumed = resume_state(_resume_setting(config), run_dir) if runtime.is_main else (None, False)
    run_id = ((stored.get("run_id") if stored and resumed else None) or read_run_id(run_dir) or new_run_id()) \
        if runtime.is_main else None
    if resumed and runtime.is_main:  # read before anything is written: bad bytes are refused, not met later
        read_metrics(run_dir) if (run_dir / "metrics.jsonl").exists() else None
    stored, resumed, run_id = runtime.broadcast((stored, resumed, run_id))  # rank 0 decides, all follow
    if stored:
        check_same_seed(stored, config["seed"])
    runtime.apply_global_settings(int(config["seed"]))
    objective = runs.objective_class(config["model"]["objective"].get("_target_"), prefixes)
    dataset, limit = split_limit(_training_split(config["dataset"], objective.wants_evaluation))
    data = limited(build(dataset, "dataset", prefixes), limit, int(config["seed"]))  # held-out data stays whole
    value_range = getattr(data, "value_range", "tanh")
    run = runs.build(config, data.facts, value_range, device, prefixes, overrides=overrides)
    run.images, run.run_id = _count(data), run_id
    _check_value_range(run.objective, value_range)
    schedule = schedule_from(config["schedule"], data.batches_per_epoch, run.objective.batches_per_step())
    if config["schedule"].get("epochs") and config["schedule"].get("steps") not in (None, schedule.steps):
        log.warning("schedule.epochs=%s sets the run's length: %d steps (schedule.steps=%s is not used)",
                    config["schedule"]["epochs"], schedule.steps, config["schedule"]["steps"])
    if stored and resumed and int(stored["step"]) > schedule.steps:
        raise ConfigError(f"resume: the run in {run_dir} is already at step {int(stored['step'])}, past "
                          f"schedule.steps={schedule.steps}; nothing was changed. To train it on, set schedule.steps "
                          f"above {int(stored['step'])}; to use it as it is, ganlab sample / eval run={run_dir}.")
    run.steps_per_epoch = data.batches_per_epoch / run.objective.batches_per_step()
    if schedule.uses_ema:  # copies of the plain networks, made before compile or DDP wrap them
        run.ema = runs.ema_copies(run.objective)
    for name, net in run.networks.items():  # SyncBatchNorm, channels_last, compile: the objective calls these
        run.objective.networks[name] = runtime.prepare(net)
    _check_per_network(config["optimizer"], list(run.networks))
    optimizers = {name: runtime.fuse(_build_optimizer(config["optimizer"], name, net, prefixes), net.parameters())
                  for name, net in run.networks.items()}
    metrics = config.get("metrics") or {}
    held_out = _held_out(dataset, data, prefixes) if run.objective.wants_evaluation else None
    judge = open_judge(str(metrics["classifier"]), data.facts, device, prefixes, "metrics.classifier") \
        if metrics.get("classifier") else None
    evaluator = training_evaluator(  # the real side is loaded on the first measurement
        metrics, run, data, held_out, lambda: held_out or _held_out(dataset, data, prefixes), device, dataset, judge)
    batches = data.batches(device, int(config["seed"]))
    run.fixed = run.objective.fixed_inputs(schedule.sample_count, device,
                                           _example(held_out, batches, schedule.sample_count, device))
    step = Step(run.objective, optimizers, batches, schedule, runtime, data.batch_size, run.ema)
    state = runs.TrainingState(run, optimizers, batches, device)
    maintenance = Maintenance(state, schedule, runtime, NullLogger(run_dir), evaluator, run_dir)
    state.parts = (step, maintenance)
    if stored:
        restore(state, stored, config, _count(data))
    return Training(run, state, step, maintenance, evaluator, schedule, runtime, resumed)


def _example(held_out, batches, count: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Real samples for the fixed inputs: held-out ones when there are (VAE reconstructions show
    test images), else the training set's first."""
    if held_out is None:
        return batches.example(count)
    batch = next(iter(held_out.ordered_batches(device)))
    return {key: value[:count] for key, value in batch.items()}


def _start(training: Training, config: dict[str, Any], run_dir: Path, overrides: list[str],
           choices: dict[str, str], started: float, on_begin: Callable[[], None] | None) -> None:
    """The accepted run: its summary and logs, then training."""
    runtime, run, schedule = training.runtime, training.run, training.schedule
    if runtime.is_main:
        _write_summary({name: unwrap(net) for name, net in run.networks.items()}, run_dir)  # the run's first file
    start = training.step
    logger = RunLogger(run_dir, schedule.steps, start_step=start, progress=bool(config.get("progress", True)),
                       resumed=training.resumed) if runtime.is_main else NullLogger(run_dir)
    phases = [phase.name for phase in run.objective.phases]
    tags = training.evaluator.metric_tags
    logger.describe({**hparam_defaults(config), **choices, **override_values(overrides)}, phases,
                    {tag: known_direction(tag.split("/", 1)[1]) for tag in tags})
    training.maintenance.logger = logger
    if on_begin is not None:
        on_begin()  # a signal from now on finds checkpoints to continue from
    try:
        if start:
            log.info("resumed from step %d of %d", start, schedule.steps)
        training.train(started=started)
    finally:
        logger.close()


def _check_loss_fits(cfg: DictConfig, prefixes) -> None:
    """A GAN objective needs an adversarial loss; a VAE's or classifier's loss, D steps or augmentation
    would silently be ignored."""
    reads_loss = runs.objective_class(cfg.model.objective.get("_target_"), prefixes).needs_adversarial_loss
    if cfg.get("loss") and not reads_loss:
        raise ConfigError("a loss was chosen, but this model trains its own objective and ignores it (VAEs and "
                          "classifiers set theirs under model.objective); drop the loss= override.")
    if not reads_loss:
        for key in ("n_critic", "g_steps"):
            if cfg.schedule.get(key, 1) != 1:
                raise ConfigError(f"schedule.{key}={cfg.schedule[key]} counts a GAN's D or G updates, but this model "
                                  "trains its own objective, which has one phase; drop the override.")
        policy = list((cfg.get("augment") or {}).get("policy") or [])
        if policy:
            raise ConfigError(f"augment.policy={policy} augments a discriminator's inputs, but this model has no "
                              "discriminator (it trains its own objective); drop augment= and augment.policy.")
    if reads_loss and not cfg.get("loss"):
        raise ConfigError("loss=none, but this model is a GAN and needs an adversarial loss; pick one of "
                          "bce, minimax, wgan, wgan_gp, lsgan, hinge, rpgan, r3gan (e.g. loss=bce).")


def _check_per_network(node: dict[str, Any], networks: list[str]) -> None:
    """`optimizer.per_network.<name>` must name a network this model trains (a misspelt or absent
    one would be ignored: the run would train with the shared settings)."""
    import difflib

    for name in (node.get("per_network") or {}):
        if name not in networks:
            near = difflib.get_close_matches(str(name), networks, n=1)
            hint = f"Did you mean optimizer.per_network.{near[0]}? " if near else ""
            raise ConfigError(f"optimizer.per_network.{name} names no network of this model; nothing would read it. "
                              f"{hint}Its networks are: {', '.join(networks)}.")


def _build_optimizer(node: dict[str, Any], network: str, module: torch.nn.Module, prefixes) -> torch.optim.Optimizer:
    """The shared optimizer settings, updated by `per_network.<network>` when given."""
    own = (node.get("per_network") or {}).get(network) or {}
    settings = {k: v for k, v in node.items() if k != "per_network"}
    settings.update(own)
    betas = settings.get("betas")
    if betas is not None and not (isinstance(betas, (list, tuple)) and len(betas) == 2):
        where = f"optimizer.per_network.{network}.betas" if "betas" in own else "optimizer.betas"
        raise ConfigError(f"{where}={betas!r} must be two numbers (beta1, beta2); set e.g. {where}=[0.5,0.999].")
    try:
        return build(settings, f"optimizer ({network})", prefixes, module.parameters())
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


def _training_split(node: dict[str, Any], evaluates: bool) -> dict[str, Any]:
    """Held-out data must be held out: a model that is evaluated on the test split (VAEs,
    classifiers) trains on split=train when the data set's default is split=all."""
    if evaluates and node.get("split") == "all":
        log.info("dataset.split=all would train on the test images too: training on split=train, evaluating "
                 "on the held-out split=test")
        return {**node, "split": "train"}
    return node


def _check_value_range(objective, given: str) -> None:
    wanted = objective.value_range
    if wanted and given and wanted != given:
        raise ConfigError(f"dataset.value_range={given} but this model needs {wanted} "
                          f"({'[0, 1]' if wanted == 'unit' else '[-1, 1]'} pixels); set dataset.value_range={wanted}.")


def _held_out(node: dict[str, Any], data, prefixes):
    """The test split for evaluation: the same data set with split=test, when it has one."""
    if node.get("split") in (None, "test", "all"):
        if node.get("split") is not None:
            log.info("dataset.split=%s: nothing is held out, so evaluation and metrics compare with the training "
                     "images (dataset.split=train holds out the test split)", node["split"])
        else:
            log.info("evaluation uses the training data: dataset %s has no test split", node["_target_"])
        return data
    try:
        return build({**node, "split": "test"}, "dataset (test split)", prefixes)
    except ConfigError as exc:
        log.warning("no test split (%s); evaluation uses the training data", str(exc).split(";")[0])
        return data


# Settings every run states in TensorBoard's HParams, typed or not: a run that kept the default shows
# the value instead of a blank cell beside the runs that changed it.
HPARAM_KEYS = ("seed", "optimizer.lr", "dataset.batch_size", "dataset.resolution", "schedule.steps",
               "schedule.n_critic", "schedule.ema_decay", "augment.p")


def hparam_defaults(config: dict[str, Any]) -> dict[str, Any]:
    from ganlab.trust.checks import flatten

    flat = flatten(config)
    return {key: flat[key] for key in HPARAM_KEYS if flat.get(key) is not None}


def _write_summary(networks: dict[str, torch.nn.Module], run_dir: Path) -> None:
    """One line per network with its parameter count (printed and saved), then the architectures."""
    lines = [f"{name:<14} {count_parameters(net):>12,} params  ({type(net).__name__})" for name, net in networks.items()]
    for line in lines:
        log.info(line)
    text = "\n".join(lines) + "\n\n" + "\n\n".join(f"{name}: {net}" for name, net in networks.items()) + "\n"
    write_text_atomic(run_dir / "model_summary.txt", text)


def _count(data) -> int | None:
    try:
        return len(data)
    except TypeError:  # drawn on the fly (the 2-d toys)
        return None
