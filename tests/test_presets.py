"""Each report's preset: the exact printed architectures, and a shrunk end-to-end run on tiny data."""

import pytest
import torch
from torch import nn

from conftest import compose_config, run_cli
from fake_data import make_all
from ganlab.trust.build import allowed_prefixes, build
from ganlab.data.memory import DataFacts
from ganlab.records.logging import read_metrics
from ganlab.trust.paths import config_groups
from ganlab.training.train import train

PRESETS = config_groups()["experiment"]


def networks(name: str, facts: DataFacts) -> dict[str, nn.Module]:
    cfg = compose_config([f"experiment={name}"], shrink=False)
    return {key: build(cfg.model[key], f"model.{key}", allowed_prefixes(), **facts.__dict__)
            for key in ("generator", "discriminator")}


def layers(module: nn.Module, kind) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, kind)]


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


MNIST = DataFacts(shape=(1, 28, 28), resolution=28, channels=1, num_classes=10)
RGB64 = DataFacts(shape=(3, 64, 64), resolution=64, channels=3)


def test_fashion_dcgan_has_the_reports_parameter_counts():
    nets = networks("fashion_dcgan", MNIST)
    assert params(nets["generator"]) == 791_776
    assert params(nets["discriminator"]) == 691_680


def test_mnist_dcgan_is_the_labs_architecture():
    nets = networks("mnist_dcgan", MNIST)
    g = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
         for m in layers(nets["generator"], nn.ConvTranspose2d)]
    assert g == [(100, 256, 4, 2, 1), (256, 128, 4, 2, 1), (128, 64, 4, 2, 1), (64, 32, 4, 2, 1), (32, 1, 2, 2, 2)]
    d = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
         for m in layers(nets["discriminator"], nn.Conv2d)]
    assert d == [(1, 32, 2, 2, 2), (32, 64, 4, 2, 1), (64, 128, 4, 2, 1), (128, 256, 4, 2, 1), (256, 1, 4, 2, 1)]
    assert len(layers(nets["discriminator"], nn.BatchNorm2d)) == 3  # none on the first layer
    assert {m.negative_slope for m in layers(nets["discriminator"], nn.LeakyReLU)} == {0.02}
    assert nets["generator"](torch.randn(2, 100)).shape == (2, 1, 28, 28)


def test_mnist_cwgan_conditions_g_with_110_inputs_and_d_with_11_channels():
    nets = networks("mnist_cwgan", MNIST)
    assert layers(nets["generator"], nn.ConvTranspose2d)[0].in_channels == 110
    assert layers(nets["discriminator"], nn.Conv2d)[0].in_channels == 11
    labels = torch.tensor([3, 7])
    assert nets["generator"](torch.randn(2, 100), labels).shape == (2, 1, 28, 28)
    assert nets["discriminator"](torch.randn(2, 1, 28, 28), labels).shape == (2, 1)


def test_mnist_wgan_conv_uses_the_reports_kernels_and_latent():
    nets = networks("mnist_wgan_conv", MNIST)
    assert [m.kernel_size[0] for m in layers(nets["discriminator"], nn.Conv2d)] == [10, 10, 10]
    assert [m.kernel_size[0] for m in layers(nets["generator"], nn.ConvTranspose2d)] == [9, 9, 10]
    assert nets["generator"].latent_shape == (64, 3, 3)
    assert nets["generator"](torch.randn(32, 64, 3, 3)).shape == (32, 1, 28, 28)
    assert nets["discriminator"](torch.randn(32, 1, 28, 28)).shape == (32, 1)


def test_celeba_dcgan_matches_the_printed_network():
    nets = networks("celeba_dcgan", RGB64)
    g = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], m.bias is not None)
         for m in layers(nets["generator"], nn.ConvTranspose2d)]
    assert g == [(128, 512, 4, 1, 0, False), (512, 256, 4, 2, 1, False), (256, 128, 4, 2, 1, False),
                 (128, 64, 4, 2, 1, False), (64, 3, 4, 2, 1, False)]
    d = [(m.in_channels, m.out_channels, m.bias is not None) for m in layers(nets["discriminator"], nn.Conv2d)]
    assert d == [(3, 64, False), (64, 128, False), (128, 256, False), (256, 512, False), (512, 1, False)]


def test_celeba_acgan_matches_the_printed_network():
    facts = DataFacts(shape=(3, 64, 64), resolution=64, channels=3, num_attributes=13)
    nets = networks("celeba_acgan", facts)
    linear = [(m.in_features, m.out_features) for m in layers(nets["generator"], nn.Linear)]
    assert linear == [(141, 256), (256, 256)]
    assert layers(nets["generator"], nn.ConvTranspose2d)[0].in_channels == 256
    d_linear = [(m.in_features, m.out_features) for m in layers(nets["discriminator"], nn.Linear)]
    assert d_linear == [(512, 256), (256, 14)]  # the report's 1-logit and 13-attribute heads side by side
    assert layers(nets["discriminator"], nn.Conv2d)[-1].out_channels == 512
    real_fake, attributes = nets["discriminator"](torch.randn(2, 3, 64, 64))
    assert real_fake.shape == (2, 1) and attributes.shape == (2, 13)


