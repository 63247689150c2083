"""A config file, an override or a checkpoint never runs code the user did not ask for.

Each payload is harmless (`touch` a marker file): the test fails if the marker ever exists.
"""

import pytest
from omegaconf import OmegaConf

from conftest import CLI_TINY, cli_in_process, compose_config
from ganlab.records import checkpoint
from ganlab.trust.build import allowed_prefixes, build, check_targets
from ganlab.errors import ConfigError
from ganlab.training.train import train


def touch(marker) -> str:
    return '{_target_: os.system, _args_: ["touch ' + str(marker) + '"]}'


def test_an_interpolation_on_the_command_line_is_checked_after_resolution(tmp_path):
    marker = tmp_path / "pwned"
    cfg = compose_config([f"model.generator.hidden='${{oc.create:[{touch(marker)}]}}'"])
    with pytest.raises(ConfigError, match=r"Refused `model.generator.hidden\[0\]._target_: os.system`"):
        train(cfg, tmp_path / "run")
    assert not marker.exists()


def test_an_interpolation_in_a_shared_preset_is_refused_through_the_cli(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    presets = tmp_path / "shared" / "experiment"
    presets.mkdir(parents=True)
    (presets / "evil.yaml").write_text("# @package _global_\nmodel:\n  generator:\n"
                                       f"    hidden: '${{oc.create:[{touch(marker)}]}}'\n")
    code, _, err = cli_in_process("train", f"--config-dir={tmp_path / 'shared'}", "experiment=evil", *CLI_TINY,
                                  "hydra.run.dir=run", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "Traceback" not in err
    assert "Refused `model.generator.hidden[0]._target_: os.system`" in err
    assert not marker.exists()
    assert not (tmp_path / "run").exists()  # a refused command leaves no run directory


def test_torch_hub_load_from_a_local_folder_is_refused(tmp_path):
    marker, hub = tmp_path / "pwned", tmp_path / "hub"
    hub.mkdir()
    (hub / "hubconf.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\ndef m():\n    pass\n")
    node = f"{{_target_: torch.hub.load, repo_or_dir: {hub}, model: m, source: local}}"
    with pytest.raises(ConfigError, match="torch.hub.load"):
        train(compose_config([f"model.generator.hidden='${{oc.create:[{node}]}}'"]), tmp_path / "run")
    assert not marker.exists()


def test_an_escaped_interpolation_cannot_resolve_after_the_check(tmp_path):
    marker = tmp_path / "pwned"
    node = OmegaConf.create({"_target_": "torch.nn.Linear", "in_features": 2,
                             "out_features": "\\${oc.create:" + touch(marker) + "}"})
    with pytest.raises(ConfigError, match="resolves to another interpolation"):
        build(node, "model.head", allowed_prefixes())
    assert not marker.exists()


def test_a_config_stored_in_a_checkpoint_passes_the_same_check(tmp_path):
    """A checkpoint that loads cleanly with weights_only=True, but whose config carries the payload."""
    marker = tmp_path / "pwned"
    train(compose_config(["model=classifier_mlp", "dataset.resolution=16", "model.classifier.hidden=[16]",
                          "schedule.steps=2"]), tmp_path / "clf")
    path = tmp_path / "clf" / "checkpoints" / "last.pt"
    state = checkpoint.load(path)
    state["config"]["model"]["classifier"]["hidden"] = "${oc.create:[" + touch(marker) + "]}"
    checkpoint.save_atomic({k: v for k, v in state.items() if k != "checksum"}, path)  # a valid, signed file
    with pytest.raises(ConfigError, match="interpolation at config.model.classifier.hidden, which is never resolved"):
        train(compose_config([f"metrics.classifier={path}"]), tmp_path / "gan")
    assert not marker.exists()


@pytest.mark.parametrize("target", [
    "torchvision.datasets.utils.download_url",  # writes a file where the config says
    "torchvision.io.write_png",
    "torch.nn.functional.torch.load",
    "torch.nn.init.torch.save",
    "torch.optim.Optimizer.add_param_group",
    "torch.hub.load",
    "ganlab.records.checkpoint.save_atomic",  # ganlab's own file writers are not building blocks
    "ganlab.records.rundir.remove_if_never_ran",
    "torchvision.models.resnet18",  # weights= downloads, and loads a planted file from $TORCH_HOME
    "ganlab.metrics.stats.cached",  # writes cache files where its argument says
])
def test_file_and_network_helpers_inside_allowed_packages_are_refused(target):
    cfg = OmegaConf.create({"dataset": {"_target_": target, "url": "http://example.invalid/x", "root": "/tmp"}})
    with pytest.raises(ConfigError, match="dataset._target_"):
        check_targets(cfg, allowed_prefixes())


@pytest.mark.parametrize("target", ["torch.nn.Linear", "torch.optim.Adam", "torchvision.transforms.Resize",
                                    "ganlab.models.dcgan.DCGANGenerator",
                                    "ganlab.data.digits.load_digits", "ganlab.losses.HingeLoss"])
def test_what_configs_need_is_allowed(target):
    key = "dataset" if ".data." in target else "x"  # a data set builds only as the dataset node
    check_targets(OmegaConf.create({key: {"_target_": target}}), allowed_prefixes())


def test_a_preset_may_not_widen_the_allow_list(tmp_path, monkeypatch, capsys):
    presets = tmp_path / "shared" / "experiment"
    presets.mkdir(parents=True)
    (presets / "widen.yaml").write_text("# @package _global_\nallowed_targets: [os]\n")
    code, _, err = cli_in_process("train", f"--config-dir={tmp_path / 'shared'}", "experiment=widen", *CLI_TINY,
                                  "hydra.run.dir=run", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "Traceback" not in err
    assert "Refused allowed_targets=['os']" in err and "experiment=widen" in err and "command line" in err


def test_the_user_may_widen_it_on_the_command_line(tmp_path):
    cfg = compose_config(["allowed_targets=[collections]", "+model.extra._target_=collections.OrderedDict"])
    with pytest.raises(ConfigError, match="collections.OrderedDict"):  # not allowed by default ...
        check_targets(cfg, allowed_prefixes())
    check_targets(cfg, allowed_prefixes(cfg.allowed_targets))  # ... allowed once the user widens the list
    built = build(OmegaConf.create({"_target_": "collections.OrderedDict"}), "model.extra",
                  allowed_prefixes(cfg.allowed_targets))
    assert type(built).__name__ == "OrderedDict"
