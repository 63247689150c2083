"""Bad input stops before training with one short message naming the key, the value and the fix."""

import pytest

from conftest import CLI_TINY, cli_in_process, compose_config, run_cli
from ganlab.errors import ConfigError
from ganlab.training.train import train


@pytest.mark.parametrize("override,expected", [
    ("dataset.batch_size=0", "dataset.batch_size=0 must be positive; set e.g. dataset.batch_size=64"),
    ("optimizer.lr=-0.001", "optimizer.lr=-0.001 must be positive"),
    ("schedule.steps=0", "schedule.steps=0 must be positive"),
    ("schedule.n_critic=1.5", "schedule.n_critic=1.5 must be an integer"),
    ("schedule.log_every=abc", "schedule.log_every='abc' must be an integer"),
    ("model.generator.width=-8", "model.generator.width=-8 must be positive"),
    ("schedule.ema_decay=1.0", "schedule.ema_decay=1.0 must be in [0, 1)"),
    ("schedule.keep_last=-1", "schedule.keep_last=-1 must be zero or more"),
    ("dataset.resolution=30", "dataset.resolution=30: the DCGAN family builds images of base * 2**n px"),
    ("dataset.batch_size=4000", "dataset.batch_size=4000 is larger than the 1797 images of digits"),
    ("device=cuda:7" , "device=cuda:7 but"),
    ("device=toaster", "device='toaster' is not a device"),
    ("model.discriminator.norm=group", "model.discriminator.norm='group' is not a normalisation"),
    ("dataset=folder", "dataset.root is required and has no value"),
    ("dataset=ring", "this model builds images, but the dataset gives points"),
    ("loss=none", "loss=none, but this model is a GAN and needs an adversarial loss"),
])
def test_bad_values_are_named_with_a_fix(tmp_path, override, expected):
    with pytest.raises(ConfigError) as info:
        train(compose_config([override]), tmp_path / "run")
    assert expected in str(info.value)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained


@pytest.mark.slow
def test_missing_dataset_via_cli_is_one_paragraph_without_traceback(tmp_path):
    result = run_cli("train", "dataset=mnist", f"dataset.root={tmp_path}/data", "device=cpu",
                     f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("ganlab: error: mnist (train split) was not found")
    assert str(tmp_path / "data" / "MNIST" / "raw") in result.stderr
    assert "dataset.download=true" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unknown_group_option_lists_the_available_ones(tmp_path):
    result = run_cli("train", "model=stylegan9", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'model/stylegan9'" in result.stderr and "dcgan" in result.stderr


def test_a_loss_for_a_model_that_ignores_it_is_refused(tmp_path):
    cfg = compose_config(["model=classifier_mlp", "loss=hinge", "dataset.resolution=8"])
    with pytest.raises(ConfigError, match="this model trains its own objective and ignores it"):
        train(cfg, tmp_path)


# The review's table: each row is (arguments, what the message must name). Through the real CLI:
# exit 2, one paragraph, no traceback, the key and the fix named, no run directory left behind.
BAD_INPUT = [
    (["seed=abc"], "seed='abc' must be an integer; set e.g. seed=0"),
    (["model.discriminator.spectral_norm=maybe"], "model.discriminator.spectral_norm='maybe' must be bool; set e.g."),
    (["progress=maybe"], "progress='maybe' must be true or false"),
    (["+foo.bar=1"], "foo is not a ganlab setting: nothing reads it"),
    (["+schedule.stepz=5"], "schedule.stepz is not a ganlab setting: nothing reads it. Did you mean schedule.steps?"),
    (["+model.generator.widht=8"], "model.generator.widht is not a setting of ganlab.models.dcgan.DCGANGenerator"),
    (["model=vae_mlp", "model.encoder_init=missing.pt"], "model.encoder_init=missing.pt is neither a run directory nor"),
    (["metrics.classifier=missing.pt"], "metrics.classifier=missing.pt is neither a run directory nor a checkpoint"),
    (["optimizer.betas=[1.5,0.9]"], "optimizer.betas=[1.5, 0.9] is not valid for torch.optim.Adam"),
    (["optimizer=sgd", "optimizer.momentum=-1"], "optimizer.momentum=-1 is not valid for torch.optim.SGD"),
    (["model=bogus"], "Could not find 'model/bogus'"),
    (["schedule.stepz=5"], "Could not override 'schedule.stepz'"),
    (["dataset.batch_size=0"], "dataset.batch_size=0 must be positive; set e.g. dataset.batch_size=64"),
    (["dataset.resolution=30"], "dataset.resolution=30: the DCGAN family builds images of base * 2**n px"),
]


@pytest.mark.parametrize("args,expected", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_through_the_cli_is_one_paragraph_with_exit_2(tmp_path, monkeypatch, capsys, args, expected):
    code, _, err = cli_in_process("train", "device=cpu", "progress=false", *args, cwd=tmp_path,
                                  monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert expected in err
    message = err.strip().splitlines()
    assert len(message) == 1 and message[0].startswith("ganlab: error: "), message
    assert not (tmp_path / "outputs").exists()  # a refused command leaves no run directory


def test_cfg_job_on_a_resumed_run_prints_its_config(tmp_path, monkeypatch, capsys):
    code, _, err = cli_in_process("train", *CLI_TINY, "schedule.steps=2", "hydra.run.dir=run", cwd=tmp_path,
                                  monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    code, out, err = cli_in_process("train", "--cfg", "job", "resume=true", "hydra.run.dir=run", cwd=tmp_path,
                                    monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert "resume: true" in out and "width: 8" in out  # the run's own overrides, reapplied


def test_a_folder_of_several_data_sets_says_how_many_images_and_where(tmp_path, caplog):
    from fake_data import make_images
    from ganlab.data.folder import load_anime

    make_images(tmp_path / "anime", 6)
    make_images(tmp_path / "cifar10" / "test" / "cat", 4)
    with caplog.at_level("INFO", logger="ganlab"):
        data = load_anime(str(tmp_path), resolution=8, batch_size=2)
    assert len(data) == 6  # the root holds anime/: that folder, not the cifar10 images beside it
    assert f"holds a folder named anime/: reading {tmp_path / 'anime'}" in caplog.text
    from ganlab.data.folder import load_folder

    caplog.clear()
    with caplog.at_level("INFO", logger="ganlab"):  # a plain folder set names the folders it mixes
        load_folder(str(tmp_path), resolution=8, batch_size=2)
    assert "10 images (anime/: 6, cifar10/: 4)" in caplog.text
    assert "images come from 2 top-level folders" in caplog.text


def test_a_gan_only_schedule_key_is_refused_for_a_vae(tmp_path):
    with pytest.raises(ConfigError, match=r"schedule.n_critic=5 counts a GAN's D or G updates"):
        train(compose_config(["model=vae_mlp", "schedule.n_critic=5"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()
