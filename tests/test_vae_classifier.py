"""VAEs and classifiers: ELBO terms by hand, gradients through the sampling, training lowers the
loss, evaluation writes its numbers and plots, and classifier-to-encoder transfer copies exactly."""

import math

import pytest
import torch

from conftest import SHRINK, compose_config, run_cli
from fake_data import make_mnist
from idx_files import digit_like, write_idx_split
from ganlab.training import run as runs
from ganlab.trust.build import allowed_prefixes
from ganlab.data.memory import DataFacts
from ganlab.errors import ConfigError
from ganlab.records.logging import read_metrics
from ganlab.models.vae import MLPVAE
from ganlab.objectives.vae import kl_divergence, reconstruction_loss
from ganlab.training.train import train

VAE_SMALL = ["model=vae_mlp", "dataset.resolution=8", "model.vae.hidden=[32]", "model.vae.latent_dim=4",
             "dataset.split=train", "optimizer.lr=3e-3", "model.objective.tsne_points=200"]
CLASSIFIER_SMALL = ["model=classifier_mlp", "dataset.resolution=8", "model.classifier.hidden=[32]",
                    "dataset.split=train", "optimizer.lr=3e-3"]


def test_kl_matches_the_closed_form():
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [math.log(0.25), 0.0]])
    per_dim = [[0.5 * (0.25), 0.5 * (4 + 1 - 1 - math.log(4))], [0.5 * (0.25 - 1 - math.log(0.25)), 0.5 * 4]]
    assert kl_divergence(mu, logvar, "sum").item() == pytest.approx((sum(per_dim[0]) + sum(per_dim[1])) / 2)
    assert kl_divergence(mu, logvar, "mean").item() == pytest.approx(sum(map(sum, per_dim)) / 4)


def test_reconstruction_reductions():
    recon = torch.tensor([[[[0.2, 0.8]]], [[[0.5, 0.5]]]])
    target = torch.tensor([[[[0.0, 1.0]]], [[[1.0, 0.0]]]])
    squared = [0.04 + 0.04, 0.25 + 0.25]
    assert reconstruction_loss(recon, target, "mse", "mean").item() == pytest.approx(sum(squared) / 4)
    assert reconstruction_loss(recon, target, "mse", "sum").item() == pytest.approx(sum(squared) / 2)
    bce = -(math.log(0.8) + math.log(0.8) + math.log(0.5) + math.log(0.5))
    assert reconstruction_loss(recon, target, "bce", "sum").item() == pytest.approx(bce / 2, rel=1e-5)


def test_reparameterisation_lets_gradients_reach_the_encoder():
    torch.manual_seed(0)
    vae = MLPVAE((1, 4, 4), latent_dim=3, hidden=[8])
    recon, mu, logvar = vae(torch.rand(5, 1, 4, 4))
    recon.sum().backward()
    for layer in (vae.hidden[1], vae.mu, vae.logvar):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_vae_training_lowers_its_loss_and_evaluates(tmp_path):
    cfg = compose_config([*VAE_SMALL, "schedule.steps=60", "schedule.log_every=10", "schedule.sample_every=60",
                          "model.objective.beta=0.01", "schedule.eval_every=30"])
    train(cfg, tmp_path)
    rows = [r for r in read_metrics(tmp_path) if "loss/VAE" in r]
    assert rows[-1]["loss/VAE"] < rows[0]["loss/VAE"]
    assert {"VAE/reconstruction", "VAE/kl", "VAE/beta"} <= set(rows[0])
    evals = [r for r in read_metrics(tmp_path) if "eval/mse" in r]
    assert [r["step"] for r in evals] == [30, 60]
    assert 0 < evals[-1]["eval/mse"] < 0.25  # test MSE on [0, 1] pixels
    for png in ("step_000060.png", "reconstructions_step_000060.png", "tsne_step_000060.png"):
        assert (tmp_path / "samples" / png).is_file(), png


def test_a_vae_on_split_all_trains_on_the_train_split_and_its_checkpoint_says_so(tmp_path, caplog):
    """digits' default is split=all; an evaluated model must not train on its test images, and the
    stored config is what was trained (report and resume read it)."""
    from ganlab.records.checkpoint import Saved, load

    cfg = compose_config([*VAE_SMALL, "dataset.split=all", "schedule.steps=2"])
    with caplog.at_level("INFO", logger="ganlab"):
        training = train(cfg, tmp_path)
    assert "training on split=train" in caplog.text
    assert training.run.images == 1438  # digits' train split (every fifth image of 1,797 is test: 359)
    assert Saved(load(tmp_path / "checkpoints" / "last.pt")).config["dataset"]["split"] == "train"


def test_kl_warmup_ramps_beta(tmp_path):
    cfg = compose_config([*VAE_SMALL, "schedule.steps=4", "schedule.log_every=1", "model.objective.beta=0.5",
                          "model.objective.kl_warmup_steps=4"])
    train(cfg, tmp_path)
    betas = [r["VAE/beta"] for r in read_metrics(tmp_path) if "VAE/beta" in r]
    assert betas == pytest.approx([0.125, 0.25, 0.375, 0.5])


