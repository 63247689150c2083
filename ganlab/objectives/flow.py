"""`model=flow`: conditional flow matching / rectified flow (Lipman et al. 2023, Liu et al. 2023).

x_t = (1 - t) x_noise + t x_data on the straight path from noise (t = 0) to data (t = 1); the network
predicts the velocity x_data - x_noise under the MSE. Time is drawn `uniform` or `logit_normal`
(Esser et al. 2024: sigmoid of N(0, 1), more weight on the middle of the path). Sampling integrates
dx/dt = v(x, t) from noise at t = 0 to t = 1 with `euler` or `heun` (second order: two network
calls a step, the last step Euler's) over `steps` equal steps.

The network sees t scaled to 0..1000, the range its sinusoidal embedding was made for (DDPM's steps).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.objectives.denoising import DenoisingObjective, Sampling
from ganlab.trust.registry import buildable

TIME_SCALE = 1000.0
TIME_SAMPLING = ("uniform", "logit_normal")


def euler(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from t = 0 to 1 in `steps` equal Euler steps."""
    dt = 1.0 / steps
    for i in range(steps):
        t = torch.full((len(x),), i * dt, device=x.device)
        x = x + dt * velocity(x, t)
    return x


def heun(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, steps: int) -> torch.Tensor:
    """Heun's method (the trapezoid rule with an Euler predictor) from t = 0 to 1 in `steps` steps."""
    dt = 1.0 / steps
    for i in range(steps):
        t = torch.full((len(x),), i * dt, device=x.device)
        slope = velocity(x, t)
        guess = x + dt * slope
        x = x + dt / 2 * (slope + velocity(guess, t + dt))
    return x


INTEGRATORS = {"euler": euler, "heun": heun}


@buildable("objective")
class FlowObjective(DenoisingObjective):
    samplers = ("euler", "heun")
    deterministic = ("euler", "heun")

    def __init__(self, denoiser: nn.Module, resolution: int, channels: int, num_classes: int = 0,
                 time_sampling: str = "uniform", p_uncond: float = 0.1, sampler: str = "euler",
                 sample_steps: int = 25, guidance: float = 1.0):
        if time_sampling not in TIME_SAMPLING:
            raise ConfigError(f"model.objective.time_sampling={time_sampling!r} is not known; use uniform or "
                              "logit_normal.")
        self.time_sampling = time_sampling
        super().__init__(denoiser, resolution, channels, num_classes, Sampling(sampler, sample_steps, guidance),
                         p_uncond)

    def check_sampling(self, sampling, prefix=""):
        if sampling.eta:
            raise ConfigError(f"{prefix}eta={sampling.eta} is DDIM's noise; a flow's samplers (euler, heun) add none. "
                              "Drop eta.")
        return super().check_sampling(sampling, prefix)

    def draw_times(self, n: int, device: torch.device) -> torch.Tensor:
        if self.time_sampling == "logit_normal":
            return torch.sigmoid(torch.randn(n, device=device))
        return torch.rand(n, device=device)

    def corrupt(self, images):
        n = len(images)
        t = self.draw_times(n, images.device)
        noise = torch.randn_like(images)
        along = t.view(n, *[1] * (images.ndim - 1))
        noised = (1 - along) * noise + along * images
        return noised, t * TIME_SCALE, images - noise, torch.ones(n, device=images.device), 1 - t

    def integrate(self, predict, start, noise):
        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return predict(x, t * TIME_SCALE).float()

        return INTEGRATORS[self.sampling.sampler](velocity, start, self.sampling.steps)
