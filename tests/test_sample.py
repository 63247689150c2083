"""`ganlab sample` on tiny real runs: without the data set, every format, conditional rows,
attribute flips, latent walks, VAEs and the 2-d toys."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import cli_in_process, compose_config
from fake_data import make_celeba, make_images
from ganlab.errors import ConfigError
from ganlab.models.conditional import ConditionalGenerator
from ganlab.commands.sample import sample
from ganlab.training.train import train

CGAN = ["model=cgan", "schedule.steps=2"]  # conftest shrinks the backbones


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A DCGAN trained on an image folder that is deleted afterwards."""
    tmp = tmp_path_factory.mktemp("folder_run")
    make_images(tmp / "images", 24)
    train(compose_config(["dataset=folder", f"dataset.root={tmp / 'images'}", "dataset.batch_size=8",
                          "schedule.steps=4", "schedule.ema_decay=0.5"]), tmp / "run")
    shutil.rmtree(tmp / "images")
    return tmp / "run"


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cgan")
    train(compose_config(CGAN), run_dir)
    return run_dir


class GeneratorSpy:
    """Records what the conditional generator is called with, then runs it."""

    def __init__(self, monkeypatch):
        self.calls, original = [], ConditionalGenerator.forward

        def forward(net, z, labels):
            self.calls.append((z.detach().clone(), labels.detach().clone()))
            return original(net, z, labels)

        monkeypatch.setattr(ConditionalGenerator, "forward", forward)

    def z(self):
        return torch.cat([c[0] for c in self.calls])

    def labels(self):
        return torch.cat([c[1] for c in self.calls])


TITLE = 11 + 6  # a grid's title line: Pillow's font at 11 points (cells under 48 px) and its margin


def test_a_grid_from_a_run_whose_data_folder_was_deleted(folder_run):
    [grid] = sample(str(folder_run), n=16, device="cpu")
    assert grid == folder_run / "generated" / "last_grid_16.png"
    # 16 RGB samples of 16 px in rows of 8, 2 px padding, under a title (the run, its step, the checkpoint)
    assert Image.open(grid).size == (8 * 18 + 2, TITLE + 2 * 18 + 2) and Image.open(grid).mode == "RGB"


def test_png_folder_and_npz_hold_n_images(folder_run, tmp_path):
    [folder] = sample(str(folder_run), n=10, format="png", out=str(tmp_path / "pngs"), batch_size=4, device="cpu")
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(10)]
    assert Image.open(files[0]).size == (16, 16)
    [npz] = sample(str(folder_run), n=10, format="npz", out=str(tmp_path / "s.npz"), batch_size=4, device="cpu")
    images = np.load(npz)["images"]
    assert images.shape == (10, 16, 16, 3) and images.dtype == np.uint8 and images.std() > 0
    # the same seed draws the same images whatever the format and batch size
    assert np.array_equal(images[0], np.asarray(Image.open(files[0])))
    assert not list(tmp_path.glob("*.npy"))  # the memory-mapped scratch file is gone


def test_ema_and_live_generators_differ_and_ema_false_picks_the_live_one(folder_run, tmp_path):
    [a] = sample(str(folder_run), n=4, format="npz", out=str(tmp_path / "ema.npz"), device="cpu")
    [b] = sample(str(folder_run), n=4, format="npz", out=str(tmp_path / "live.npz"), ema=False, device="cpu")
    assert not np.array_equal(np.load(a)["images"], np.load(b)["images"])


def test_conditional_rows_are_the_requested_labels(cgan_run, monkeypatch):
    spy = GeneratorSpy(monkeypatch)
    sample(str(cgan_run), n=8, labels=[3, 5], device="cpu")
    assert spy.labels().tolist() == [3, 3, 3, 3, 5, 5, 5, 5]
    z = spy.z()
    assert torch.equal(z[:4], z[4:])  # one z per column, shared by the rows


def test_by_default_a_conditional_grid_has_one_row_per_class(cgan_run, monkeypatch):
    spy = GeneratorSpy(monkeypatch)
    [grid] = sample(str(cgan_run), n=20, device="cpu")
    assert spy.labels().tolist() == [c for c in range(10) for _ in range(2)]
    assert Image.open(grid).height == TITLE + 10 * 18 + 2


def test_npz_of_a_conditional_run_holds_balanced_labels(cgan_run, tmp_path):
    [npz] = sample(str(cgan_run), n=30, format="npz", out=str(tmp_path / "c.npz"), device="cpu")
    labels = np.load(npz)["labels"]
    assert sorted(np.bincount(labels).tolist()) == [3] * 10