def test_classifier_training_lowers_its_loss_and_reports_test_accuracy(tmp_path):
    cfg = compose_config([*CLASSIFIER_SMALL, "schedule.steps=60", "schedule.log_every=10"])
    train(cfg, tmp_path)
    rows = read_metrics(tmp_path)
    losses = [r["loss/C"] for r in rows if "loss/C" in r]
    assert losses[-1] < losses[0]
    assert rows[-1]["step"] == 60 and rows[-1]["eval/accuracy"] > 0.5  # 10 classes: chance is 0.1


def test_encoder_transfer_copies_the_classifier_layer_and_nothing_else(tmp_path):
    train(compose_config([*CLASSIFIER_SMALL, "schedule.steps=5"]), tmp_path / "classifier")
    path = tmp_path / "classifier" / "checkpoints" / "last.pt"
    trained = torch.load(path, weights_only=True)["networks"]["classifier"]
    torch.manual_seed(0)
    fresh = MLPVAE((1, 8, 8), latent_dim=4, hidden=[32])
    torch.manual_seed(0)
    started = start_encoder(path, hidden=[32])
    assert torch.equal(started.hidden[1].weight, trained["hidden.1.weight"])
    assert torch.equal(started.hidden[1].bias, trained["hidden.1.bias"])
    assert not torch.equal(fresh.hidden[1].weight, started.hidden[1].weight)
    untouched = {k: v for k, v in started.state_dict().items() if not k.startswith("hidden.")}
    for name, tensor in untouched.items():
        assert torch.equal(tensor, fresh.state_dict()[name]), name
    by_folder = start_encoder(tmp_path / "classifier", hidden=[32])  # the run's folder means its last.pt
    assert torch.equal(by_folder.hidden[1].weight, trained["hidden.1.weight"])


def test_encoder_transfer_mismatch_names_the_layers(tmp_path):
    train(compose_config([*CLASSIFIER_SMALL, "schedule.steps=2"]), tmp_path / "classifier")
    path = str(tmp_path / "classifier" / "checkpoints" / "last.pt")
    with pytest.raises(ConfigError, match=r"hidden.1.weight: encoder \(16, 64\) vs checkpoint \(32, 64\)"):
        start_encoder(path, hidden=[16])
    with pytest.raises(ConfigError, match=r"encoder's layers \['hidden.3.bias', 'hidden.3.weight'\]"):
        start_encoder(path, hidden=[32, 32])


def start_encoder(path, hidden):
    """Build the MLP VAE through the run seam with model.encoder_init=path (as `ganlab train` does)."""
    cfg = compose_config([*VAE_SMALL, f"model.vae.hidden={hidden}", "model.vae.latent_dim=4",
                          f"model.encoder_init={path}"])
    facts = DataFacts(shape=(1, 8, 8), resolution=8, channels=1, num_classes=10)
    return runs.build(cfg, facts, "unit", torch.device("cpu"), allowed_prefixes()).networks["vae"]


def test_vae_refuses_data_in_minus_one_to_one(tmp_path):
    with pytest.raises(ConfigError, match="dataset.value_range=tanh but this model needs unit"):
        train(compose_config([*VAE_SMALL, "dataset.value_range=tanh"]), tmp_path)


