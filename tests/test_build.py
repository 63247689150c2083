"""The `_target_` allow-list: configs build ganlab/torch objects and nothing else."""

import pytest
from omegaconf import OmegaConf

from conftest import compose_config
from ganlab.trust.build import allowed_prefixes, build, check_targets
from ganlab.errors import ConfigError
from ganlab.training.train import train

PREFIXES = allowed_prefixes()


def test_allowed_target_builds_with_facts_it_accepts():
    node = OmegaConf.create({"_target_": "torch.nn.Linear", "out_features": 3})
    layer = build(node, "model.head", PREFIXES, in_features=5, unused_fact=1)
    assert tuple(layer.weight.shape) == (3, 5)


def test_yaml_value_wins_over_fact():
    node = OmegaConf.create({"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 3})
    assert build(node, "x", PREFIXES, in_features=5).in_features == 2


@pytest.mark.parametrize("target", [
    "os.system",
    "subprocess.run",
    "builtins.eval",
    "torchvision.datasets.utils.os.system",  # os.system reached through an allowed prefix
    "torch.nn.functional.torch.load",  # pickle loading reached the same way
    "torch.nn.__builtins__",
    "ganlab",
])
def test_refused_targets_name_the_key_and_the_list(target):
    cfg = OmegaConf.create({"model": {"generator": {"_target_": target, "command": "echo pwned"}}})
    with pytest.raises(ConfigError) as info:
        check_targets(cfg, PREFIXES)
    message = str(info.value)
    assert "model.generator._target_" in message and target in message
    assert "allowed_targets" in message


def test_allowed_targets_extends_the_list():
    node = OmegaConf.create({"_target_": "collections.OrderedDict"})
    with pytest.raises(ConfigError):
        build(node, "x", PREFIXES)
    assert build(node, "x", allowed_prefixes(["collections"])) == {}


def test_a_refused_target_stops_training_before_any_work(tmp_path):
    cfg = compose_config(["loss.adversarial._target_=os.system", f"+loss.adversarial.command=touch {tmp_path}/pwned"])
    with pytest.raises(ConfigError, match="loss.adversarial._target_"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "run").exists()
