"""`model=ddpm`: denoising diffusion (Ho et al. 2020) with DDPM ancestral and DDIM sampling.

Training: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps for t uniform in 0..T-1; the network predicts
`eps`, `x0` or `v` = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho 2022) under the simple
MSE, optionally weighted by min-SNR-gamma (Hang et al. 2023: min(SNR, gamma) / SNR for eps, / (SNR
+ 1) for v, min(SNR, gamma) for x0).

Schedules: `linear` (betas 1e-4 to 0.02 over T) or `cosine` (Nichol & Dhariwal 2021: abar(t) =
cos^2(((t/T + s) / (1 + s)) pi/2) / the same at 0, s = 0.008, betas clipped at 0.999).

Sampling over `steps` evenly spaced timesteps: DDIM (Song et al. 2021) with `eta` (0: deterministic);
`ddpm` is the same update with eta 1, which over all T steps is Ho et al.'s ancestral sampler with
the posterior variance, and over fewer is its respaced form (Nichol & Dhariwal).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.objectives.denoising import DenoisingObjective, Sampling
from ganlab.trust.registry import buildable

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "x0", "v")


def alpha_bars(schedule: str, timesteps: int) -> torch.Tensor:
    """abar_t for t = 0 .. T-1 (float64): the share of the clean image's variance left at step t."""
    if schedule == "linear":
        betas = torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)
    elif schedule == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    else:
        raise ConfigError(f"model.objective.schedule={schedule!r} is not a noise schedule; use linear or cosine.")
    return torch.cumprod(1 - betas, dim=0)


def snr(abar: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio abar / (1 - abar)."""
    return abar / (1 - abar)


def sampling_timesteps(timesteps: int, steps: int) -> list[int]:
    """`steps` timesteps evenly spread over 0 .. T-1, from the noisiest down to 0."""
    steps = min(steps, timesteps)
    return sorted({round(i * (timesteps - 1) / max(steps - 1, 1)) for i in range(steps)}, reverse=True)


@buildable("objective")
class DiffusionObjective(DenoisingObjective):
    samplers = ("ddim", "ddpm")
    deterministic = ("ddim",)

    def __init__(self, denoiser: nn.Module, resolution: int, channels: int, num_classes: int = 0,
                 timesteps: int = 1000, schedule: str = "linear", prediction: str = "eps",
                 min_snr_gamma: float | None = None, p_uncond: float = 0.1, sampler: str = "ddim",
                 sample_steps: int = 25, eta: float = 0.0, guidance: float = 1.0, clip_denoised: bool = True):
        if not isinstance(timesteps, int) or timesteps < 2:
            raise ConfigError(f"model.objective.timesteps={timesteps!r} must be a whole number of at least 2 (DDPM: 1000).")
        if prediction not in PREDICTIONS:
            raise ConfigError(f"model.objective.prediction={prediction!r} is not known; use eps, x0 or v.")
        if min_snr_gamma is not None and min_snr_gamma <= 0:
            raise ConfigError(f"model.objective.min_snr_gamma={min_snr_gamma} must be positive (5 in Hang et al.), or "
                              "null for the plain loss.")
        self.timesteps, self.prediction, self.min_snr_gamma = timesteps, prediction, min_snr_gamma
        self.schedule, self.clip_denoised = schedule, clip_denoised
        self.abar = alpha_bars(schedule, timesteps)
        super().__init__(denoiser, resolution, channels, num_classes,
                         Sampling(sampler, sample_steps, guidance, eta), p_uncond)

    def check_sampling(self, sampling, prefix=""):
        if sampling.sampler == "ddpm" and sampling.eta not in (0.0, 1.0):  # 0: DDIM's default, left as it was
            raise _ancestral_eta(sampling.eta, prefix)
        if sampling.sampler == "ddpm" and sampling.eta != 1.0:
            sampling = Sampling("ddpm", sampling.steps, sampling.guidance, 1.0)  # ancestral: eta 1 by definition
        return super().check_sampling(sampling, prefix)

    def with_sampling(self, **typed):
        if typed.get("sampler", self.sampling.sampler) == "ddpm" and typed.get("eta") not in (None, 1.0):
            raise _ancestral_eta(typed["eta"], "")  # a typed eta would be silently replaced by 1
        if typed.get("sampler") == "ddim" and "eta" not in typed and self.sampling.sampler == "ddpm":
            typed["eta"] = 0.0  # a switch from ancestral to DDIM means deterministic unless eta is typed
        return super().with_sampling(**typed)

    # --- training -----------------------------------------------------------------------------
    def corrupt(self, images):
        n, device = len(images), images.device
        t = torch.randint(0, self.timesteps, (n,), device=device)
        abar = self.abar.to(device)[t].float().view(n, *[1] * (images.ndim - 1))
        noise = torch.randn_like(images)
        noised = abar.sqrt() * images + (1 - abar).sqrt() * noise
        target = {"eps": noise, "x0": images, "v": abar.sqrt() * noise - (1 - abar).sqrt() * images}[self.prediction]
        return noised, t, target, self.weights(t).to(device), t.float() / self.timesteps

    def weights(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sample loss weights: 1, or min-SNR-gamma's for the prediction target."""
        if self.min_snr_gamma is None:
            return torch.ones(len(t))
        ratio = snr(self.abar[t.cpu()]).float()
        clipped = ratio.clamp(max=self.min_snr_gamma)
        return {"eps": clipped / ratio, "x0": clipped, "v": clipped / (ratio + 1)}[self.prediction]

    # --- sampling -------------------------------------------------------------------------------
    def clean_and_noise(self, output: torch.Tensor, x: torch.Tensor, abar: torch.Tensor):
        """(x0, eps) the network's output stands for at noise level abar."""
        if self.prediction == "eps":
            eps = output
            x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
        elif self.prediction == "x0":
            x0 = output
            eps = (x - abar.sqrt() * x0) / (1 - abar).sqrt()
        else:
            x0 = abar.sqrt() * x - (1 - abar).sqrt() * output
            eps = (1 - abar).sqrt() * x + abar.sqrt() * output
        if self.clip_denoised:
            x0 = x0.clamp(-1, 1)
            eps = (x - abar.sqrt() * x0) / (1 - abar).sqrt()
        return x0, eps

    def integrate(self, predict, start, noise):
        x, eta = start, self.sampling.eta
        steps = sampling_timesteps(self.timesteps, self.sampling.steps)
        abars = self.abar.to(start.device)
        for i, t in enumerate(steps):
            abar = abars[t].float()
            abar_prev = abars[steps[i + 1]].float() if i + 1 < len(steps) else torch.tensor(1.0, device=start.device)
            time = torch.full((len(x),), t, device=x.device, dtype=torch.long)
            x0, eps = self.clean_and_noise(predict(x, time).float(), x, abar)
            sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).clamp(min=0).sqrt()
            x = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma ** 2).clamp(min=0).sqrt() * eps
            if eta > 0 and i + 1 < len(steps):
                x = x + sigma * noise()
        return x


def _ancestral_eta(eta, prefix: str) -> ConfigError:
    return ConfigError(f"{prefix}eta={eta} has no effect with {prefix}sampler=ddpm: ancestral sampling adds the full "
                       f"noise (eta 1) by definition. For DDIM with some noise type {prefix}sampler=ddim "
                       f"{prefix}eta={eta}; for ancestral sampling drop eta.")
