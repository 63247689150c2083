"""The unconditional GAN objective: a D phase (repeated `n_critic` times), then a G phase."""

from __future__ import annotations

import torch
from torch import nn

from ganlab.losses import AdversarialLoss
from ganlab.objectives.base import Objective, Phase


class GANObjective(Objective):
    ema_networks = ("generator",)

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss,
                 n_critic: int = 1, g_steps: int = 1):
        self.networks = {"generator": generator, "discriminator": discriminator}
        self.adversarial = loss
        self.phases = [Phase("D", "discriminator", n_critic), Phase("G", "generator", g_steps, uses_data=False)]

    @property
    def generator(self) -> nn.Module:
        return self.networks["generator"]

    @property
    def discriminator(self) -> nn.Module:
        return self.networks["discriminator"]

    def noise(self, count: int, device: torch.device) -> torch.Tensor:
        return torch.randn(count, *self.generator.latent_shape, device=device)

    def loss(self, phase, batch):
        real = batch["image"]
        fake = self.generator(self.noise(real.shape[0], real.device))
        if phase == "D":
            real_logits = self.discriminator(real)
            fake_logits = self.discriminator(fake.detach())  # D's step must not reach into G
            loss = self.adversarial.d_loss(real_logits, fake_logits)
            return loss, {"real_logit": real_logits.detach().mean(), "fake_logit": fake_logits.detach().mean()}
        return self.adversarial.g_loss(self.discriminator(fake)), {}

    def fixed_inputs(self, count, device):
        return {"noise": self.noise(count, device)}

    @torch.no_grad()
    def snapshots(self, fixed, networks):
        images = networks["generator"](fixed["noise"])
        return {"samples": (images.clamp(-1, 1) + 1) / 2}
