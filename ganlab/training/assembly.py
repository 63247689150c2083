"""The one assembly of a run: the vetted config, the data and the runtime become a complete, ready
`Training` in one pass, fresh or resumed; `ganlab sample` / `eval` open a run (without data) and
build what they measure against through the same functions.

    data        = the data set (the training split), its facts
    run         = networks, objective, EMA copies, fixed inputs, what it trains on
    step        = Step(objective, optimizers, batches)   the phases, learning rates, adaptive rule, EMA
    maintenance = Maintenance(state, evaluator)          log, grids, metrics, best.pt, the finite guard
    state       = what a checkpoint holds, each part under its own key (restored here on resume)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ganlab.data.memory import limited, split_limit
from ganlab.errors import ConfigError, DataNotFound
from ganlab.records import checkpoint
from ganlab.records.logging import NullLogger, read_metrics
from ganlab.records.rundir import refuse_links
from ganlab.training import run as runs
from ganlab.training.loop import train_steps
from ganlab.training.maintenance import Maintenance, MaintenanceState
from ganlab.metrics.measurer import Evaluator
from ganlab.training.measuring import judge_from, training_evaluator
from ganlab.records.rundir import new_run_id, read_run_id
from ganlab.training.replay import restore, resume_state
from ganlab.training.runtime import Runtime
from ganlab.training.schedule import Schedule, schedule_from
from ganlab.training.step import Step
from ganlab.trust.build import build
from ganlab.trust.checks import check_resumable

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


def assemble(config: dict[str, Any], run_dir: Path, prefixes: tuple[str, ...], runtime: Runtime,
             overrides: list[str], choices: dict[str, str], resume: Any) -> Training:
    """Build (and, on resume, restore) the whole run from the resolved `config` (plain values)
    without writing anything. `resume`: false / true / auto / a checkpoint's path."""
    device = runtime.device
    if runtime.is_main:
        refuse_links(run_dir)  # a shared run folder's planted links would redirect every write
    stored, resumed, run_id = _earlier_attempt(resume, run_dir, runtime)
    seed = int(config["seed"])
    runtime.apply_global_settings(seed)
    dataset, limit = split_limit(config["dataset"])
    data = limited(build(dataset, "dataset", prefixes), limit, seed)  # held-out data stays whole
    changes = check_resumable(checkpoint.Saved(stored), config) if stored else {}
    # the other files the run starts from, read before anything is built from them
    metrics = config.get("metrics") or {}
    encoder_weights = checkpoint.network_weights(config["model"].get("encoder_init"), "model.encoder_init")
    judge_file = checkpoint.read_run(str(metrics["classifier"]), key="metrics.classifier") \
        if metrics.get("classifier") else None
    value_range = getattr(data, "value_range", "tanh")
    objective = runs.build_objective(config["model"], data.facts, device, prefixes, encoder_weights)
    _check_value_range(objective, value_range)
    schedule = _schedule(config["schedule"], data, objective, stored if resumed else None, run_dir)
    ema = runs.ema_copies(objective) if schedule.uses_ema else {}  # of the plain networks, before compile or DDP
    for name, net in objective.networks.items():  # SyncBatchNorm, channels_last, compile: the objective calls these
        objective.networks[name] = runtime.prepare(net)
    networks = dict(objective.networks)
    _check_per_network(config["optimizer"], list(networks))
    optimizers = {name: runtime.fuse(_build_optimizer(config["optimizer"], name, net, prefixes), net.parameters())
                  for name, net in networks.items()}
    held_out = _held_out(dataset, data, prefixes) if objective.wants_evaluation else None
    batches = data.batches(device, seed)
    fixed = objective.fixed_inputs(schedule.sample_count, device,
                                   _example(held_out, batches, schedule.sample_count, device))
    run = runs.Run(config, data.facts, value_range, objective, ema=ema, fixed=fixed, overrides=list(overrides),
                   steps_per_epoch=data.batches_per_epoch / objective.batches_per_step(), images=_count(data),
                   run_id=run_id, choices=dict(choices))
    judge = judge_from(str(metrics["classifier"]), judge_file, data.facts, device, prefixes, "metrics.classifier") \
        if judge_file else None
    evaluator = training_evaluator(  # the real side is loaded on the first measurement
        metrics, run, data, held_out, lambda: held_out or _held_out(dataset, data, prefixes), device, dataset, judge)
    step = Step(objective, optimizers, batches, schedule, runtime, data.batch_size, ema)
    kept = MaintenanceState(device)
    state = runs.TrainingState(run, optimizers, batches, device, parts={"step": step, "maintenance": kept})
    maintenance = Maintenance(state, kept, schedule, runtime, NullLogger(run_dir), evaluator, run_dir)
    if stored:
        restore(state, stored, changes, _count(data))
    return Training(run, state, step, maintenance, evaluator, schedule, runtime, resumed)