@pytest.mark.slow
def test_model_vae_mlp_on_mnist_just_works(tmp_path):
    root = make_mnist(tmp_path / "data")
    images, labels = digit_like(20, seed=1)
    write_idx_split(root / "MNIST" / "raw", "test", images, labels, gz=False)
    run_dir = tmp_path / "run"
    result = run_cli("train", "model=vae_mlp", "dataset=mnist", f"dataset.root={root}", *SHRINK,
                     "schedule.steps=3", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "eval/mse" in read_metrics(run_dir)[-1]


def test_classifier_metrics_judge_generated_digits(tmp_path):
    train(compose_config([*CLASSIFIER_SMALL, "dataset.resolution=16", "schedule.steps=100"]), tmp_path / "classifier")
    path = tmp_path / "classifier" / "checkpoints" / "last.pt"
    cfg = compose_config(["schedule.steps=2", "schedule.sample_every=2", "schedule.log_every=2",
                          f"metrics.classifier={path}"])
    loop = train(cfg, tmp_path / "gan")
    row = read_metrics(tmp_path / "gan")[-1]
    assert 1 <= row["diagnostics/classes_covered"] <= 10
    assert 0 <= row["diagnostics/class_entropy"] <= 1 and row["diagnostics/classifier_score"] >= 1
    # real digits look more like distinct classes to the judge than 2-step GAN samples do
    judge_real = loop.evaluator.diagnose(loop.batches.example(200)["image"])
    assert judge_real["classes_covered"] == 10
    assert judge_real["classifier_score"] > row["diagnostics/classifier_score"]


def test_a_classifier_evaluates_on_the_held_out_split(tmp_path, caplog):
    """split=train holds the test split out for evaluation: digits' 359 test images, not the 1,438
    it trains on (the trust check once refused the test split's build, and eval fell back silently)."""
    with caplog.at_level("WARNING", logger="ganlab"):
        loop = train(compose_config(["model=classifier_mlp", "dataset.resolution=8", "model.classifier.hidden=[8]",
                                     "schedule.steps=2", "dataset.split=train"]), tmp_path)
    held_out = torch.cat([b["image"] for b in loop.evaluator.held_out_batches()])
    assert len(held_out) == 359 and loop.run.images == 1438
    assert "no test split" not in caplog.text


def test_a_missing_test_split_falls_back_with_a_warning_and_a_broken_one_is_an_error(tmp_path, caplog):
    """MNIST with only its training files: evaluation warns and uses the training data. A test split
    that is there but cannot be read is not "missing": it is one paragraph, not a silent fallback."""
    root = make_mnist(tmp_path / "data", n=64)
    small = [*CLASSIFIER_SMALL, "dataset=mnist", f"dataset.root={root}", "schedule.steps=2"]
    with caplog.at_level("WARNING", logger="ganlab"):
        loop = train(compose_config(small), tmp_path / "fallback")
    assert "no test split (mnist (test split) was not found" in caplog.text
    assert len(torch.cat([b["image"] for b in loop.evaluator.held_out_batches()])) == 64  # the training images
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(ConfigError, match="t10k"):
        train(compose_config(small), tmp_path / "broken")


def test_a_test_split_smaller_than_a_batch_is_still_the_test_split(tmp_path, caplog):
    """Evaluation reads the held-out split whole, never in training batches: 40 images with 10% held
    out give a test split of a few images, below batch 16, and it is used as it is."""
    from fake_data import make_images
    from ganlab.data.folder import load_folder

    make_images(tmp_path / "faces", 40, size=(12, 12))
    test = load_folder(str(tmp_path / "faces"), resolution=8, batch_size=1, split="test", value_range="unit")
    assert 0 < len(test) < 16
    with caplog.at_level("WARNING", logger="ganlab"):
        loop = train(compose_config([*VAE_SMALL, "dataset=folder", f"dataset.root={tmp_path / 'faces'}",
                                     "dataset.batch_size=16", "model.objective.tsne_points=0", "schedule.steps=2"]),
                     tmp_path / "run")
    held_out = torch.cat([b["image"] for b in loop.evaluator.held_out_batches()])
    assert torch.equal(held_out, torch.cat([b["image"] for b in test.ordered_batches(torch.device("cpu"))]))
    assert "no test split" not in caplog.text


def test_classifier_metrics_refuse_a_gan_checkpoint(tmp_path):
    train(compose_config(["schedule.steps=1"]), tmp_path / "gan")
    with pytest.raises(ConfigError, match="is not a classifier run's checkpoint"):
        train(compose_config([f"metrics.classifier={tmp_path}/gan/checkpoints/last.pt"]), tmp_path / "again")


def test_the_mlp_vae_defaults_learn_the_digits_without_collapsing(tmp_path, caplog):
    """`model=vae_mlp` as it ships (latent 2, hidden 500, beta 1): reconstructions well below the
    mean image's error, and a KL clearly above 0 (with the old per-pixel mean it fell to ~1e-4)."""
    cfg = compose_config(["model=vae_mlp", "schedule.steps=300", "schedule.eval_every=300", "dataset.batch_size=64",
                          "dataset.resolution=16", "schedule.log_every=100", "schedule.sample_every=300"], shrink=False)
    cfg.device, cfg.progress = "cpu", False
    with caplog.at_level("WARNING", logger="ganlab"):
        loop = train(cfg, tmp_path)
    final = read_metrics(tmp_path)[-1]
    test_images = torch.cat([b["image"] for b in loop.evaluator.held_out_batches()])
    mean_image_mse = float((test_images - test_images.mean(0)).pow(2).mean())
    assert final["eval/mse"] < 0.75 * mean_image_mse, (final["eval/mse"], mean_image_mse)
    assert final["eval/kl_per_dim"] > 0.5 and "collapsed" not in caplog.text


def test_a_collapsed_vae_says_so(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="ganlab"):
        train(compose_config(["model=vae_mlp", "model.objective.reduction=mean", "model.objective.beta=50",
                              "schedule.steps=30", "schedule.eval_every=30"]), tmp_path)
    assert read_metrics(tmp_path)[-1]["eval/kl_per_dim"] < 0.01
    assert "posterior has collapsed" in caplog.text and "model.objective.beta" in caplog.text


def test_a_finished_run_prints_its_final_figures(tmp_path, monkeypatch, capsys):
    from conftest import cli_in_process

    code, out, err = cli_in_process("train", *CLASSIFIER_SMALL, "device=cpu", "progress=false", "schedule.steps=20",
                                    "schedule.eval_every=10", "hydra.run.dir=clf", cwd=tmp_path,
                                    monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    last = read_metrics(tmp_path / "clf")[-1]
    assert f"ganlab: final eval/accuracy {last['eval/accuracy']:.5g} (step 20)" in out
