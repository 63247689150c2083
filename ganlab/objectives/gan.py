"""GAN objectives: a D phase (repeated `n_critic` times), then a G phase (`g_steps` times).

`GANObjective` is unconditional; `ConditionalGANObjective` passes labels to G and D (cGAN);
`ACGANObjective` passes labels to G and trains an auxiliary class head on D. Fakes are
conditioned on the labels of the real batch, so they follow the data's label distribution.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.objectives.augment import DiffAugment
from ganlab.errors import ConfigError
from ganlab.objectives.losses import AdversarialLoss
from ganlab.objectives.base import Grid, Objective, Phase, Points, grad_enabled_for
from ganlab.trust.registry import buildable


@buildable("objective")
class GANObjective(Objective):
    """`reuse_fakes` (auto: when n_critic = g_steps = 1): the G step reuses the D step's fakes (the
    same codes, G's graph kept), as pytorch/examples' DCGAN does: one G forward per step instead of two."""

    ema_networks = ("generator",)
    needs_adversarial_loss = True

    def health(self, means: dict[str, float]) -> str | None:
        """D's loss at 0 while G's is large: D wins outright and G gets no useful gradient (a collapsed
        GAN, e.g. optimizer.lr=10). Not for the Wasserstein critic, whose losses are not bounded so."""
        d, g = means.get("loss/D"), means.get("loss/G")
        if d is None or g is None or getattr(self.adversarial, "name", "") == "wgan":
            return None
        if abs(d) < 1e-3 and g > 100:
            return (f"D's loss is {d:.2g} while G's is {g:.3g}: D wins outright and G learns nothing (a collapsed GAN). "
                    "Lower optimizer.lr, or pick a more stable loss (loss=hinge, loss=wgan_gp)")
        return None
    latent_inputs = True

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss,
                 n_critic: int = 1, g_steps: int = 1, penalties: dict[str, Any] | None = None,
                 constraints: dict[str, Any] | None = None, reuse_fakes: bool | str = "auto",
                 augment: DiffAugment | None = None):
        if reuse_fakes not in ("auto", True, False):
            raise ConfigError(f"model.objective.reuse_fakes={reuse_fakes!r} must be auto, true or false.")
        self.reuse_fakes = (n_critic == 1 and g_steps == 1) if reuse_fakes == "auto" else bool(reuse_fakes)
        self.reuses_latent = "G" if self.reuse_fakes else None
        self._kept: tuple[torch.Tensor, torch.Tensor] | None = None  # (codes, fakes with G's graph)
        self.networks = {"generator": generator, "discriminator": discriminator}
        self.adversarial = loss
        self.augment = augment if augment else None  # every D input, real and fake, D's and G's updates
        penalties = dict(penalties or {})
        self.constraints = dict(constraints or {})
        for regulariser in (*penalties.values(), *self.constraints.values()):
            regulariser.check(discriminator)
        # lazy penalties (every=N > 1) are phases of their own, after G's (so G keeps D's fakes)
        self.penalties = {name: p for name, p in penalties.items() if getattr(p, "every", 1) == 1}
        self.lazy = {f"D_{name}": (name, p) for name, p in penalties.items() if getattr(p, "every", 1) > 1}
        self.phases = [Phase("D", "discriminator", n_critic), Phase("G", "generator", g_steps, uses_data=False),
                       *(Phase(phase, "discriminator", uses_data=False, interval=p.every)
                         for phase, (_, p) in self.lazy.items())]

    def begin_step(self, step):
        if self.augment is not None:
            self.augment.begin_step(step)

    def state_dict(self) -> dict[str, Any]:
        return {"augment": self.augment.state_dict()} if self.augment is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.augment is not None and state.get("augment"):
            self.augment.load_state_dict(state["augment"])

    @property
    def generator(self) -> nn.Module:
        return self.networks["generator"]

    @property
    def discriminator(self) -> nn.Module:
        return self.networks["discriminator"]

    # --- how G and D are called; the conditional objectives override these ----------------
    def generate(self, generator: nn.Module, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return generator(noise)

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(real/fake logits, auxiliary logits or None) of D's view of `images`: augmented, when on."""
        return self.judge(self.augment(images) if self.augment is not None else images, labels)

    def judge(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.discriminator(images), None

    def auxiliary_loss(self, logits: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor | None:
        return None

    # --- phases ---------------------------------------------------------------------------
    # --- drawing samples ------------------------------------------------------------------
    sampler = "generator"

    def latent(self, count, generator=None, device=None):
        return torch.randn(count, *self.generator.latent_shape, generator=generator, device=device)

    def decode(self, networks, latent, labels=None):
        return self.generate(networks["generator"], latent, labels)

    def loss(self, phase, batch):
        real, labels, codes = batch["image"], batch["label"], batch["latent"]
        if phase == "D":
            with grad_enabled_for(self.generator, self.reuse_fakes):  # keep G's graph for the G step
                fake = self.generate(self.generator, codes, labels)
            self._kept = (codes, fake) if self.reuse_fakes else None
            return self._d_loss(real, fake.detach(), labels)  # detached: D's step must not reach into G
        if phase in self.lazy:
            return self._lazy_penalty(phase, real, codes, labels)
        kept, self._kept = self._kept, None
        fake = kept[1] if kept is not None and kept[0] is codes else self.generate(self.generator, codes, labels)
        fake_logits, fake_aux = self.discriminate(fake, labels)
        real_logits = self.discriminate(real, labels)[0].float() if self.adversarial.g_needs_real else None
        loss = self.adversarial.g_loss(fake_logits.float(), real_logits)
        aux = self.auxiliary_loss(fake_aux, labels)
        return (loss, {}) if aux is None else (loss + aux, {"aux_loss": aux.detach()})

    def _lazy_penalty(self, phase, real, codes, labels):
        """A penalty with every=N: its own D update every N steps, weighted N times (StyleGAN2)."""
        name, penalty = self.lazy[phase]
        with torch.no_grad():
            fake = self.generate(self.generator, codes, labels)
        value = penalty(lambda x: self.discriminate(x, labels)[0], real, fake)
        return value * penalty.every, {name: value.detach()}

    def _d_loss(self, real, fake, labels):
        real_logits, real_aux = self.discriminate(real, labels)
        fake_logits, fake_aux = self.discriminate(fake, labels)
        real_logits, fake_logits = real_logits.float(), fake_logits.float()  # loss arithmetic in float32
        loss = self.adversarial.d_loss(real_logits, fake_logits)
        stats = {"real_logit": real_logits.detach().mean(), "fake_logit": fake_logits.detach().mean()}
        if self.augment is not None:
            self.augment.observe(real_logits)
            stats.update(self.augment.statistics())
        for name, penalty in self.penalties.items():
            value = penalty(lambda x: self.discriminate(x, labels)[0], real, fake)
            loss = loss + value
            stats[name] = value.detach()
        aux = self.auxiliary_loss(real_aux, labels)
        if aux is not None:
            aux = aux + self.auxiliary_loss(fake_aux, labels)
            loss = loss + aux
            stats["aux_loss"] = aux.detach()
            if real_aux is not None and labels.dtype == torch.long:
                stats["aux_accuracy"] = (real_aux.argmax(1) == labels).float().mean()
        return loss, stats

    def after_step(self, phase):
        if phase == "D" or phase in self.lazy:
            for constraint in self.constraints.values():
                constraint(self.discriminator)

    # --- fixed samples --------------------------------------------------------------------
    def fixed_inputs(self, count, device, example):
        fixed = {"noise": self.latent(count, device=device)}
        if example["image"].ndim == 2:  # points: show the real ones beside the fakes
            fixed["reference"] = example["image"].to(device)
        return fixed

    @torch.no_grad()
    def samples(self, fixed, networks):
        return self.generate(networks["generator"], fixed["noise"], fixed.get("labels"))

    @torch.no_grad()
    def snapshots(self, fixed, networks, samples):
        if samples.ndim == 2:  # 2-d points: a scatter plot over the real ones
            return {"samples": Points(samples, fixed.get("reference"))}
        return {"samples": Grid(samples, self.grid_columns(fixed))}

    def grid_columns(self, fixed: dict[str, torch.Tensor]) -> int:
        return 8


@buildable("objective")
class ConditionalGANObjective(GANObjective):
    """cGAN: G(z, y) and D(x, y). Grids show one class per column."""

    conditional = True

    def generate(self, generator, noise, labels):
        return generator(noise, labels)

    def judge(self, images, labels):
        return self.discriminator(images, labels), None

    def fixed_inputs(self, count, device, example):
        labels = fixed_labels(count, self.generator.condition_dim, example["label"]).to(device)
        fixed = super().fixed_inputs(len(labels), device, example)
        fixed["labels"] = labels
        return fixed

    def grid_columns(self, fixed):
        labels = fixed["labels"]
        if labels.dtype != torch.long:
            return 8
        counts = torch.bincount(labels.cpu())
        return int(counts.max())  # one row per class (rows_by_class lays them out)


@buildable("objective")
class ACGANObjective(ConditionalGANObjective):
    """ACGAN: G(z, y); D(x) -> (logit, class logits). `aux_loss`: ce (classes), bce or mse (attributes)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss,
                 n_critic: int = 1, g_steps: int = 1, penalties: dict[str, Any] | None = None,
                 constraints: dict[str, Any] | None = None, aux_loss: str = "ce", aux_weight: float = 1.0,
                 augment: DiffAugment | None = None):
        super().__init__(generator, discriminator, loss, n_critic, g_steps, penalties, constraints, augment=augment)
        if aux_loss not in ("ce", "bce", "mse"):
            raise ConfigError(f"model.objective.aux_loss={aux_loss!r} is not known; use ce (one class per image), "
                              "bce or mse (multi-label attributes; the faces report uses mse).")
        self.aux_kind, self.aux_weight = aux_loss, aux_weight

    def judge(self, images, labels):
        return self.discriminator(images)

    def auxiliary_loss(self, logits, labels):
        if self.aux_kind == "ce":
            if labels.dtype != torch.long:
                raise ConfigError("model.objective.aux_loss=ce needs one class per image, but the data has "
                                  "attribute vectors; use aux_loss=bce or aux_loss=mse.")
            loss = F.cross_entropy(logits, labels)
        elif self.aux_kind == "bce":
            loss = F.binary_cross_entropy_with_logits(logits, labels.float())
        else:
            loss = F.mse_loss(torch.sigmoid(logits), labels.float())
        return self.aux_weight * loss


def fixed_labels(count: int, condition_dim: int, example_labels: torch.Tensor) -> torch.Tensor:
    """Every class in equal shares, class by class (a grid row each: `count // classes` samples a
    class, at least one); for attribute data, the first real attribute rows."""
    if example_labels.dtype != torch.long:
        repeats = -(-count // example_labels.shape[0])
        return example_labels.repeat(repeats, 1)[:count]
    return torch.arange(condition_dim).repeat_interleave(max(1, count // condition_dim))
