"""Adversarial losses against hand computation on small logits."""

import math

import pytest
import torch

from ganlab.objectives.losses import HingeLoss, LeastSquaresLoss, MinimaxLoss, NonSaturatingLoss, WassersteinLoss

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_bce_matches_binary_cross_entropy_by_hand():
    d = -(math.log(sigmoid(2.0)) + math.log(sigmoid(-1.0))) / 2 - (math.log(1 - sigmoid(0.5)) + math.log(1 - sigmoid(-3.0))) / 2
    g = -(math.log(sigmoid(0.5)) + math.log(sigmoid(-3.0))) / 2
    loss = NonSaturatingLoss()
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    assert loss.g_loss(FAKE).item() == pytest.approx(g, rel=1e-6)


def test_minimax_generator_minimises_log_one_minus_d():
    g = (math.log(1 - sigmoid(0.5)) + math.log(1 - sigmoid(-3.0))) / 2
    assert MinimaxLoss().g_loss(FAKE).item() == pytest.approx(g, rel=1e-6)
    assert MinimaxLoss().g_loss(FAKE).item() < 0  # the saturating form is negative


def test_wasserstein_signs():
    loss = WassersteinLoss()
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx((0.5 - 3.0) / 2 - (2.0 - 1.0) / 2)
    assert loss.g_loss(FAKE).item() == pytest.approx(-(0.5 - 3.0) / 2)


def test_least_squares():
    loss = LeastSquaresLoss()
    d = 0.5 * (((2 - 1) ** 2 + (-1 - 1) ** 2) / 2 + (0.5 ** 2 + 3.0 ** 2) / 2)
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d)
    assert loss.g_loss(FAKE).item() == pytest.approx(0.5 * ((0.5 - 1) ** 2 + (-3 - 1) ** 2) / 2)


def test_hinge():
    loss = HingeLoss()
    d = (max(0, 1 - 2.0) + max(0, 1 + 1.0)) / 2 + (max(0, 1 + 0.5) + max(0, 1 - 3.0)) / 2
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d)
    assert loss.g_loss(FAKE).item() == pytest.approx(1.25)


def test_bce_stays_finite_for_confident_logits():
    huge = torch.tensor([200.0, -200.0])
    assert torch.isfinite(NonSaturatingLoss().d_loss(huge, -huge))
    assert torch.isfinite(NonSaturatingLoss().g_loss(-huge))
