"""The VAE objective: the ELBO as reconstruction + beta * KL, one phase, plus test-set evaluation.

reduction: `mean` averages the reconstruction over pixels and the KL over latent dimensions, both
over the batch (F.mse_loss's default, with which the reports' weights 1e-3 and 0.25 were chosen);
`sum` sums both per image and averages over the batch (the textbook ELBO per image).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ganlab.errors import ConfigError
from ganlab.objectives.base import Grid, Objective, Phase, Points
from ganlab.trust.registry import buildable


log = logging.getLogger("ganlab")
COLLAPSED_KL = 0.01  # nats per latent dimension on the test images: below it the code carries ~nothing


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, reduction: str) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per latent dimension, reduced as `reduction` says."""
    per_dim = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    return per_dim.mean() if reduction == "mean" else per_dim.sum(dim=1).mean()


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, kind: str, reduction: str) -> torch.Tensor:
    if kind == "mse":
        per_pixel = F.mse_loss(recon, target, reduction="none")
    else:
        per_pixel = F.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), target, reduction="none")
    return per_pixel.mean() if reduction == "mean" else per_pixel.flatten(1).sum(dim=1).mean()


@buildable("objective")
class VAEObjective(Objective):
    value_range = "unit"  # the decoder ends in a sigmoid: data must be in [0, 1]
    wants_evaluation = True

    def __init__(self, vae, reconstruction: str = "mse", reduction: str = "mean", beta: float = 1.0,
                 kl_warmup_steps: int = 0, tsne_points: int = 2000, tsne_attribute: str | None = None,
                 attribute_names: tuple[str, ...] = (), class_names: tuple[str, ...] = ()):
        if reconstruction not in ("mse", "bce"):
            raise ConfigError(f"model.objective.reconstruction={reconstruction!r} is not known; use mse or bce.")
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"model.objective.reduction={reduction!r} is not known; use mean or sum.")
        if beta < 0 or kl_warmup_steps < 0:
            raise ConfigError(f"model.objective.beta={beta} and kl_warmup_steps={kl_warmup_steps} must be >= 0.")
        if tsne_attribute and tsne_attribute not in attribute_names:
            raise ConfigError(f"model.objective.tsne_attribute={tsne_attribute!r} is not among the data's attributes "
                              f"{list(attribute_names) or '(none)'}; pick one of them or null (colour by class).")
        self.networks = {"vae": vae}
        self.phases = [Phase("VAE", "vae")]
        self.reconstruction, self.reduction, self.beta = reconstruction, reduction, beta
        self.kl_warmup_steps, self.tsne_points = kl_warmup_steps, tsne_points
        self.tsne_column = attribute_names.index(tsne_attribute) if tsne_attribute else None
        self.tsne_attribute, self.class_names = tsne_attribute, tuple(class_names)
        self._step = 0

    @property
    def vae(self):
        return self.networks["vae"]

    def begin_step(self, step: int) -> None:
        self._step = step

    def current_beta(self) -> float:
        if self.kl_warmup_steps <= 0:
            return self.beta
        return self.beta * min(1.0, (self._step + 1) / self.kl_warmup_steps)

    def terms(self, images: torch.Tensor, vae=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        recon, mu, logvar = (vae or self.vae)(images)
        return (reconstruction_loss(recon, images, self.reconstruction, self.reduction),
                kl_divergence(mu, logvar, self.reduction), mu)

    def loss(self, phase, batch):
        rec, kl, _ = self.terms(batch["image"])
        beta = self.current_beta()
        return rec + beta * kl, {"reconstruction": rec.detach(), "kl": kl.detach(),
                                 "beta": torch.tensor(beta, device=rec.device)}

    sampler = "vae"

    def latent(self, count, generator=None, device=None):
        return torch.randn(count, self.vae.latent_dim, generator=generator, device=device)

    def decode(self, networks, latent, labels=None):
        return networks["vae"].decode(latent)

    @torch.no_grad()
    def reconstruction_pairs(self, networks, images: torch.Tensor) -> torch.Tensor:
        """Each image followed by its reconstruction from the mean code (grids of pairs)."""
        vae = networks["vae"]
        recon = vae.decode(vae.encode(images)[0])
        return torch.stack([images, recon], dim=1).flatten(0, 1)

    def fixed_inputs(self, count, device, example):
        return {"z": torch.randn(count, self.vae.latent_dim, device=device),
                "inputs": example["image"][: max(1, count // 2)].to(device)}

    @torch.no_grad()
    def samples(self, fixed, networks):
        return networks["vae"].decode(fixed["z"])

    @torch.no_grad()
    def snapshots(self, fixed, networks, samples):
        inputs = fixed["inputs"]
        pairs = self.reconstruction_pairs(networks, inputs)
        return {"samples": Grid(samples, 8), "reconstructions": Grid(pairs, 8)}

    @torch.no_grad()
    def evaluate(self, batches, networks, final):
        vae = networks["vae"]
        totals = {"reconstruction": 0.0, "kl": 0.0, "mse": 0.0}
        count, latents, labels = 0, [], []
        for batch in batches():
            images = batch["image"]
            rec, kl, mu = self.terms(images, vae)
            n = images.shape[0]
            totals["reconstruction"] += rec.item() * n
            totals["kl"] += kl.item() * n
            totals["mse"] += F.mse_loss(vae.decode(mu), images).item() * n  # on [0, 1] pixels, from the mean code
            count += n
            if final and sum(len(x) for x in latents) < self.tsne_points:
                latents.append(mu.cpu())
                labels.append(batch["label"].cpu())
        scalars = {k: v / max(count, 1) for k, v in totals.items()}
        per_dim = scalars["kl"] if self.reduction == "mean" else scalars["kl"] / vae.latent_dim
        scalars["kl_per_dim"] = per_dim
        if per_dim < COLLAPSED_KL:
            log.warning("the VAE's posterior has collapsed: its KL is %.2g nats per latent dimension on the test "
                        "images, so the decoder ignores the code and every sample looks alike. Weigh the KL less "
                        "(model.objective.beta), sum the terms per image (model.objective.reduction=sum) or warm "
                        "it up (model.objective.kl_warmup_steps).", per_dim)
        images = {"tsne": self._tsne(torch.cat(latents), torch.cat(labels))} if final and latents else {}
        return scalars, images

    def _tsne(self, latents: torch.Tensor, labels: torch.Tensor) -> Points:
        latents, labels = latents[: self.tsne_points], labels[: self.tsne_points]
        if self.tsne_column is not None:
            labels, names = labels[:, self.tsne_column].long(), (f"not {self.tsne_attribute}", self.tsne_attribute)
        elif labels.dtype != torch.long:  # attributes but none chosen: one colour
            labels, names = torch.zeros(len(labels), dtype=torch.long), ("all",)
        else:
            names = self.class_names
        title = "t-SNE of test latents" if latents.shape[1] > 2 else "test latents (2-d)"
        return Points(latents, labels=labels, names=tuple(names), title=title)  # drawn through a 2-d t-SNE
