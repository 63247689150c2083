"""Adversarial losses as small objects on raw logits: `d_loss(real, fake)` and `g_loss(fake, real)`.

All work on D's logits (no sigmoid + BCELoss), so they stay finite however confident D gets. G's
loss gets D's logits on real images only when the loss asks for them (`g_needs_real`: the
relativistic losses); the others are called with real=None. Penalties (gradient penalty, R1, R2)
and constraints (weight clipping) live in `penalties.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from ganlab.trust.registry import buildable


class AdversarialLoss:
    """Base class; `name` is how the loss shows up in logs."""

    name = "adversarial"
    g_needs_real = False  # whether g_loss compares with D's logits on real images

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


@buildable("loss")
class NonSaturatingLoss(AdversarialLoss):
    """Binary cross-entropy for D; G maximises log D(G(z)) (Goodfellow et al.'s practical form)."""

    name = "bce"

    def d_loss(self, real_logits, fake_logits):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits, real_logits=None):
        return F.softplus(-fake_logits).mean()


@buildable("loss")
class MinimaxLoss(NonSaturatingLoss):
    """The original saturating game: G minimises log(1 - D(G(z))) = -softplus(fake)."""

    name = "minimax"

    def g_loss(self, fake_logits, real_logits=None):
        return -F.softplus(fake_logits).mean()


@buildable("loss")
class WassersteinLoss(AdversarialLoss):
    """The critic maximises E[D(real)] - E[D(fake)]; needs a Lipschitz constraint (clipping or GP)."""

    name = "wgan"

    def d_loss(self, real_logits, fake_logits):
        return fake_logits.mean() - real_logits.mean()

    def g_loss(self, fake_logits, real_logits=None):
        return -fake_logits.mean()


@buildable("loss")
class LeastSquaresLoss(AdversarialLoss):
    """LSGAN (Mao et al.) with targets real=1, fake=0; halves as in the paper."""

    name = "lsgan"

    def d_loss(self, real_logits, fake_logits):
        return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())

    def g_loss(self, fake_logits, real_logits=None):
        return 0.5 * (fake_logits - 1).pow(2).mean()


@buildable("loss")
class HingeLoss(AdversarialLoss):
    """Hinge loss of SNGAN / SAGAN: D pushes real above +1 and fake below -1."""

    name = "hinge"

    def d_loss(self, real_logits, fake_logits):
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def g_loss(self, fake_logits, real_logits=None):
        return -fake_logits.mean()


@buildable("loss")
class RelativisticPairingLoss(AdversarialLoss):
    """RpGAN (Jolicoeur-Martineau 2019; the loss of R3GAN, Huang et al. 2024): each real logit is
    compared with a fake one, D minimising softplus(-(D(x_r) - D(x_f))) and G softplus(-(D(x_f) -
    D(x_r))). Pairs are taken in batch order; G's loss needs the real logits too."""

    name = "rpgan"
    g_needs_real = True

    def d_loss(self, real_logits, fake_logits):
        return F.softplus(-(real_logits - fake_logits)).mean()

    def g_loss(self, fake_logits, real_logits=None):
        if real_logits is None:
            raise ValueError("RpGAN's generator loss needs D's logits on real images")
        return F.softplus(-(fake_logits - real_logits)).mean()
