"""What the training loop knows about an objective, and nothing more."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ganlab.errors import ConfigError


@dataclass(frozen=True)
class Phase:
    """One optimisation phase: `network` is trained (and its optimizer stepped) `repeats` times,
    at every `interval`-th step (lazy regularisation, as StyleGAN2: a penalty phase every 16 steps).

    A phase that `uses_data` draws a fresh batch each repeat; one that does not reuses the last
    batch (a GAN's G phase needs only its size and labels).
    """

    name: str
    network: str
    repeats: int = 1
    uses_data: bool = True
    interval: int = 1

    def __post_init__(self):
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ConfigError(f"phase {self.name} repeats={self.repeats!r}: it must be a positive integer "
                              "(schedule.n_critic / schedule.g_steps).")
        if not isinstance(self.interval, int) or self.interval < 1:
            raise ConfigError(f"phase {self.name} interval={self.interval!r}: it must be a positive integer "
                              "(1 = every step).")


@dataclass
class Grid:
    """Images in the run's value range, shown `columns` to a row."""

    images: torch.Tensor
    columns: int = 8


@dataclass
class Points:
    """Points to show as a scatter plot: over `reference` points (the real ones), or coloured by
    integer `labels` named by `names`. Labelled points of more than 2 dimensions (a VAE's test
    latents) are drawn through a 2-d t-SNE."""

    points: torch.Tensor
    reference: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    names: tuple[str, ...] = ()
    title: str = ""


class Objective:
    """Base class. Subclasses set `networks`, `phases` and implement `loss` and `snapshots`."""

    networks: dict[str, nn.Module]
    phases: list[Phase]
    #: networks whose exponential moving average the loop keeps (and passes back to `snapshots`)
    ema_networks: tuple[str, ...] = ()
    #: the pixel range the objective needs ("tanh": [-1, 1], "unit": [0, 1]), or None for any
    value_range: str | None = None
    #: whether `evaluate` uses held-out data (then the runner builds the test split)
    wants_evaluation: bool = False
    #: whether the objective trains against an adversarial loss (`loss=` must then name one)
    needs_adversarial_loss: bool = False

    def begin_step(self, step: int) -> None:
        """Called before each step with the number of steps done (for warm-ups and annealing)."""

    def health(self, means: dict[str, float]) -> str | None:
        """What the logged means say has broken down (a GAN whose D wins outright), or None."""
        return None

    def state_dict(self) -> dict:
        """What the objective itself must carry over a resume (an adaptive augmentation's p); tensors only."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def loss(self, phase: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar to minimise for `phase`, and detached statistics to log beside it."""
        raise NotImplementedError

    def after_step(self, phase: str) -> None:
        """Called after the optimizer step of `phase`: a place for constraints such as clipping."""

    def fixed_inputs(self, count: int, device: torch.device,
                     example: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inputs drawn once and reused for every snapshot, so grids are comparable over time.

        `example` is the data set's first `count` samples (labels for conditional grids, say).
        """
        return {}

    @torch.no_grad()
    def samples(self, fixed: dict[str, torch.Tensor], networks: dict[str, nn.Module]) -> torch.Tensor | None:
        """The generated batch behind the snapshots (for diagnostics); None if there is none."""
        return None

    @torch.no_grad()
    def snapshots(self, fixed: dict[str, torch.Tensor], networks: dict[str, nn.Module],
                  samples: torch.Tensor | None) -> dict[str, "Grid | Points"]:
        """Named batches to show (tensors: the logging side draws them); `networks` may hold EMA
        copies and `samples` is what `samples()` returned for them (computed once per sample step)."""
        return {}

    def evaluate(self, batches, networks: dict[str, nn.Module],
                 final: bool) -> tuple[dict[str, float], dict[str, "Grid | Points"]]:
        """Scalars (logged as eval/<name>) and images on held-out data; `batches()` iterates it once.
        `final` is true at the end of training (for costly extras such as t-SNE)."""
        return {}, {}

    # --- drawing new samples (`ganlab sample`, metrics); objectives that generate override these
    #: the network that draws samples, or None when the objective does not generate (classifiers)
    sampler: str | None = None
    #: whether `decode` takes labels (class indices or attribute vectors)
    conditional: bool = False
    #: whether each update reads `batch["latent"]`: codes the loop draws for the global batch and
    #: shards, so N processes see the codes one process would
    latent_inputs: bool = False
    #: the phase whose update reuses the previous phase's batch and latent codes (a GAN's G step
    #: reusing the D step's fakes), or None
    reuses_latent: str | None = None

    def latent(self, count: int, generator: torch.Generator | None = None,
               device: torch.device | None = None) -> torch.Tensor:
        """`count` latent codes from `generator` (a CPU generator: reproducible on any device), or
        from `device`'s default generator."""
        raise NotImplementedError(f"{type(self).__name__} does not generate samples")

    def decode(self, networks: dict[str, nn.Module], latent: torch.Tensor,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples in the data's value range from latent codes (and labels, for conditional models)."""
        raise NotImplementedError(f"{type(self).__name__} does not generate samples")

    def batches_per_step(self) -> int:
        """Data batches one step draws: what converts `schedule.epochs` into steps."""
        return sum(p.repeats for p in self.phases if p.uses_data) or 1


@contextlib.contextmanager
def grad_enabled_for(net: nn.Module, on: bool) -> Iterator[None]:
    """Temporarily turn `net`'s parameter gradients on (to keep a graph for a later phase)."""
    if not on:
        yield
        return
    previous = [p.requires_grad for p in net.parameters()]
    net.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in zip(net.parameters(), previous):
            p.requires_grad_(flag)
