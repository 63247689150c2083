"""Every model x loss pair trains (or is refused with a reason), and the regularisers do their job."""

import pytest
import torch
from torch import nn

from conftest import SHRINK, adversarial_losses, compose_config, gan_models
from ganlab.errors import ConfigError
from ganlab.records.logging import read_metrics
from ganlab.models.dcgan import DCGANDiscriminator
from ganlab.models.mlp import MLPDiscriminator, MLPGenerator
from ganlab.objectives.penalties import GradientPenalty, R1Penalty, has_batch_norm
from omegaconf import OmegaConf
from ganlab.training.train import train

MODELS = gan_models()  # from configs/model and configs/loss: a new model or loss joins the matrix
LOSSES = adversarial_losses()


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", [m if m == "dcgan" else pytest.param(m, marks=pytest.mark.slow) for m in MODELS])
def test_every_model_loss_pair_trains(tmp_path, model, loss):
    """Every pair trains as typed (the WGAN-GP pairs through model_loss; a pair forced to fail is
    refused in test_wgan_gp_swaps_batch_norm_in_the_critic_and_refuses_it_when_forced)."""
    cfg = compose_config([f"model={model}", f"loss={loss}", "schedule.steps=2", "schedule.log_every=1",
                          "schedule.sample_every=2"])
    loop = train(cfg, tmp_path)
    rows = [r for r in read_metrics(tmp_path) if "loss/D" in r]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(torch.isfinite(torch.tensor([r["loss/D"], r["loss/G"]])).all() for r in rows)
    if loss == "wgan_gp":  # the penalty is computed and added: a random critic's gradient norm is not exactly 1
        assert all(0 < r["D/gradient_penalty"] < float("inf") for r in rows), rows
    assert (tmp_path / "samples" / "step_000002.png").is_file()
    assert loop.step == 2


@pytest.mark.parametrize("model,norm_key", [("dcgan", "model.discriminator.norm"),
                                            ("convstack", "model.discriminator.norm"),
                                            ("cgan", "model.discriminator.backbone.norm")])
def test_wgan_gp_swaps_batch_norm_in_the_critic_and_refuses_it_when_forced(tmp_path, model, norm_key):
    cfg = compose_config([f"model={model}", "loss=wgan_gp", "schedule.steps=1"])
    assert OmegaConf.select(cfg, norm_key) == "layer"  # the model_loss pairing
    assert not has_batch_norm(train(cfg, tmp_path / "ok").networks["discriminator"])
    forced = compose_config([f"model={model}", "loss=wgan_gp", f"{norm_key}=batch"])
    with pytest.raises(ConfigError, match="BatchNorm.*model.discriminator.norm=layer"):
        train(forced, tmp_path / "refused")


def test_gradient_penalty_matches_an_independent_computation():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 1))
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    torch.manual_seed(1)
    ours = GradientPenalty(weight=10.0)(critic, real, fake)
    torch.manual_seed(1)
    eps = torch.rand(5, 1, 1, 1)
    expected = 0.0
    for i in range(5):  # one sample at a time, by plain autograd
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x)
        expected += (g.norm() - 1) ** 2
    assert ours.item() == pytest.approx(10.0 * expected.item() / 5, rel=1e-5)
    ours.backward()  # it must be differentiable w.r.t. the critic's weights (create_graph)
    assert critic[1].weight.grad is not None and critic[1].weight.grad.abs().sum() > 0


def test_r1_penalty_is_the_squared_gradient_norm_on_real_samples_and_trains(tmp_path):
    weights = torch.tensor([[3.0, 4.0]])
    critic = nn.Linear(2, 1, bias=False)
    critic.weight.data.copy_(weights)
    real = torch.randn(6, 2)
    penalty = R1Penalty(weight=0.5)(critic, real, fake=torch.randn(6, 2))
    assert penalty.item() == pytest.approx(0.5 * 25.0)  # ||grad|| = ||w|| = 5 for every real sample
    penalty.backward()  # differentiable w.r.t. D's weights: d/dw (0.5 ||w||^2) = w
    assert torch.allclose(critic.weight.grad, weights)
    cfg = compose_config(["model=mlp", "schedule.steps=2", "schedule.log_every=1",
                          "+loss.penalties.r1._target_=ganlab.objectives.penalties.R1Penalty", "+loss.penalties.r1.weight=1.0"])
    train(cfg, tmp_path)
    assert all(row["D/r1"] > 0 for row in read_metrics(tmp_path))


