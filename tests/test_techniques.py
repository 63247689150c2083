"""Modern training techniques: DiffAugment and ADA's adaptive p, RpGAN, R2, lazy penalties."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import compose_config
from ganlab.objectives.augment import DiffAugment, color, cutout, translation
from ganlab.records.checkpoint import load
from ganlab.errors import ConfigError
from ganlab.records.logging import read_metrics
from ganlab.objectives.losses import RelativisticPairingLoss
from ganlab.objectives.penalties import R2Penalty
from ganlab.training.train import train


@pytest.mark.parametrize("name", ["color", "translation", "cutout"])
def test_each_augmentation_keeps_shape_and_range_and_passes_gradients(name):
    torch.manual_seed(0)
    x = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_(True)
    out = {"color": lambda t: color(t, -1.0, 1.0), "translation": translation, "cutout": cutout}[name](x)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    assert not torch.equal(out, x)  # it did something
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_shifts_by_at_most_an_eighth_and_cutout_zeroes_half_a_side():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0  # one lit pixel
    moved = translation(x)
    where = moved.flatten(1).argmax(1)
    rows, cols = where // 16 - 8, where % 16 - 8
    assert rows.abs().max() <= 2 and cols.abs().max() <= 2 and (rows != 0).any()  # 16 / 8 = 2 px at most
    holes = (cutout(torch.ones(64, 1, 16, 16)) == 0).flatten(1).sum(1)
    assert holes.max() == 64 and holes.min() > 0  # an 8 x 8 square, cut where it reaches past an edge


def test_the_sizes_are_keys_milder_ones_shift_and_cut_less_and_bad_ones_are_refused():
    torch.manual_seed(0)
    augment = DiffAugment(["translation"], translation=0.0625)  # 1 px of 16
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    where = augment(x).flatten(1).argmax(1)
    rows, cols = where // 16 - 8, where % 16 - 8
    assert rows.abs().max() == 1 and cols.abs().max() == 1
    holes = (DiffAugment(["cutout"], cutout=0.25)(torch.ones(64, 1, 16, 16)) == 0).flatten(1).sum(1)
    assert holes.max() == 16 and holes.min() > 0  # a 4 x 4 square
    cfg = compose_config(["augment.policy=[translation]", "augment.translation=0.0625"])
    assert cfg.augment.translation == 0.0625
    with pytest.raises(ConfigError, match=r"augment.cutout=1.5 is a fraction of the image size"):
        DiffAugment(["cutout"], cutout=1.5)


def test_every_discriminator_input_is_augmented_real_and_fake_in_both_updates():
    cfg = compose_config(["augment.policy=[cutout]", "schedule.steps=1"])
    from ganlab.training import run as runs
    from ganlab.trust.build import allowed_prefixes, to_plain
    from ganlab.data.memory import DataFacts

    run = runs.build(to_plain(cfg), DataFacts(shape=(1, 16, 16), resolution=16, channels=1, num_classes=10),
                     "tanh", torch.device("cpu"), allowed_prefixes())
    objective, seen = run.objective, []
    objective.networks["discriminator"].register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    batch = {"image": torch.ones(4, 1, 16, 16), "label": torch.zeros(4, dtype=torch.long),
             "latent": objective.latent(4)}
    objective.loss("D", batch)
    objective.loss("G", batch)
    assert len(seen) == 3  # D's real and fake, then G's fake
    for images in seen:
        assert ((images == 0).flatten(1).sum(1) > 0).all()  # each image has its cutout square


def test_adaptive_p_rises_when_d_overfits_falls_when_it_does_not():
    augment = DiffAugment(["translation"], adaptive=True, target=0.6, kimg=1.0, interval=4)
    assert float(augment.p) == 0.0
    for step in range(1, 9):  # D scores every real image high: r_t = 1 > 0.6
        augment.observe(torch.full((25,), 3.0))
        augment.begin_step(step)
    # adjusted at steps 4 and 8, each time by the 100 real images seen since over 1,000 (kimg=1)
    assert float(augment.rt) == 1.0 and float(augment.p) == pytest.approx(0.2)
    for step in range(9, 13):  # no longer: r_t = 0 < 0.6
        augment.observe(torch.tensor([1.0, -1.0] * 10))
        augment.begin_step(step)
    assert float(augment.rt) == 0.0 and float(augment.p) == pytest.approx(0.2 - 80 / 1000)


def test_adaptive_p_is_logged_saved_and_resumes_exactly(tmp_path):
    # target -1: r_t is always above it, so p rises at every adjustment (steps 4 and 8)
    common = ["augment.policy=[translation,cutout]", "augment.adaptive=true", "augment.kimg=0.05", "augment.target=-1",
              "schedule.log_every=1", "schedule.ckpt_every=2"]
    train(compose_config([*common, "schedule.steps=8"]), tmp_path / "whole")
    train(compose_config([*common, "schedule.steps=4"]), tmp_path / "split")
    train(compose_config([*common, "schedule.steps=8", "resume=true"]), tmp_path / "split")
    whole, split = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "split")
    assert [r["augment/p"] for r in whole] == [r["augment/p"] for r in split]
    assert [r["loss/D"] for r in whole] == [r["loss/D"] for r in split]
    assert whole[-1]["augment/p"] != whole[0]["augment/p"] and "augment/rt" in whole[-1]
    saved = load(tmp_path / "whole" / "checkpoints" / "last.pt")["objective"]["augment"]
    assert float(saved["p"]) == pytest.approx(whole[-1]["augment/p"])


def test_a_bad_policy_names_the_policies():
    with pytest.raises(ConfigError, match="use any of color, translation, cutout"):
        DiffAugment(["flip"])


def test_rpgan_losses_match_a_hand_computation():
    # pairs (2, 0), (-1, 1), (0.5, 1.5): real - fake = 2, -2, -1; softplus(x) = log(1 + e^x) by hand:
    # D: (softplus(-2) + softplus(2) + softplus(1)) / 3 = (0.126928 + 2.126928 + 1.313262) / 3
    # G: (softplus(2) + softplus(-2) + softplus(-1)) / 3 = (2.126928 + 0.126928 + 0.313262) / 3
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.0, 1.0, 1.5])
    loss = RelativisticPairingLoss()
    assert loss.d_loss(real, fake).item() == pytest.approx(1.1890392, abs=1e-6)
    assert loss.g_loss(fake, real).item() == pytest.approx(0.8557059, abs=1e-6)


def test_r2_penalises_fake_gradients_and_reaches_only_d():
    critic = nn.Linear(2, 1, bias=False)
    critic.weight.data.copy_(torch.tensor([[3.0, 4.0]]))
    generator = nn.Linear(2, 2)
    fake = generator(torch.randn(6, 2))
    penalty = R2Penalty(weight=0.5)(critic, real=torch.randn(6, 2), fake=fake)
    assert penalty.item() == pytest.approx(0.5 * 25.0)
    penalty.backward()
    assert critic.weight.grad is not None and all(p.grad is None for p in generator.parameters())


def test_r3gan_trains_with_rpgan_r1_and_r2(tmp_path):
    train(compose_config(["loss=r3gan", "loss.gamma=0.4", "schedule.steps=2", "schedule.log_every=1"]), tmp_path)
    rows = read_metrics(tmp_path)
    assert all(r["D/r1"] > 0 and r["D/r2"] > 0 for r in rows)
    state = load(tmp_path / "checkpoints" / "last.pt")
    assert state["config"]["model"]["objective"]["penalties"]["r2"]["gamma"] == 0.4


def test_a_lazy_penalty_runs_every_nth_step_with_its_weight_scaled(tmp_path):
    cfg = compose_config(["model=mlp", "schedule.steps=9", "schedule.log_every=1",
                          "+loss.penalties.r1._target_=ganlab.objectives.penalties.R1Penalty", "+loss.penalties.r1.weight=2.0",
                          "+loss.penalties.r1.every=4"])
    training = train(cfg, tmp_path)
    rows = read_metrics(tmp_path)
    ran = [r["step"] - 1 for r in rows if "loss/D_r1" in r]  # the step index the row's step completed
    assert ran == [0, 4, 8]
    for row in (r for r in rows if "loss/D_r1" in r):
        assert row["loss/D_r1"] == pytest.approx(4 * row["D_r1/r1"], rel=1e-5)  # weighted 4 times
        assert "D/r1" not in row  # not also in D's every-step loss
    assert [p.name for p in training.objective.phases] == ["D", "G", "D_r1"]


def test_dataset_limit_keeps_a_seeded_class_balanced_subset(tmp_path, caplog):
    from ganlab.data.digits import load_digits
    from ganlab.data.memory import limited

    full = load_digits(resolution=16, batch_size=16)
    kept = limited(full, 105, seed=3)
    assert len(kept) == 105 and torch.bincount(kept.labels).tolist() == [11] * 5 + [10] * 5
    assert torch.equal(limited(full, 105, seed=3).images, kept.images)  # the same subset every time
    assert not torch.equal(limited(full, 105, seed=4).images, kept.images)
    with caplog.at_level("INFO", logger="ganlab"):
        training = train(compose_config(["dataset.limit=64", "schedule.steps=2"]), tmp_path)
    assert len(training.state.batches.data) == 64 and "training on 64 of 1,797 images" in caplog.text
    assert load(tmp_path / "checkpoints" / "last.pt")["images"] == 64


def test_dataset_limit_refuses_a_non_positive_count(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.limit=0 must be a positive number"):
        train(compose_config(["dataset.limit=0"]), tmp_path)


def test_a_packed_conv_discriminator_gives_one_logit_per_pack(tmp_path):
    from ganlab.models.dcgan import DCGANDiscriminator

    torch.manual_seed(0)
    d = DCGANDiscriminator(resolution=16, channels=3, width=8, pack=2).eval()  # BatchNorm: running statistics
    x = torch.randn(6, 3, 16, 16)
    assert d(x).shape == (3, 1)
    swapped = x.clone()
    swapped[[0, 1]] = x[[1, 0]]  # the order inside a pack matters: its members are distinct inputs
    assert not torch.allclose(d(swapped)[0], d(x)[0]) and torch.allclose(d(swapped)[1:], d(x)[1:])
    with pytest.raises(ConfigError, match="pack=2 needs batches that are a multiple"):
        d(torch.randn(5, 3, 16, 16))
    train(compose_config(["model.discriminator.pack=2", "schedule.steps=2"]), tmp_path)


def test_the_projection_discriminators_class_term_changes_with_the_label():
    import functools

    from ganlab.models.conditional import ProjectionDiscriminator
    from ganlab.models.dcgan import DCGANDiscriminator

    torch.manual_seed(0)
    backbone = functools.partial(DCGANDiscriminator, width=8, norm="none", spectral_norm=True)
    d = ProjectionDiscriminator(backbone, shape=(1, 16, 16), num_classes=10, resolution=16, channels=1, features=16)
    with torch.no_grad():
        d.embed.parametrizations.weight.original.normal_()  # a trained embedding: classes differ
    d.eval()  # spectral norm's power iteration stays put between the calls compared
    x = torch.randn(4, 1, 16, 16)
    a, b = d(x, torch.tensor([0, 0, 0, 0])), d(x, torch.tensor([3, 3, 3, 3]))
    assert a.shape == (4, 1) and not torch.allclose(a, b)
    phi = F.relu(d.net(x).flatten(1))
    assert torch.allclose(a - b, ((d.embed.weight[:, 0] - d.embed.weight[:, 3]) * phi).sum(1, keepdim=True), atol=1e-5)


def test_conditional_batchnorm_uses_the_labels_gain_and_bias():
    from ganlab.models.conditional import ConditionalBatchNorm

    norm = ConditionalBatchNorm(nn.BatchNorm2d(2), condition_dim=3)
    x = torch.randn(6, 2, 4, 4)
    norm.condition = F.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).float()
    plain = nn.BatchNorm2d(2, affine=False)(x)
    assert torch.allclose(norm(x), plain, atol=1e-6)  # gains start at 1, biases at 0
    with torch.no_grad():
        norm.gain.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))  # class 0: gain 2 on channel 0
        norm.bias.weight.copy_(torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, 0.0]]))  # class 2: bias 5 on channel 0
    out = norm(x)
    assert torch.allclose(out[0, 0], 2 * plain[0, 0], atol=1e-5) and torch.allclose(out[0, 1], plain[0, 1], atol=1e-5)
    assert torch.allclose(out[1, 1], 3 * plain[1, 1], atol=1e-5)
    assert torch.allclose(out[2, 0], plain[2, 0] + 5, atol=1e-5)


RESNETS = ["generator_backbone=resnet", "discriminator_backbone=resnet", "model.generator.backbone.width=16",
           "model.discriminator.backbone.width=16"]


@pytest.mark.parametrize("backbones", [[], RESNETS], ids=["dcgan", "resnet"])
def test_the_projection_cgan_trains_on_classes(tmp_path, backbones):
    from ganlab.models.conditional import ConditionalBatchNorm

    training = train(compose_config(["model=cgan_pd", *backbones, "schedule.steps=2"]), tmp_path)
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    G, D = training.networks["generator"], training.networks["discriminator"]
    assert any(isinstance(m, ConditionalBatchNorm) for m in G.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
    convs = [m for m in D.net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)  # spectral norm on every layer


def test_the_augment_group_sets_the_measured_policies_and_typed_keys_win(tmp_path):
    assert list(compose_config([]).augment.policy) == []  # off unless asked for
    ada = compose_config(["augment=ada", "augment.kimg=100"]).augment
    assert (list(ada.policy), ada.adaptive, ada.translation, ada.cutout, ada.kimg) == \
        (["translation", "cutout"], True, 0.0625, 0.25, 100)
    paper = compose_config(["augment=diffaugment"]).augment
    assert (list(paper.policy), paper.adaptive, paper.p, paper.translation, paper.cutout) == \
        (["color", "translation", "cutout"], False, 1.0, 0.125, 0.5)
    # target -1: r_t is always above it, so ADA's p rises from 0 at each adjustment (steps 4 and 8)
    train(compose_config(["augment=ada", "augment.target=-1", "augment.kimg=0.05", "schedule.log_every=1"]), tmp_path)
    p = [r["augment/p"] for r in read_metrics(tmp_path) if "augment/p" in r]
    assert p[0] == 0.0 and p[-1] > 0.5
    with pytest.raises(ConfigError, match=r"augment.policy=\['translation', 'cutout'\] augments a discriminator's"):
        train(compose_config(["model=vae_mlp", "augment=ada"]), tmp_path / "vae")  # a VAE has no D to augment for
    assert not (tmp_path / "vae").exists()
