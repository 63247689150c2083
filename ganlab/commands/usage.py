"""The help texts of `ganlab --help` and `ganlab train --help`, made from the config tree itself
(groups, options and their defaults), so they never go stale."""

from __future__ import annotations

import textwrap

from ganlab.trust.paths import config_dir, config_groups

USAGE = """usage: ganlab <command> [overrides...]

Commands:
  train          compose configs/ with the overrides and train (-m sweeps, --cfg job; `ganlab train --help`)
  resume         continue a run or a whole sweep: ganlab resume FOLDER [overrides] (finished jobs are skipped)
  sample         draw images from a trained run: grid, a folder of PNGs, or npz (`ganlab sample --help`)
  eval           measure a run: FID/KID/IS/precision-recall, classifier and toy metrics (`ganlab eval --help`)
  report         learning curves, samples over time and a comparison table of runs (`ganlab report --help`)
  buildable      the names a config's _target_ may build (ganlab's blocks, torch.nn, torch.optim, transforms)

Config groups (pick one with group=option):
{groups}

Examples:
  ganlab train                                   DCGAN on the bundled scikit-learn digits
  ganlab train model=dcgan dataset=mnist dataset.root=~/data
  ganlab train -m loss=bce,hinge optimizer.lr=1e-4,2e-4
  ganlab train resume=true hydra.run.dir=outputs/2026-01-01/12-00-00
  ganlab train --help                            the train command: groups, keys, run folder, exit codes
"""

TRAIN = """usage: ganlab train [group=option ...] [key=value ...] [-m] [--cfg job]

Compose ganlab's config groups with your overrides and train one run into its own folder; with -m,
a sweep (one run per combination of comma-separated values). Overrides are Hydra's: key=value
changes a value, +key=value adds one, group=option picks a config file.

Config groups (group=option; the default first):
{groups}

Keys worth knowing (the full composed config: ganlab train --cfg job [overrides]):
  seed=0                          the run's random stream (a resumed run keeps its own)
  device=auto                     auto (CUDA if present), cpu, cuda, cuda:N
  resume=false                    true: continue the run in hydra.run.dir; auto: continue if it holds one;
                                  PATH: start from that checkpoint
  progress=true                   false: one line per log step instead of the bar (clusters)
  dataset.root, dataset.batch_size, dataset.resolution, dataset.split, dataset.download,
  dataset.limit=N                 train on a fixed, seeded, class-balanced subset of N images
  augment.policy=[translation,cutout]  DiffAugment on every D input; augment.adaptive=true: ADA's p
  optimizer.lr, optimizer.betas, +optimizer.per_network.discriminator.lr=4e-4
  schedule.steps (or schedule.epochs), n_critic, g_steps, ema_decay, log_every, sample_every,
  ckpt_every, snapshot_every, keep_last, eval_every
  metrics.classifier=PATH         a classifier run (its folder or a checkpoint): diagnostics and metrics during training
  metrics.names, metrics.best     what eval_every measures, and what keeps checkpoints/best.pt
                                  (and what a sweep with hydra/sweeper=optuna optimises)
  debug=tiny                      a few CPU seconds: does this config train at all?
  runtime.precision=auto          fp32, bf16, fp16; runtime.compile, runtime.fused, runtime.channels_last
  allowed_targets=[mymodule]      modules beyond ganlab's own that configs may build (only as typed)
  hydra.run.dir=DIR               the run folder (default outputs/<date>/<time>); sweeps: hydra.sweep.dir

The run folder:
  .hydra/             the composed config, Hydra's settings and your overrides (written once accepted)
  train.log           the run's log; model_summary.txt: each network and its parameter count
  events.out.tfevents.*, metrics.jsonl     TensorBoard scalars and grids; one JSON row per log step
  samples/step_*.png  grids of the fixed noise batch; checkpoints/last.pt, best.pt, step_*.pt

Exit codes: 0 done; 2 bad input (one paragraph, before any work; nothing written into a run folder);
3 training diverged; 4 a fault of the machine (disk full); 130 / 143 stopped by Ctrl-C / SIGTERM
(during training after saving checkpoints/last.pt).

Examples:
  ganlab train                                   DCGAN on the bundled scikit-learn digits
  ganlab train model=sngan dataset=anime dataset.root=~/data/anime
  ganlab train experiment=mnist_dcgan dataset.root=~/data
  ganlab train -m loss=bce,hinge,wgan_gp optimizer.lr=1e-4,2e-4
  ganlab train resume=true hydra.run.dir=outputs/2026-01-01/12-00-00 schedule.steps=5000

Hydra's own flags (--hydra-help, --info, --cfg hydra) work as in Hydra; see README.md for more."""


def general_help() -> str:
    lines = []
    for group, options in config_groups().items():
        lines += textwrap.wrap(", ".join(options) or "(none yet)", 100, initial_indent=f"  {group:<23}",
                               subsequent_indent=" " * 25)
    return USAGE.format(groups="\n".join(lines))


def train_help() -> str:
    """`ganlab train --help`: the groups with their defaults (read from the composed default config)."""
    defaults = _default_choices()
    lines = []
    for group, options in config_groups().items():
        first = defaults.get(group)
        ordered = ([first] if first in options else []) + [o for o in options if o != first]
        text = ", ".join(ordered) + _applied_when(group)
        lines += textwrap.wrap(text, 100, initial_indent=f"  {group:<23}", subsequent_indent=" " * 25)
    return TRAIN.format(groups="\n".join(lines))


def _applied_when(group: str) -> str:
    return {"model_dataset": "  (applied by itself for that model and dataset)",
            "model_loss": "  (applied by itself for that model and loss)",
            "model_optimizer": "  (applied by itself for that model and optimizer)",
            "model_schedule": "  (applied by itself for that model and schedule)",
            "experiment": "  (none by default: one preset per report setup, several groups at once)",
            "generator_backbone": "  (model=cgan / acgan: default dcgan)",
            "discriminator_backbone": "  (model=cgan / acgan: default dcgan)"}.get(group, "")


def _default_choices() -> dict[str, str]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    GlobalHydra.instance().clear()
    return {k: str(v) for k, v in cfg.hydra.runtime.choices.items() if v is not None}
