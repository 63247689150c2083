"""Adversarial losses as small objects on raw logits: `d_loss(real, fake)` and `g_loss(fake)`.

All work on D's logits (no sigmoid + BCELoss), so they stay finite however confident D gets.
Penalties (gradient penalty) and constraints (weight clipping) live in `penalties.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class AdversarialLoss:
    """Base class; `name` is how the loss shows up in logs."""

    name = "adversarial"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class NonSaturatingLoss(AdversarialLoss):
    """Binary cross-entropy for D; G maximises log D(G(z)) (Goodfellow et al.'s practical form)."""

    name = "bce"

    def d_loss(self, real_logits, fake_logits):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits):
        return F.softplus(-fake_logits).mean()


class MinimaxLoss(NonSaturatingLoss):
    """The original saturating game: G minimises log(1 - D(G(z))) = -softplus(fake)."""

    name = "minimax"

    def g_loss(self, fake_logits):
        return -F.softplus(fake_logits).mean()


class WassersteinLoss(AdversarialLoss):
    """The critic maximises E[D(real)] - E[D(fake)]; needs a Lipschitz constraint (clipping or GP)."""

    name = "wgan"

    def d_loss(self, real_logits, fake_logits):
        return fake_logits.mean() - real_logits.mean()

    def g_loss(self, fake_logits):
        return -fake_logits.mean()


class LeastSquaresLoss(AdversarialLoss):
    """LSGAN (Mao et al.) with targets real=1, fake=0; halves as in the paper."""

    name = "lsgan"

    def d_loss(self, real_logits, fake_logits):
        return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())

    def g_loss(self, fake_logits):
        return 0.5 * (fake_logits - 1).pow(2).mean()


class HingeLoss(AdversarialLoss):
    """Hinge loss of SNGAN / SAGAN: D pushes real above +1 and fake below -1."""

    name = "hinge"

    def d_loss(self, real_logits, fake_logits):
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def g_loss(self, fake_logits):
        return -fake_logits.mean()