def test_anime_baseline_matches_the_reports_code():
    nets = networks("anime_dcgan", RGB64)
    stem = layers(nets["generator"], nn.Linear)
    assert [(m.in_features, m.out_features, m.bias is not None) for m in stem] == [(100, 512 * 16, False)]
    g = [(m.in_channels, m.out_channels, m.kernel_size[0], m.padding[0], m.output_padding[0])
         for m in layers(nets["generator"], nn.ConvTranspose2d)]
    assert g == [(512, 256, 5, 2, 1), (256, 128, 5, 2, 1), (128, 64, 5, 2, 1), (64, 3, 5, 2, 1)]
    d = [(m.in_channels, m.out_channels, m.kernel_size[0], m.bias is not None)
         for m in layers(nets["discriminator"], nn.Conv2d)]
    assert d == [(3, 64, 5, True), (64, 128, 5, True), (128, 256, 5, True), (256, 512, 5, True), (512, 1, 4, True)]
    sngan = networks("anime_sngan", RGB64)["discriminator"]
    assert all(hasattr(m, "parametrizations") for m in layers(sngan, nn.Conv2d))
    assert len(layers(sngan, nn.BatchNorm2d)) == 3  # the report keeps BatchNorm
    dropout = networks("anime_sngan_dropout", RGB64)["discriminator"]
    assert len(layers(dropout, nn.Dropout)) == 4


def test_fashion_vae_and_classifier_match_the_printed_networks():
    cfg = compose_config(["experiment=fashion_vae_mlp_z2"], shrink=False)
    vae = build(cfg.model.vae, "model.vae", allowed_prefixes(), **MNIST.__dict__)
    linear = [(m.in_features, m.out_features) for m in layers(vae, nn.Linear)]
    assert linear == [(784, 500), (500, 2), (500, 2), (2, 500), (500, 784)]
    assert {m.negative_slope for m in layers(vae, nn.LeakyReLU)} == {0.01}
    assert not layers(vae, nn.Sigmoid)
    cfg = compose_config(["experiment=fashion_classifier_mlp"], shrink=False)
    classifier = build(cfg.model.classifier, "model.classifier", allowed_prefixes(), **MNIST.__dict__)
    assert [(m.in_features, m.out_features) for m in layers(classifier, nn.Linear)] == [(784, 500), (500, 10)]


def test_celeba_vae_conv_matches_the_printed_network():
    cfg = compose_config(["experiment=celeba_vae_conv"], shrink=False)
    vae = build(cfg.model.vae, "model.vae", allowed_prefixes(), **RGB64.__dict__)
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0], m.padding[0]) for m in layers(vae, nn.Conv2d)]
    assert convs == [(3, 128, 3, 1), (128, 128, 3, 1), (128, 256, 5, 2), (256, 256, 5, 2), (256, 512, 5, 2),
                     (512, 512, 5, 2)]
    assert [(m.in_features, m.out_features) for m in layers(vae, nn.Linear)] == [(32768, 128), (32768, 128),
                                                                                  (128, 32768)]
    deconvs = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0]) for m in layers(vae, nn.ConvTranspose2d)]
    assert deconvs == [(512, 512, 4, 2), (512, 512, 4, 2), (512, 3, 4, 2)]
    assert len(layers(vae, nn.MaxPool2d)) == 3 and len(layers(vae, nn.Sigmoid)) == 1


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_all(tmp_path_factory.mktemp("data"))


def shrunk_preset(preset: str, data_root, extra=()):
    overrides = [f"experiment={preset}", f"dataset.root={data_root}" + ("/anime" if "anime" in preset else ""),
                 "dataset.batch_size=8", "schedule.epochs=null", "schedule.steps=2", "schedule.log_every=1",
                 "schedule.sample_every=2", "schedule.sample_count=8", *extra]
    composed = compose_config(overrides)
    if composed.dataset.resolution == 64:  # the same code path at a quarter of the cost
        overrides.append("dataset.resolution=32")            # (the reports' 64 px networks: the tests above)
    if "denoiser" in composed.model:  # the UNet's layout as the preset has it, narrow; 2 sampling steps for grids
        overrides += ["model.denoiser.width=8", "model.objective.sample_steps=2"]
    return compose_config(overrides)


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_end_to_end_shrunk(tmp_path, data_root, preset):
    extra = []
    if preset == "fashion_vae_from_classifier":  # needs the classifier preset's checkpoint
        train(shrunk_preset("fashion_classifier_mlp", data_root), tmp_path / "classifier")
        extra = [f"model.encoder_init={tmp_path}/classifier/checkpoints/last.pt"]
    loop = train(shrunk_preset(preset, data_root, extra), tmp_path / "run")
    assert loop.step == 2
    phase = loop.objective.phases[0].name
    assert [r["step"] for r in read_metrics(tmp_path / "run") if f"loss/{phase}" in r] == [1, 2]
    if "classifier" not in preset:
        assert (tmp_path / "run" / "samples" / "step_000002.png").is_file()
    if loop.objective.wants_evaluation:
        assert any(k.startswith("eval/") for k in read_metrics(tmp_path / "run")[-1])


@pytest.mark.slow
def test_headline_command_sngan_on_anime_folder(tmp_path, data_root):
    run_dir = tmp_path / "run"
    result = run_cli("train", "model=sngan", "dataset=anime", f"dataset.root={data_root}/anime", "device=cpu",
                     "progress=false", "dataset.batch_size=8", "model.generator.width=8",
                     "model.discriminator.width=8", "schedule.steps=2", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "resolution: 64" in config and "HingeLoss" in config  # anime is 64 px; sngan brings hinge
    assert (run_dir / "samples" / "step_000002.png").is_file()