@pytest.mark.parametrize("per_sample", [0, 1])
def test_a_packed_discriminator_judges_each_pack_of_samples_jointly(per_sample):
    torch.manual_seed(0)
    d = MLPDiscriminator((2,), hidden=[16, 16], pack=4, per_sample=per_sample)
    x = torch.randn(8, 2)
    logits = d(x)
    assert logits.shape == (2, 1)  # two packs of four
    changed = x.clone()
    changed[5] += 1.0  # a sample of the second pack
    after = d(changed)
    assert torch.equal(after[0], logits[0]) and not torch.equal(after[1], logits[1])
    first = d.each[1] if per_sample else d.main[1]
    assert first.in_features == (2 if per_sample else 8)  # per-sample layers see one sample, shared by the pack
    if per_sample:  # ... and equal running that layer on every sample, then the joint layers on the pack
        assert torch.allclose(logits, d.main(d.each(x).reshape(2, -1)))
    with pytest.raises(ConfigError, match="pack=4 needs batches that are a multiple of it"):
        d(torch.randn(6, 2))


def test_a_categorical_latent_is_read_off_z_and_fed_as_a_one_hot():
    torch.manual_seed(0)
    g = MLPGenerator((2,), latent_dim=8, hidden=[16], categories=4, category_scale=3.0)
    assert g.main[0].in_features == 8 + 4 and g.latent_shape == (8,)  # drawing z is unchanged
    z = torch.randn(64, 8)
    picked = z[:, :4].argmax(1)
    expected = g.main(torch.cat([z, 3.0 * torch.nn.functional.one_hot(picked, 4).float()], 1))
    assert torch.equal(g(z), expected)
    assert set(picked.tolist()) == {0, 1, 2, 3}  # argmax of i.i.d. coordinates: equally likely categories
    g.category_scale = 0.0  # the one-hot carries information G uses
    assert not torch.allclose(g(z), expected)
    with pytest.raises(ConfigError, match="categories=9 must be between 0"):
        MLPGenerator((2,), latent_dim=8, categories=9)


def test_weight_clipping_holds_after_every_step(tmp_path):
    cfg = compose_config(["model=mlp", "loss=wgan", "optimizer=rmsprop", "optimizer.lr=0.5", "schedule.steps=3",
                          "schedule.n_critic=2", "loss.constraints.weight_clipping.clip=0.02",
                          "schedule.snapshot_every=1", "schedule.keep_last=5"])
    train(cfg, tmp_path)
    snapshots = sorted((tmp_path / "checkpoints").glob("step_*.pt"))
    assert [p.name for p in snapshots] == ["step_000001.pt", "step_000002.pt", "step_000003.pt"]
    for path in snapshots:  # at lr 0.5, one unclipped update would leave weights far beyond 0.02
        weights = torch.load(path, weights_only=True)["networks"]["discriminator"]
        assert max(float(w.abs().max()) for k, w in weights.items() if w.is_floating_point()) <= 0.02 + 1e-7


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    d = DCGANDiscriminator(16, 3, width=8, norm="none", spectral_norm=True)
    for _ in range(30):  # power iterations run in training-mode forwards
        d(torch.randn(4, 3, 16, 16))
    d.eval()
    for module in d.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            sigma = torch.linalg.matrix_norm(module.weight.flatten(1), ord=2)
            assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_per_network_optimizer_settings(tmp_path):
    cfg = compose_config(["schedule.steps=1", "schedule.log_every=1", "optimizer.lr=2e-4",
                          "+optimizer.per_network.discriminator.lr=4e-4",
                          "+optimizer.per_network.generator.betas=[0.0,0.9]"])
    loop = train(cfg, tmp_path)
    d, g = loop.optimizers["discriminator"].param_groups[0], loop.optimizers["generator"].param_groups[0]
    assert (d["lr"], g["lr"]) == (4e-4, 2e-4)
    assert tuple(g["betas"]) == (0.0, 0.9) and tuple(d["betas"]) == (0.5, 0.999)
    row = read_metrics(tmp_path)[-1]
    assert (row["lr/discriminator"], row["lr/generator"]) == (4e-4, 2e-4)


