"""Checkpoint content, safe loading, atomic writes and the keep-last-K rule."""

from pathlib import Path

import pytest
import torch

from conftest import compose_config
from ganlab.records import checkpoint
from ganlab.errors import ConfigError
from ganlab.training.train import train


@pytest.fixture(scope="module")
def last_checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ckpt")
    train(compose_config(["schedule.steps=4", "schedule.ema_decay=0.5"]), run_dir)
    return run_dir / "checkpoints" / "last.pt"


def test_checkpoint_holds_everything_an_exact_resume_needs(last_checkpoint):
    state = torch.load(last_checkpoint, weights_only=True)  # opens without running code
    assert state["format_version"] == checkpoint.FORMAT_VERSION
    assert state["step"] == 4
    assert set(state["networks"]) == {"generator", "discriminator"}
    assert set(state["ema"]) == {"generator"}
    assert set(state["optimizers"]) == {"generator", "discriminator"}
    assert state["optimizers"]["generator"]["state"], "Adam moments must be saved"
    assert state["fixed"]["noise"].shape == (16, 16)
    assert state["rng"]["torch"].dtype == torch.uint8
    assert state["batches"] == {"epoch": 0, "position": 64}
    assert state["config"]["schedule"]["steps"] == 4
    assert state["config"]["loss"]["adversarial"]["_target_"] == "ganlab.losses.NonSaturatingLoss"


def test_load_refuses_a_pickle_that_would_run_code(tmp_path):
    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "ran",))

    bad = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": Boom()}, bad)
    with pytest.raises(ConfigError, match="could not be read as a ganlab checkpoint"):
        checkpoint.load(bad)
    assert not (tmp_path / "ran").exists()


def test_load_names_a_truncated_file(tmp_path, last_checkpoint):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(last_checkpoint.read_bytes()[:1000])
    with pytest.raises(ConfigError, match=str(cut)):
        checkpoint.load(cut)


def test_load_names_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.pt")


def test_a_crash_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    layout = {"format_version": checkpoint.FORMAT_VERSION, "config": {}, "facts": {"shape": [1, 2, 2]},
              "networks": {}, "ema": {}, "fixed": {}, "value_range": "tanh"}
    checkpoint.save_atomic({**layout, "step": 1}, path)

    def crash(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_atomic({**layout, "step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_periodic_checkpoints_keep_the_newest_k(tmp_path):
    for step in (10, 20, 30, 40):
        checkpoint.save_periodic({"format_version": 1, "step": step}, tmp_path, step, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000030.pt", "step_000040.pt"]
