"""Stacked MNIST: three independent digits an image (1,000 modes), and the metric that counts them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import compose_config
from fake_data import make_mnist
from ganlab.data.stacked import load_stacked_mnist, mode_of
from ganlab.metrics.classifier import Judge, mode_statistics, stacked_modes
from ganlab.metrics.registry import Inputs
from ganlab.records.logging import read_metrics
from ganlab.training.train import train


class CentreBrightness(nn.Module):
    """A real 1-channel digit classifier for the test digits, whose brightness encodes the label
    (k -> 20 + 20k): the logit of k falls with the distance to that brightness."""

    centres = torch.tensor([(20 + 20 * k) / 255 * 2 - 1 for k in range(10)])

    def features(self, x):
        return x[:, :, 14, 14]

    def head(self, hidden):
        return -((hidden - self.centres) ** 2) * 1e4


def judge() -> Judge:
    return Judge(CentreBrightness(), "tanh", "centre-brightness", per_channel=True)


def inputs(images: torch.Tensor) -> Inputs:
    return Inputs(images, None, None, "", torch.device("cpu"), cache_dir=None, classifier=judge())


def test_three_independent_digits_per_image_reproducible_by_seed(tmp_path):
    root = make_mnist(tmp_path, n=200)
    digits = load_stacked_mnist(str(root), size=3000, batch_size=16)
    assert digits.images.shape == (3000, 3, 28, 28) and digits.facts.channels == 3
    centre = digits.images[:, :, 14, 14].long()
    channel_digits = (centre - 20) // 20
    assert torch.equal(mode_of(channel_digits), digits.labels)  # the label is the mode of the three digits
    # independent channels: each pair of channels agrees about as often as chance (1 in 10)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert abs(float((channel_digits[:, a] == channel_digits[:, b]).float().mean()) - 0.1) < 0.03
    assert len(digits.labels.unique()) > 900  # nearly all 1,000 modes in 3,000 images
    again = load_stacked_mnist(str(root), size=3000, batch_size=16)
    other = load_stacked_mnist(str(root), size=3000, batch_size=16, seed=1)
    assert torch.equal(again.images, digits.images) and not torch.equal(other.images, digits.images)


def test_the_metric_counts_all_modes_of_real_images_and_one_for_a_collapsed_generator(tmp_path):
    root = make_mnist(tmp_path, n=200)
    stacked = load_stacked_mnist(str(root), size=26000, batch_size=16)  # PacGAN's 26,000 samples
    real = stacked.images
    values = stacked_modes(inputs(real))
    assert values == pytest.approx(mode_statistics(stacked.labels))  # what the true digits say
    assert values["stacked_modes"] == 1000 and values["stacked_kl"] < 0.15  # these test digits are not balanced
    collapsed = stacked_modes(inputs(real[:1].repeat(26000, 1, 1, 1)))
    assert collapsed["stacked_modes"] == 1 and collapsed["stacked_kl"] == pytest.approx(math.log(1000))


def test_a_stacked_mnist_run_trains(tmp_path):
    root = make_mnist(tmp_path / "data", n=64)
    loop = train(compose_config(["dataset=stacked_mnist", f"dataset.root={root}", "dataset.size=128",
                                 "dataset.resolution=28", "model.discriminator.pack=2", "schedule.steps=2",
                                 "schedule.log_every=1"]), tmp_path / "run")
    assert loop.step == 2 and loop.run.facts.shape == (3, 28, 28)  # three stacked digits, one per channel
    d = loop.networks["discriminator"]
    assert next(m for m in d.modules() if isinstance(m, torch.nn.Conv2d)).in_channels == 3 * 2  # PacGAN packs 2
    rows = [r for r in read_metrics(tmp_path / "run") if "loss/D" in r]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss/D"] == r["loss/D"] for r in rows)  # finite, logged
    from ganlab.records import checkpoint

    assert checkpoint.load(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 2
