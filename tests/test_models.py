"""DCGAN shapes for each resolution, logits out of D, and clear errors for what it cannot build."""

import pytest
import torch

from ganlab.errors import ConfigError
from ganlab.models.blocks import count_parameters
from ganlab.models.dcgan import DCGANDiscriminator, DCGANGenerator


@pytest.mark.parametrize("resolution,channels", [(8, 1), (16, 1), (28, 1), (32, 3), (64, 3), (96, 3)])
def test_generator_and_discriminator_shapes(resolution, channels):
    g = DCGANGenerator(resolution, channels, latent_dim=10, width=4)
    d = DCGANDiscriminator(resolution, channels, width=4)
    z = torch.randn(3, *g.latent_shape)
    images = g(z)
    assert images.shape == (3, channels, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1  # tanh output
    assert d(images).shape == (3, 1)


def test_discriminator_returns_unbounded_logits():
    d = DCGANDiscriminator(16, 1, width=4, norm="none")
    with torch.no_grad():
        for p in d.parameters():
            p.fill_(0.5)
    assert d(torch.ones(2, 1, 16, 16)).abs().max() > 1  # no sigmoid at the end


def test_default_32px_parameter_counts_match_the_architecture():
    g = DCGANGenerator(32, 1, latent_dim=100, width=64)
    d = DCGANDiscriminator(32, 1, width=64)
    # G: 100->256 (4x4), 256->128, 128->64, 64->1 (+bias) transposed convs and 3 BatchNorms.
    g_expected = 100 * 256 * 16 + 256 * 128 * 16 + 128 * 64 * 16 + 64 * 1 * 16 + 1 + 2 * (256 + 128 + 64)
    # D: 1->64 (+bias), 64->128, 128->256 convs, 2 BatchNorms, 256->1 (4x4, +bias).
    d_expected = 1 * 64 * 16 + 64 + 64 * 128 * 16 + 128 * 256 * 16 + 2 * (128 + 256) + 256 * 16 + 1
    assert count_parameters(g) == g_expected
    assert count_parameters(d) == d_expected


@pytest.mark.parametrize("resolution", [30, 100, 3])
def test_unbuildable_resolution_is_a_config_error(resolution):
    with pytest.raises(ConfigError, match=f"dataset.resolution={resolution}.*e.g. 28, 32, 64, 96"):
        DCGANGenerator(resolution, 1)


def test_unknown_norm_names_the_options():
    with pytest.raises(ConfigError, match="none, batch, layer, instance"):
        DCGANDiscriminator(32, 1, norm="group")


@pytest.mark.parametrize("norm,layer", [("none", None), ("batch", torch.nn.BatchNorm2d), ("layer", torch.nn.GroupNorm),
                                        ("instance", torch.nn.InstanceNorm2d)])
def test_discriminator_norm_options_and_spectral_norm_run(norm, layer):
    d = DCGANDiscriminator(16, 3, width=4, norm=norm, spectral_norm=True, dropout=0.3)
    assert d(torch.randn(4, 3, 16, 16)).shape == (4, 1)
    norms = [m for m in d.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.InstanceNorm2d,
                                                     torch.nn.LayerNorm))]
    assert (not norms) if layer is None else (norms and all(isinstance(m, layer) for m in norms)), norms
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)  # spectral norm
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in d.modules())


@pytest.mark.parametrize("init,zero_bias", [("dcgan", True), ("examples", False)])
def test_dcgan_inits_draw_normal_weights_and_differ_only_in_the_biases(init, zero_bias):
    torch.manual_seed(0)
    d = DCGANDiscriminator(28, 1, width=64, init=init)
    first, last = d.main[0], d.main[-1]
    assert abs(first.weight.std().item() - 0.02) < 0.003  # N(0, 0.02) either way
    assert (first.bias.abs().max().item() == 0) == zero_bias  # 'examples' keeps PyTorch's uniform biases
    assert (last.bias.abs().max().item() == 0) == zero_bias
    with pytest.raises(ConfigError, match="'examples'"):
        DCGANDiscriminator(28, 1, width=4, init="xavier")