@pytest.mark.parametrize("resolution", [32, 64])
def test_resnet_shapes(resolution):
    from ganlab.models.resnet import ResNetDiscriminator, ResNetGenerator

    g, d = ResNetGenerator(resolution, 3, width=8), ResNetDiscriminator(resolution, 3, width=8, spectral_norm=True)
    images = g(torch.randn(2, 128))
    assert images.shape == (2, 3, resolution, resolution) and d(images).shape == (2, 1)


@pytest.mark.parametrize("margin, extras", [(-100, [0, 1, 2, 2]), (100, [0, 0, 0, 0])])
def test_adaptive_rule_adds_generator_updates_one_step_late(tmp_path, margin, extras):
    cfg = compose_config(["schedule.steps=4", "schedule.log_every=1", "schedule.adaptive.phase=G",
                          f"schedule.adaptive.margin={margin}", "schedule.adaptive.max_extra=2"])
    train(cfg, tmp_path)
    # extra update k of a step runs when the gap after update k of the step before exceeded the margin
    assert [row["schedule/extra_G"] for row in read_metrics(tmp_path)] == extras


def test_linear_lr_decay_after_its_start(tmp_path):
    # steps 1-2 at the full rate, then the rate of each step falls linearly towards 0 after the last
    cfg = compose_config(["schedule.steps=4", "schedule.log_every=1", "schedule.lr_decay=linear",
                          "schedule.lr_decay_start=0.5", "optimizer.lr=1e-3"])
    train(cfg, tmp_path)
    lrs = [r["lr/generator"] for r in read_metrics(tmp_path) if "lr/generator" in r]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4])


def test_bad_adaptive_phase_names_the_phases(tmp_path):
    with pytest.raises(ConfigError, match="schedule.adaptive.phase='E'.*'D', 'G'"):
        train(compose_config(["schedule.adaptive.phase=E"]), tmp_path)


def test_toy_ring_run_draws_a_scatter_plot_and_counts_modes(tmp_path):
    cfg = compose_config(["model=mlp", "dataset=ring", "schedule.steps=4", "schedule.sample_every=4",
                          "schedule.log_every=4"])
    train(cfg, tmp_path)
    from PIL import Image

    import numpy as np

    plot = np.asarray(Image.open(tmp_path / "samples" / "step_000004.png").convert("RGB")).astype(int)
    assert plot.shape == (256 + 24 + 6, 256, 3)  # the scatter plot under its title (name and step, 24-point text)
    red = (plot[..., 0] > 180) & (plot[..., 1] < 80)
    grey = (abs(plot[..., 0] - 153) < 10) & (abs(plot[..., 1] - 153) < 10)
    assert red.sum() > 50 and grey.sum() > 50  # generated points over the real ones
    row = read_metrics(tmp_path)[-1]
    # the logged diagnostics are the mixture's own count on the fixed samples the plot shows
    from ganlab.training import run as runs
    from ganlab.data.toys import load_ring

    opened = runs.open(tmp_path)
    points = opened.objective.samples(opened.fixed, opened.sampling_networks())
    expected = load_ring().mode_coverage(points)
    assert row["diagnostics/modes_covered"] == expected["modes_covered"]
    assert row["diagnostics/high_quality"] == pytest.approx(expected["high_quality"])


def test_conditional_gan_generates_the_requested_mode(tmp_path):
    """A cGAN with MLP backbones on the 8-Gaussian ring: asked for mode k, it lands near mode k."""
    torch.manual_seed(0)
    cfg = compose_config([
        *SHRINK, "model=cgan", "dataset=ring", "dataset.batch_size=128", "dataset.std=0.05",
        "generator_backbone=mlp", "model.generator.backbone.hidden=[64,64]", "model.generator.latent_dim=4",
        "discriminator_backbone=mlp", "model.discriminator.backbone.hidden=[64,64]",
        "optimizer.lr=2e-3", "schedule.steps=400", "schedule.log_every=400", "schedule.sample_every=400"],
        shrink=False)
    loop = train(cfg, tmp_path)
    from ganlab.data.toys import ring_modes

    modes = ring_modes()
    g = loop.networks["generator"].eval()
    hits = 0
    with torch.no_grad():
        for k in range(8):
            points = g(torch.randn(200, 4), torch.full((200,), k))
            nearest = torch.cdist(points, modes).argmin(dim=1)
            hits += (nearest == k).float().mean().item()
    assert hits / 8 > 0.8, f"only {hits / 8:.0%} of samples landed on the requested mode"