def test_latent_walks_go_from_one_code_to_another(cgan_run, monkeypatch):
    spy = GeneratorSpy(monkeypatch)
    sample(str(cgan_run), n=8, interpolate=4, device="cpu")
    z = spy.z().flatten(1)
    assert z.shape[0] == 8
    walk = z[:4]
    steps = walk[1:] - walk[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps), atol=1e-5)  # evenly spaced on a line
    assert len(set(spy.labels()[:4].tolist())) == 1  # a walk keeps its class


def test_an_attribute_flip_keeps_z_and_switches_only_that_attribute(tmp_path, monkeypatch):
    root = make_celeba(tmp_path / "data")
    train(compose_config(["model=acgan", "dataset=celeba", f"dataset.root={root}", "dataset.attributes=[Male,Smiling]",
                          "dataset.batch_size=8", "model.objective.aux_loss=bce", *CGAN[1:]]), tmp_path / "run")
    shutil.rmtree(root)
    spy = GeneratorSpy(monkeypatch)
    [grid] = sample(str(tmp_path / "run"), n=8, flip="Male", device="cpu")
    z, labels = spy.z(), spy.labels()
    assert torch.equal(z[:4], z[4:])
    assert labels[:4, 0].tolist() == [0, 0, 0, 0] and labels[4:, 0].tolist() == [1, 1, 1, 1]
    assert torch.equal(labels[:4, 1], labels[4:, 1])  # Smiling untouched
    with pytest.raises(ConfigError, match=r"flip=Bald: this run's attributes are \['Male', 'Smiling'\]"):
        sample(str(tmp_path / "run"), flip="Bald", device="cpu")


def test_a_vae_gives_prior_samples_and_reconstructions(tmp_path):
    train(compose_config(["model=vae_mlp", "dataset.resolution=8", "model.vae.hidden=[16]", "dataset.split=train",
                          "model.objective.tsne_points=20", "schedule.steps=2"]), tmp_path / "run")
    grid, recon = sample(str(tmp_path / "run"), n=8, device="cpu")
    assert recon.name == "last_grid_8_reconstructions.png" and Image.open(recon).mode == "RGB"
    assert Image.open(grid).height == TITLE + 10 + 2  # 8 prior samples of 8 px in one row of 8, titled
    assert Image.open(grid).width >= 8 * 10 + 2
    from ganlab.training import run as runs

    inputs = runs.open(tmp_path / "run").fixed["inputs"]
    pairs = 2 * len(inputs)  # each held-out input beside its reconstruction, 8 to a row
    assert Image.open(recon).size == (8 * 10 + 2, -(-pairs // 8) * 10 + 2)
    cells = np.asarray(Image.open(recon).convert("L"), dtype=float)
    first_input, first_reconstruction = cells[2:10, 2:10], cells[2:10, 12:20]
    assert not np.array_equal(first_input, first_reconstruction)  # a reconstruction, not a copy


def test_toys_give_a_scatter_and_the_points(tmp_path):
    train(compose_config(["model=mlp", "dataset=ring", "schedule.steps=2"]), tmp_path / "run")
    png, points = sample(str(tmp_path / "run"), n=100, device="cpu")
    assert Image.open(png).size == (256, 256)
    assert np.load(points)["points"].shape == (100, 2)
    with pytest.raises(ConfigError, match="format=npz: this run draws 2-d points; use format=grid"):
        sample(str(tmp_path / "run"), n=100, format="npz", device="cpu")
    with pytest.raises(ConfigError, match="format=grid writes a .png file; name it so, e.g. out=.*points.png"):
        sample(str(tmp_path / "run"), n=100, out=str(tmp_path / "points"), device="cpu")


def test_cli_sample_help_and_bad_options(cgan_run, tmp_path, monkeypatch, capsys):
    code, out, _ = cli_in_process("sample", "--help", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and "format=grid" in out and "labels=null" in out
    code, _, err = cli_in_process("sample", f"run={cgan_run}", "format=jpeg", cwd=tmp_path, monkeypatch=monkeypatch,
                                  capsys=capsys)
    assert code == 2 and "format='jpeg' is not one of grid, png, npz" in err
    code, _, err = cli_in_process("sample", f"run={cgan_run}", "checkpoint=best", cwd=tmp_path,
                                  monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "best.pt" in err and "Traceback" not in err
    code, out, err = cli_in_process("sample", f"run={cgan_run}", "checkpoint=step_2", "n=4", "device=cpu",
                                    cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "this run has: last" in err  # no periodic checkpoints in this tiny run


def test_an_old_format_checkpoint_gets_a_clear_message(tmp_path, cgan_run):
    old = tmp_path / "old.pt"
    state = torch.load(cgan_run / "checkpoints" / "last.pt", weights_only=True)
    torch.save({**state, "format_version": 1}, old)
    with pytest.raises(ConfigError, match=r"has checkpoint format 1; this ganlab reads formats \(2, 3\)"):
        sample(str(old), device="cpu")
