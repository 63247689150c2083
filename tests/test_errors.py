"""Bad input stops before training with one short message naming the key, the value and the fix."""

import pytest

from conftest import compose_config, run_cli
from ganlab.errors import ConfigError
from ganlab.train import train


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