def _earlier_attempt(resume: Any, run_dir: Path, runtime: Runtime) -> tuple[dict[str, Any] | None, bool, str | None]:
    """(the checkpoint to continue from, whether `run_dir` holds an earlier attempt, the run's
    identity): the main process decides, every process follows."""
    stored, resumed, run_id = None, False, None
    if runtime.is_main:
        stored, resumed = resume_state(resume, run_dir)
        run_id = (checkpoint.Saved(stored).run_id if stored and resumed else None) or read_run_id(run_dir) \
            or new_run_id()
        if resumed and (run_dir / "metrics.jsonl").exists():  # bad bytes are refused now, not met later
            read_metrics(run_dir)
    return runtime.broadcast((stored, resumed, run_id))


def _schedule(node: dict[str, Any], data, objective, stored: dict[str, Any] | None, run_dir: Path) -> Schedule:
    """The schedule for this data and objective; a resumed run may not already be past its end."""
    schedule = schedule_from(node, data.batches_per_epoch, objective.batches_per_step())
    if node.get("epochs") and node.get("steps") not in (None, schedule.steps):
        log.warning("schedule.epochs=%s sets the run's length: %d steps (schedule.steps=%s is not used)",
                    node["epochs"], schedule.steps, node["steps"])
    done = checkpoint.Saved(stored).step if stored else 0
    if done > schedule.steps:
        raise ConfigError(f"resume: the run in {run_dir} is already at step {done}, past schedule.steps="
                          f"{schedule.steps}; nothing was changed. To train it on, set schedule.steps above {done}; "
                          f"to use it as it is, ganlab sample / eval run={run_dir}.")
    return schedule


def _example(held_out, batches, count: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Real samples for the fixed inputs: held-out ones when there are (VAE reconstructions show
    test images), else the training set's first."""
    if held_out is None:
        return batches.example(count)
    batch = next(iter(held_out.ordered_batches(device)))
    return {key: value[:count] for key, value in batch.items()}


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
        return build(_read_whole(node, "test"), "dataset", prefixes)  # the dataset node, its split changed
    except DataNotFound as exc:  # only a missing split falls back: any other refusal is an error, not a warning
        log.warning("no test split (%s); evaluation uses the training data", str(exc).split(";")[0])
        return data


def _read_whole(node: dict[str, Any], split: str) -> dict[str, Any]:
    """The dataset node on `split`, as evaluation reads it: whole and in order, never in training
    batches, so the batch size is 1 (a test split smaller than a training batch is still one)."""
    return {**node, "split": split, "batch_size": 1}


def _count(data) -> int | None:
    try:
        return len(data)
    except TypeError:  # drawn on the fly (the 2-d toys)
        return None


# --- what a finished run is measured against (ganlab eval) ----------------------------------------
def evaluation_data(dataset: dict[str, Any], split: str, prefixes, root: str | None = None) -> Callable[[], Any]:
    """A builder of the run's data set on `split`, loaded on first use (what eval compares with)."""
    node, _ = split_limit(dataset)  # the held-out split is compared whole, whatever dataset.limit trained on
    node = _read_whole(node, split) if "split" in node else node
    if root:
        node["root"] = root

    def load():
        try:
            return build(node, "dataset", prefixes)
        except ConfigError as exc:
            raise ConfigError(f"the run's real images (split={split}) could not be read on this machine: {exc} Pass "
                              "dataset_root=PATH (the folder that holds them here) to ganlab eval.") from None

    return load


def toy_mixture(dataset: dict[str, Any], facts, prefixes):
    """The 2-d mixture a toy run (its data `facts` say points) trained on (it has no files), else None."""
    return build(dataset, "dataset", prefixes) if facts.points else None

