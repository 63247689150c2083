"""The layout by layer keeps every name users and old files write: old dotted module names
(`ganlab.losses.*` in configs, `ganlab.checkpoint` in scripts) and checkpoints of format 2, whose
stateful parts kept their keys at the top level (tests/fixtures/flat_checkpoint, written by ganlab
before "One assembly path")."""

import shutil
from pathlib import Path

import pytest
import torch

from conftest import compose_config
from ganlab.records import checkpoint
from ganlab.training.train import train
from ganlab.trust.registry import entries, lookup, public_name

FIXTURES = Path(__file__).parent / "fixtures" / "flat_checkpoint"
FIXTURE = FIXTURES / "last.pt"  # step 4 of 8, by ganlab before "One assembly path" (format 2)
# the command line that wrote it; the same run's step_000008.pt and metrics.jsonl are beside it
FIXTURE_RUN = ["debug=tiny", "model=mlp", "dataset=ring", "model.generator.hidden=[16]",
               "model.discriminator.hidden=[16]", "schedule.ema_decay=0.9", "schedule.adaptive.phase=G",
               "schedule.adaptive.margin=-100", "schedule.adaptive.max_extra=2", "schedule.log_every=3",
               "schedule.snapshot_every=4", "schedule.steps=8"]


def test_old_module_names_are_the_same_modules():
    import ganlab.checkpoint
    import ganlab.losses
    import ganlab.objectives.losses
    import ganlab.records.checkpoint
    from ganlab import penalties, train as old_train

    assert ganlab.losses is ganlab.objectives.losses
    assert ganlab.checkpoint is ganlab.records.checkpoint
    assert penalties.R1Penalty is __import__("ganlab.objectives.penalties", fromlist=["x"]).R1Penalty
    assert old_train.train is train
    assert ganlab.records.checkpoint.__spec__.name == "ganlab.records.checkpoint"  # the module keeps its own spec


def test_every_moved_name_is_the_module_it_names():
    import importlib

    from ganlab import MOVED

    for old, new in MOVED.items():  # a stale entry (its module moved again) fails here, not in a user's config
        assert importlib.import_module(old) is importlib.import_module(new), old
    assert MOVED["ganlab.records.transfer"] == MOVED["ganlab.transfer"] == "ganlab.training.transfer"


def test_a_target_builds_under_its_old_and_its_new_name():
    old, new = lookup("ganlab.losses.HingeLoss"), lookup("ganlab.objectives.losses.HingeLoss")
    assert old is not None and old == new and old[0] == "loss"
    assert public_name("ganlab.objectives.augment.DiffAugment") == "ganlab.augment.DiffAugment"
    names = set(entries())
    for config in Path("configs").rglob("*.yaml"):  # every _target_ a shipped config writes is buildable
        for line in config.read_text().splitlines():
            if line.strip().startswith("_target_:"):
                target = line.split(":", 1)[1].split("#")[0].strip()
                assert lookup(target) is not None, f"{config}: {target}"
    assert "ganlab.objectives.losses.HingeLoss" in names


def _networks(path):
    state = torch.load(path, weights_only=True)
    return {f"{part}.{net}.{k}": v for part in ("networks", "ema") for net, d in state[part].items()
            for k, v in d.items()}


def test_a_format_2_checkpoint_resumes_bit_for_bit(tmp_path):
    """The fixture (its adaptive gaps and a partly filled log window at the top level) continues to
    step 8 exactly as the old code's uninterrupted run did: the same weights and logged losses; the
    new checkpoint keeps each part under its own key."""
    import json

    old = torch.load(FIXTURE, weights_only=True)
    assert old["format_version"] == 2 and old["adaptive_gaps"] and old["meter"]["counts"] and "parts" not in old
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(FIXTURE, run_dir / "checkpoints" / "last.pt")
    rows = [json.loads(line) for line in (FIXTURES / "metrics.jsonl").read_text().splitlines()]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["step"] <= 4))
    resumed = train(compose_config([*FIXTURE_RUN, "resume=true"], shrink=False), run_dir)
    assert resumed.step == 8
    a, b = _networks(FIXTURES / "step_000008.pt"), _networks(run_dir / "checkpoints" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    drop_clock = lambda r: {k: v for k, v in r.items() if not k.startswith("perf/")}  # noqa: E731
    assert [drop_clock(r) for r in logged] == [drop_clock(r) for r in rows]
    new = checkpoint.load(run_dir / "checkpoints" / "last.pt")
    assert new["format_version"] == checkpoint.FORMAT_VERSION == 3
    assert set(new["parts"]) == {"step", "maintenance"} and len(new["parts"]["step"]["adaptive_gaps"]) == 3
    assert "meter" not in new and "adaptive_gaps" not in new


def test_the_flat_fixtures_parts_are_read_back():
    """Without training: what a format-2 checkpoint says about its run, through the accessors."""
    saved = checkpoint.Saved(checkpoint.load(FIXTURE))
    assert saved.step == 4 and saved.best is None and saved.seed == 0 and saved.images is None
    assert saved.config["model"]["generator"]["hidden"] == [16] and "schedule.steps=8" in saved.overrides
