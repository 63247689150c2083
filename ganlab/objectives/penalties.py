"""Regularisers beside the adversarial loss: penalties add to D's loss, constraints act after its step."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.trust.registry import buildable


def has_batch_norm(network: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in network.modules())


def refuse_batch_norm(discriminator: nn.Module, what: str) -> None:
    """A per-sample gradient penalty is invalid through BatchNorm, which mixes the samples of a batch."""
    if has_batch_norm(discriminator):
        raise ConfigError(f"{what}, but the discriminator uses BatchNorm, which mixes samples in a batch and "
                          "invalidates the penalty. Set model.discriminator.norm=layer (or none / instance), or "
                          "pick a loss without a gradient penalty.")


class Penalty:
    """Base class: `weight` times the penalty, added to D's loss at every step, or, with `every` =
    N > 1 (lazy regularisation, StyleGAN2), as a phase of its own every N steps with its weight
    multiplied by N, so that it weighs the same on average at a fraction of the cost."""

    what = "the penalty"

    def __init__(self, weight: float = 1.0, every: int = 1):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"a penalty's every={every!r} must be a positive integer (1: every step; 16: "
                              "StyleGAN2's lazy R1).")
        self.weight, self.every = weight, every

    def check(self, discriminator: nn.Module) -> None:
        refuse_batch_norm(discriminator, f"{self.what} penalises each sample's gradient")

    def __call__(self, critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                 fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def squared_gradient_norm(critic: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """E[||grad_x D(x)||^2] at `images`, detached from whatever made them: only D gets its gradient."""
    images = images.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(images).sum(), images, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


@buildable("penalty")
class GradientPenalty(Penalty):
    """WGAN-GP (Gulrajani et al.): weight * E[(||grad D(x_hat)||_2 - 1)^2] on real/fake interpolates."""

    what = "loss=wgan_gp"

    def __init__(self, weight: float = 10.0, target: float = 1.0, every: int = 1):
        super().__init__(weight, every)
        self.target = target

    def __call__(self, critic, real, fake):
        mix = torch.rand(real.shape[0], *[1] * (real.ndim - 1), device=real.device)
        interpolates = (mix * real + (1 - mix) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(interpolates).sum(), interpolates, create_graph=True)
        return self.weight * (grad.flatten(1).norm(dim=1) - self.target).pow(2).mean()


@buildable("penalty")
class R1Penalty(Penalty):
    """R1 (Mescheder et al. 2018): weight * E[||grad D(x)||^2] on real samples only, so D stops
    pushing on G once G's samples sit on the data (their fix for non-converging GAN training, and
    StyleGAN's regulariser). The paper's gamma is 2 * weight; `gamma` sets it that way."""

    what = "the R1 penalty"

    def __init__(self, weight: float = 1.0, every: int = 1, gamma: float | None = None):
        super().__init__(gamma / 2 if gamma is not None else weight, every)

    def __call__(self, critic, real, fake):
        return self.weight * squared_gradient_norm(critic, real)


@buildable("penalty")
class R2Penalty(R1Penalty):
    """R2: the same zero-centred penalty on fake samples (R3GAN pairs it with R1); the fakes are
    detached, so its gradient reaches D only."""

    what = "the R2 penalty"

    def __call__(self, critic, real, fake):
        return self.weight * squared_gradient_norm(critic, fake)


@buildable("penalty")
class WeightClipping:
    """The original WGAN's Lipschitz constraint: clamp every D parameter to [-clip, clip] after its step."""

    def __init__(self, clip: float = 0.01):
        if clip <= 0:
            raise ConfigError(f"loss.constraints.weight_clipping.clip={clip} must be positive; the WGAN paper uses 0.01.")
        self.clip = clip

    def check(self, discriminator: nn.Module) -> None:
        pass

    @torch.no_grad()
    def __call__(self, discriminator: nn.Module) -> None:
        for parameter in discriminator.parameters():
            parameter.clamp_(-self.clip, self.clip)
