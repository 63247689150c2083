"""What diffusion (DDPM) and flow matching share as objectives: one network (`denoiser`) trained in one
phase on noised images, its EMA copy drawing the samples, labels for classifier-free guidance,
and sampling as a setting of the run (sampler, steps, guidance) that `ganlab sample` / `eval`
may override.

A sample's "latent" is its start noise; the noise an ancestral sampler adds on the way is drawn
from a generator seeded by that start noise, so one seed gives the same images whatever the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.objectives.base import Grid, Objective, Phase

QUARTERS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))  # of the time, for loss/t0-25 ... loss/t75-100


@dataclass(frozen=True)
class Sampling:
    """How samples are drawn: what `eval.json` records beside every number (a number without its
    sampling protocol is not comparable)."""

    sampler: str
    steps: int
    guidance: float = 1.0
    eta: float = 0.0  # DDIM's noise (0: deterministic; the ddpm sampler is eta 1)

    def describe(self) -> dict[str, float | int | str]:
        return {"sampler": self.sampler, "steps": self.steps, "guidance": self.guidance, "eta": self.eta}


class DenoisingObjective(Objective):
    """Base of `DiffusionObjective` and `FlowObjective`: subclasses give the noised input and its
    target (`corrupt`), and a sampler (`integrate`)."""

    ema_networks = ("denoiser",)
    value_range = "tanh"
    sampler = "denoiser"
    #: the samplers this family offers, the deterministic ones among them
    samplers: tuple[str, ...] = ()
    deterministic: tuple[str, ...] = ()

    def __init__(self, denoiser: nn.Module, resolution: int, channels: int, num_classes: int, sampling: Sampling,
                 p_uncond: float):
        self.networks = {"denoiser": denoiser}
        self.phases = [Phase("denoise", "denoiser")]
        self.shape = (channels, resolution, resolution)
        self.num_classes = int(getattr(denoiser, "num_classes", 0) or 0)
        self.conditional = self.num_classes > 0
        if not 0 <= p_uncond < 1:
            raise ConfigError(f"model.objective.p_uncond={p_uncond} must be in [0, 1) (0.1: one label in ten dropped).")
        self.p_uncond = p_uncond
        self.sampling = self.check_sampling(sampling, "model.objective.")

    # --- sampling settings --------------------------------------------------------------------
    def check_sampling(self, sampling: Sampling, prefix: str = "") -> Sampling:
        if sampling.sampler not in self.samplers:
            raise ConfigError(f"{prefix}sampler={sampling.sampler!r} is not a sampler of this model; use one of "
                              f"{', '.join(self.samplers)}.")
        if not isinstance(sampling.steps, int) or isinstance(sampling.steps, bool) or sampling.steps < 1:
            raise ConfigError(f"{prefix}steps={sampling.steps!r} must be a whole number of at least 1 (e.g. steps=25).")
        if sampling.guidance != 1 and not self.conditional:
            raise ConfigError(f"{prefix}guidance={sampling.guidance} steers a class-conditional model towards its label, "
                              "but this run is unconditional (model.denoiser.class_conditional=false); leave guidance "
                              "at 1.")
        if sampling.guidance < 0:
            raise ConfigError(f"{prefix}guidance={sampling.guidance} must be >= 0 (1: the plain conditional model).")
        if sampling.eta < 0:
            raise ConfigError(f"{prefix}eta={sampling.eta} must be >= 0 (0: deterministic DDIM).")
        return sampling

    def with_sampling(self, **typed) -> Sampling:
        """The run's sampling with what was typed now (`ganlab sample steps=25 sampler=ddim`: sampler,
        steps, guidance, eta) in place, checked, and kept for the draws that follow."""
        self.sampling = self.check_sampling(replace(self.sampling, **typed))
        return self.sampling

    def check_interpolation(self) -> None:
        if self.sampling.sampler not in self.deterministic or self.sampling.eta:
            raise ConfigError(f"interpolate walks between start noises, which needs a deterministic sampler; "
                              f"sampler={self.sampling.sampler}{f' eta={self.sampling.eta}' if self.sampling.eta else ''}"
                              f" adds noise on the way. Use sampler={self.deterministic[0]}"
                              f"{' eta=0' if 'ddim' in self.deterministic else ''}.")

    def interpolate(self, start: torch.Tensor, end: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Spherical interpolation between start noises (a straight line would shrink their norm)."""
        self.check_interpolation()
        a, b = start.flatten(1), end.flatten(1)
        omega = torch.arccos((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).clamp(1e-6, torch.pi - 1e-6)
        w = weights.flatten()
        walk = (torch.sin((1 - w)[None, :, None] * omega[:, None, None]) * a[:, None]
                + torch.sin(w[None, :, None] * omega[:, None, None]) * b[:, None]) / torch.sin(omega)[:, None, None]
        return walk.reshape(len(start), len(w), *start.shape[1:]).flatten(0, 1)

    # --- training -------------------------------------------------------------------------------
    def corrupt(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(noised input, the network's time input, the target, a weight per sample, the time as a
        fraction of the way from data (0) to noise (1)) for a batch of clean images."""
        raise NotImplementedError

    def loss(self, phase, batch):
        images = batch["image"]
        noised, time, target, weight, fraction = self.corrupt(images)
        labels = self.training_labels(batch.get("label"))
        prediction = self.networks["denoiser"](noised, time, labels)
        per_sample = (prediction.float() - target.float()).pow(2).flatten(1).mean(1)
        loss = (weight * per_sample).mean()
        stats = {}
        for low, high in QUARTERS:  # the diagnostic diffusion users read: which noise levels are learnt
            inside = (fraction >= low) & ((fraction < high) | (high == 1.0))
            if inside.any():
                stats[f"loss/t{int(low * 100)}-{int(high * 100)}"] = per_sample[inside].detach().mean()
        return loss, stats

    def training_labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Class labels with a share `p_uncond` replaced by "no label" (classifier-free guidance)."""
        if not self.conditional or labels is None:
            return None
        dropped = torch.rand(len(labels), device=labels.device) < self.p_uncond
        return torch.where(dropped, torch.full_like(labels, self.num_classes), labels.long())

    # --- drawing ---------------------------------------------------------------------------------
    def latent(self, count, generator=None, device=None):
        return torch.randn(count, *self.shape, generator=generator, device=device)

    def guided(self, net: nn.Module, labels: torch.Tensor | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The network's prediction at (x, time), steered by `guidance` towards `labels`:
        uncond + w * (cond - uncond); w = 1 is the plain conditional prediction (one pass)."""
        w = self.sampling.guidance
        if labels is None or not self.conditional or w == 1:
            return lambda x, time: net(x, time, labels if self.conditional else None)
        nothing = torch.full_like(labels, self.num_classes)

        def predict(x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
            both = net(torch.cat([x, x]), torch.cat([time, time]), torch.cat([labels, nothing]))
            conditional, unconditional = both.chunk(2)
            return unconditional + w * (conditional - unconditional)

        return predict

    @torch.no_grad()
    def decode(self, networks, latent, labels=None):
        net = networks["denoiser"]
        return self.integrate(self.guided(net, labels), latent, noise_source(latent)).clamp(-1, 1)

    def integrate(self, predict, start: torch.Tensor, noise: Callable[[], torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    # --- grids -------------------------------------------------------------------------------------
    def fixed_inputs(self, count, device, example):
        fixed = {}
        if self.conditional and example.get("label") is not None:  # one grid row per class
            fixed["labels"] = torch.arange(self.num_classes).repeat_interleave(max(1, count // self.num_classes)).to(device)
            count = len(fixed["labels"])
        fixed["noise"] = self.latent(count, generator=torch.Generator().manual_seed(0)).to(device)
        return fixed

    @torch.no_grad()
    def samples(self, fixed, networks):
        return self.decode(networks, fixed["noise"], fixed.get("labels"))

    @torch.no_grad()
    def snapshots(self, fixed, networks, samples):
        labels = fixed.get("labels")
        columns = int(torch.bincount(labels.cpu()).max()) if labels is not None else 8
        return {"samples": Grid(samples, columns)}


def noise_source(start: torch.Tensor) -> Callable[[], torch.Tensor]:
    """Fresh noise shaped as `start` for each call, each sample's from a CPU generator seeded by its
    own start noise: the same start noise gives the same path, whatever else is in the batch."""
    flat = start.detach().flatten(1)[:, :16].double().cpu()
    seeds = [int(abs(float((row * 1e6).round().sum()))) % (2**62) for row in flat]
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    def draw() -> torch.Tensor:
        return torch.stack([torch.randn(start.shape[1:], generator=g) for g in generators]).to(start.device,
                                                                                             start.dtype)

    return draw
