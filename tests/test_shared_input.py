"""Nothing shared runs code or rewrites a run: presets, config folders, a colleague's run folder.

Each payload is harmless: it would `touch` a marker file, or overwrite / delete a victim file. A
test fails if the marker ever exists or the victim changes; every refusal is exit 2 with one
paragraph naming the key, and no traceback.
"""

import os
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import CLI_TINY, cli_in_process, run_cli
from ganlab.records import checkpoint

TINY_RUN = [*CLI_TINY, "schedule.steps=4", "schedule.log_every=2", "schedule.sample_every=2", "schedule.ckpt_every=2",
            "schedule.snapshot_every=0"]


def touch(marker: Path) -> str:
    return f'{{_target_: os.system, _args_: ["touch {marker}"]}}'


def preset(folder: Path, name: str, text: str, group: str = "experiment") -> Path:
    path = folder / group / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def refused(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    assert err.startswith("ganlab: error:") and err.strip().count("\n") == 0, err  # one paragraph
    for word in words:
        assert word in err, err


def train_cli(tmp_path, monkeypatch, capsys, *args):
    return cli_in_process("train", *args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished run made through the CLI (its .hydra/ written by ganlab)."""
    import _pytest.monkeypatch

    root = tmp_path_factory.mktemp("finished")
    patch = _pytest.monkeypatch.MonkeyPatch()
    from ganlab.commands import cli

    cwd = os.getcwd()
    try:
        os.chdir(root)
        try:
            cli.main(["train", *TINY_RUN, "hydra.run.dir=run"])
        except SystemExit as exc:
            assert not exc.code, exc
    finally:
        os.chdir(cwd)
        patch.undo()
        import logging

        logging.getLogger().handlers[:] = []
    return root / "run"


# --- 1-3: Hydra's own part of the config, set by a selected preset -----------------------------
def test_a_preset_may_not_set_hydra_callbacks(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    preset(tmp_path / "shared", "cb", f"# @package _global_\nhydra:\n  callbacks:\n    evil: {touch(marker)}\n")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}", "experiment=cb",
                             *TINY_RUN, "hydra.run.dir=run")
    refused(code, err, "Refused hydra.callbacks", "experiment=cb")
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("part", ["job_logging", "hydra_logging"])
def test_a_preset_may_not_configure_logging(tmp_path, monkeypatch, capsys, part):
    victim, marker = tmp_path / "victim.txt", tmp_path / "pwned"
    victim.write_text("precious")
    preset(tmp_path / "shared", "logs", f"""# @package _global_
hydra:
  {part}:
    handlers:
      wipe: {{class: logging.FileHandler, filename: {victim}, mode: w}}
      call: {{"()": subprocess.getoutput, cmd: "touch {marker}"}}
    root: {{handlers: [wipe, call]}}
""")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}", "experiment=logs",
                             *TINY_RUN, "hydra.run.dir=run")
    refused(code, err, f"Refused hydra.{part}")
    assert victim.read_text() == "precious" and not marker.exists()


def test_a_preset_may_not_move_hydras_output_folders(tmp_path, monkeypatch, capsys):
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "config.yaml").write_text("mine")
    preset(tmp_path / "shared", "out", f"# @package _global_\nhydra:\n  output_subdir: {victim}\n  run:\n"
                                       f"    dir: {tmp_path / 'other_tool'}\n")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}", "experiment=out",
                             *TINY_RUN)
    refused(code, err, "Refused hydra.")
    assert (victim / "config.yaml").read_text() == "mine" and not (tmp_path / "other_tool").exists()


def test_a_refused_run_never_deletes_a_folder_it_did_not_create(tmp_path, monkeypatch, capsys):
    other = tmp_path / "tools" / "other_tool"
    other.mkdir(parents=True)
    (other / "train.log").write_text("another tool's log")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, *TINY_RUN, f"hydra.run.dir={other}",
                             "dataset.batch_size=0")
    assert code == 2 and "dataset.batch_size=0" in err
    assert (other / "train.log").read_text() == "another tool's log"
    empty = tmp_path / "empty_but_someone_elses"
    empty.mkdir()
    code, _, _ = train_cli(tmp_path, monkeypatch, capsys, *TINY_RUN, f"hydra.run.dir={empty}", "dataset.batch_size=0")
    assert code == 2 and empty.is_dir()
    code, _, _ = train_cli(tmp_path, monkeypatch, capsys, *TINY_RUN, "hydra.run.dir=new/run", "dataset.batch_size=0")
    assert code == 2 and not (tmp_path / "new").exists()  # what it created itself, it removes


# --- 4-7: widening allowed_targets from anything but the typed command line -------------------
def _widen_and_build(marker: Path) -> str:
    return f"model:\n  generator:\n    hidden: '${{oc.create:[{touch(marker)}]}}'\n"


WIDENINGS = {
    "yaml_tag": lambda root, m: preset(root, "x", "# @package _global_\nallowed_targets: !!python/object/apply:"
                                                  "builtins.list [[os]]\n" + _widen_and_build(m)),
    "defaults_helper": lambda root, m: (preset(root, "widen", "# @package _global_\nallowed_targets: [os]\n", "helpers"),
                                        preset(root, "x", "# @package _global_\ndefaults:\n  - /helpers/widen\n"
                                                          + _widen_and_build(m))),
    "global_package_default": lambda root, m: (
        preset(root, "widen", "allowed_targets: [os]\n", "model_optimizer"),
        preset(root, "x", "# @package _global_\ndefaults:\n  - /model_optimizer@_global_: widen\n"
               + _widen_and_build(m))),
}


@pytest.mark.parametrize("how", sorted(WIDENINGS))
def test_a_preset_cannot_widen_the_allow_list(tmp_path, monkeypatch, capsys, how):
    marker = tmp_path / "pwned"
    WIDENINGS[how](tmp_path / "shared", marker)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}", "experiment=x",
                             *TINY_RUN, "hydra.run.dir=run")
    refused(code, err, *(["not plain YAML", "python/object/apply"] if how == "yaml_tag" else
                         ["Refused allowed_targets", "command line"]))
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("scheme", ["file", "pkg"])
def test_a_preset_from_a_search_path_cannot_widen_it(tmp_path, monkeypatch, capsys, scheme):
    marker = tmp_path / "pwned"
    package = tmp_path / "sharedpkg"
    preset(package / "conf", "x", "# @package _global_\nallowed_targets: [os]\n" + _widen_and_build(marker))
    (package / "__init__.py").write_text("")
    (package / "conf" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    where = f"file://{package / 'conf'}" if scheme == "file" else "pkg://sharedpkg.conf"
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"hydra.searchpath=[{where}]", "experiment=x", *TINY_RUN,
                             "hydra.run.dir=run")
    refused(code, err, "Refused allowed_targets")
    assert not marker.exists()


def test_sweeper_params_in_a_preset_cannot_widen_it(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    preset(tmp_path / "shared", "x", "# @package _global_\nhydra:\n  sweeper:\n    params:\n"
                                     "      allowed_targets: '[os]'\n" + _widen_and_build(marker))
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "-m", f"--config-dir={tmp_path / 'shared'}",
                             "experiment=x", *TINY_RUN, "hydra.sweep.dir=sweep")
    refused(code, err, "Refused hydra.sweeper")
    assert not marker.exists() and not (tmp_path / "sweep").exists()


def test_the_user_may_still_widen_it_and_configure_hydra_on_the_command_line(tmp_path, monkeypatch, capsys):
    preset(tmp_path / "shared", "plain", "# @package _global_\nschedule:\n  steps: 2\n")
    code, out, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}", "experiment=plain",
                               *TINY_RUN, "schedule.steps=2", "allowed_targets=[collections]",
                               "+hydra.job.env_set.GANLAB_TEST_MARK=1", "hydra.run.dir=run", "--cfg", "job")
    assert code == 0, err
    assert yaml.safe_load(out)["allowed_targets"] == ["collections"]
    assert not (tmp_path / "run").exists()  # --cfg job trains nothing and writes nothing


def test_experimental_rerun_which_unpickles_a_file_is_refused(tmp_path, monkeypatch, capsys):
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "--experimental-rerun", str(tmp_path / "config.pickle"))
    refused(code, err, "--experimental-rerun", "unpickles")


# --- 8: what resume=true reads back from a shared run folder -----------------------------------
def _resign(path: Path, change) -> None:
    state = checkpoint.load(path)
    change(state)
    checkpoint.save_atomic({k: v for k, v in state.items() if k != "checksum"}, path)


@pytest.mark.parametrize("where", ["hydra_folder", "checkpoint"])
@pytest.mark.parametrize("planted", ["callback", "widen", "rerun", "primary"])
def test_stored_overrides_are_never_a_command_line(tmp_path, monkeypatch, capsys, finished_run, where, planted):
    """Issue 32, items 1-2: whatever a run folder or checkpoint records as its overrides (Hydra
    flags, a rerun pickle, a config folder and primary config, callbacks, a wider allow-list) is
    never parsed: the run continues from its stored settings and the payload never runs."""
    import pickle

    run_dir, marker, victim = tmp_path / "run", tmp_path / "pwned", tmp_path / "victim.txt"
    victim.write_text("mine")
    shutil.copytree(finished_run, run_dir)
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "evil.yaml").write_text(
        "defaults: [_self_]\nallowed_targets: [io]\nhydra:\n  callbacks:\n    x:\n      _target_: io.open\n"
        f"      file: {victim}\n      mode: w\n")
    with open(tmp_path / "rerun.pickle", "wb") as handle:
        pickle.dump(_Touch(str(marker)), handle)
    payload = {"callback": ["+hydra.callbacks.evil._target_=os.system", f"+hydra.callbacks.evil._args_=[touch {marker}]"],
               "widen": ["allowed_targets=[os]", f"+model.generator.extra={touch(marker)}"],
               "rerun": [f"--experimental-rerun={tmp_path / 'rerun.pickle'}"],
               "primary": [f"--config-dir={tmp_path / 'evil'}", "--config-name=evil"]}[planted]
    checkpoints = sorted((run_dir / "checkpoints").glob("*.pt"))
    if where == "hydra_folder":
        for path in checkpoints:  # a checkpoint from before checkpoints held their overrides
            _resign(path, lambda state: state.pop("overrides", None))
        saved = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(saved + payload))
    else:
        for path in checkpoints:
            _resign(path, lambda state: state.update(overrides=list(state["overrides"]) + payload))
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}",
                             "schedule.steps=6")
    assert code == 0 and "Traceback" not in err, err
    assert not marker.exists() and victim.read_text() == "mine"
    rows = [yaml.safe_load(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6  # continued from its stored settings (debug=tiny's sizes included)
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["model"]["generator"]["width"] == 8


class _Touch:
    """A pickle that creates `marker` when loaded (the payload a rerun file could carry)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --- a refused command leaves the run as it was -------------------------------------------------
@pytest.mark.parametrize("typed", [["optimizer.lr=0.005"], ["resume=true", "seed=3"],
                                   ["resume=true", "model.generator.width=16"]])
def test_a_refused_command_leaves_every_file_of_the_run_as_it_was(tmp_path, monkeypatch, capsys, finished_run, typed):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = snapshot(run_dir)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, *TINY_RUN, f"hydra.run.dir={run_dir}", *typed)
    assert code == 2 and "Traceback" not in err, err
    assert snapshot(run_dir) == before
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}",
                             "schedule.steps=6")
    assert code == 0, err
    assert "lr 0.005" not in err and "seed" not in err
    rows = [yaml.safe_load(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6 and rows[-1]["lr/generator"] == pytest.approx(2e-4)


def test_resume_without_hydra_folder_continues_from_the_checkpoints_settings(tmp_path, monkeypatch, capsys):
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, *TINY_RUN, "optimizer.lr=1e-4", "hydra.run.dir=run")
    assert code == 0, err
    shutil.rmtree(tmp_path / "run" / ".hydra")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", "hydra.run.dir=run", "schedule.steps=6")
    assert code == 0, err
    rows = [yaml.safe_load(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6 and rows[-1]["lr/generator"] == pytest.approx(1e-4)


# --- 12: links planted in a shared run folder ---------------------------------------------------
@pytest.mark.parametrize("name", ["model_summary.txt", "metrics.jsonl.tmp", "samples/step_000006.png", "train.log"])
def test_links_planted_in_a_run_folder_are_refused_not_written_through(tmp_path, monkeypatch, capsys, finished_run,
                                                                        name):
    run_dir, victim = tmp_path / "run", tmp_path / "victim.txt"
    shutil.copytree(finished_run, run_dir)
    victim.write_text("precious")
    link = run_dir / name
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}",
                             "schedule.steps=6")
    refused(code, err, "symbolic link", name.split("/")[-1])
    assert victim.read_text() == "precious"


# --- 9-11: checkpoints, caches and data files someone else wrote --------------------------------
class Boom:
    """Unpickling this runs `touch marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("verb", ["sample", "eval"])
def test_a_checkpoints_stored_allow_list_is_never_honoured(tmp_path, monkeypatch, capsys, finished_run, verb):
    run_dir, marker = tmp_path / "run", tmp_path / "pwned"
    shutil.copytree(finished_run, run_dir)

    def plant(state):
        state["config"]["allowed_targets"] = ["os"]
        state["config"]["model"]["generator"]["extra"] = {"_target_": "os.system", "_args_": [f"touch {marker}"]}

    _resign(run_dir / "checkpoints" / "last.pt", plant)  # a validly signed file: the checksum is no defence
    extra = ["classifier=" + str(run_dir / "checkpoints" / "last.pt")] if verb == "eval" else []
    code, _, err = cli_in_process(verb, f"run={run_dir}", "device=cpu", *extra, cwd=tmp_path, monkeypatch=monkeypatch,
                                  capsys=capsys)
    refused(code, err, "Refused `model.generator.extra._target_: os.system`")
    assert not marker.exists()


def test_a_plain_pickle_as_checkpoint_is_refused_in_one_message_without_running(tmp_path):
    import pickle
    import warnings

    path, marker = tmp_path / "shared.pt", tmp_path / "pwned"
    with path.open("wb") as handle:
        pickle.dump({"networks": Boom(marker)}, handle, protocol=pickle.HIGHEST_PROTOCOL)  # not torch.save's 2
    with warnings.catch_warnings(record=True) as caught, pytest.raises(checkpoint.CorruptCheckpoint) as info:
        warnings.simplefilter("always")
        checkpoint.load(path, key="metrics.classifier")
    assert "metrics.classifier" in str(info.value) and str(path) in str(info.value)
    assert not [str(w.message) for w in caught]  # the error is all the user reads: torch's protocol warning is not
    assert not marker.exists()


def test_inception_weights_are_never_read_from_a_shared_cache(tmp_path, monkeypatch):
    import torch

    from ganlab.records.cache import file_sha256
    from ganlab.metrics.inception import clean_weights

    weights, marker, cache = tmp_path / "weights.pth", tmp_path / "pwned", tmp_path / "cache"
    torch.save({"fc.weight": torch.ones(2, 2)}, weights)
    cache.mkdir()
    sha = file_sha256(weights)
    for name in (f"inception-{sha[:16]}.pt", "torch-fidelity"):  # what an earlier version kept there
        torch.save({"x": Boom(marker)}, cache / name) if name.endswith(".pt") else (cache / name).mkdir()
    monkeypatch.setenv("GANLAB_CACHE", str(cache))
    with clean_weights(str(weights)) as (copy, got_sha):
        assert got_sha == sha and cache not in copy.parents
        assert torch.equal(torch.load(copy, weights_only=True)["fc.weight"], torch.ones(2, 2))
        unpickled_by_torch_fidelity = torch.load(copy, weights_only=False)  # what torch-fidelity does with it
        assert set(unpickled_by_torch_fidelity) == {"fc.weight"}
    assert not copy.exists() and not marker.exists()


def test_an_inception_weights_file_with_code_is_refused(tmp_path):
    import torch

    from ganlab.errors import ConfigError
    from ganlab.metrics.inception import clean_weights

    weights, marker = tmp_path / "weights.pth", tmp_path / "pwned"
    torch.save({"fc.weight": Boom(marker)}, weights)
    with pytest.raises(ConfigError, match="could not be read as plain weights"):
        with clean_weights(str(weights)):
            pass
    assert not marker.exists()


def test_a_crafted_cifar_batch_is_refused_without_running_it(tmp_path):
    import pickle

    from fake_data import make_cifar_batches
    from ganlab.data.cifar import load_cifar10
    from ganlab.errors import ConfigError

    root, marker = make_cifar_batches(tmp_path), tmp_path / "pwned"
    assert len(load_cifar10(str(root), split="test", batch_size=4)) == 20  # the real format still loads
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as handle:
        pickle.dump({"data": Boom(marker), "labels": [0]}, handle)
    with pytest.raises(ConfigError, match="test_batch is not a CIFAR-10 batch file.*posix.system"):
        load_cifar10(str(root), split="test", batch_size=4)
    assert not marker.exists()


def _statistics(images):
    import torch

    return {"mean": images.float().mean(0), "count": torch.tensor(len(images))}


def test_a_damaged_or_planted_cache_file_is_computed_again(tmp_path, caplog):
    import torch

    from ganlab.records.cache import file_sha256
    from ganlab.metrics.stats import cached, tensor_sha256

    images, calls = torch.arange(48, dtype=torch.uint8).reshape(3, 16), []

    def compute():
        calls.append(1)
        return _statistics(images)

    key = {"real": "digits", "images_sha256": tensor_sha256(images)}
    first, hit = cached(tmp_path, key, compute)
    assert not hit and len(calls) == 1
    again, hit = cached(tmp_path, key, compute)
    assert hit and len(calls) == 1 and torch.equal(again["mean"], first["mean"])
    [path] = tmp_path.glob("real_*.pt")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # accidental damage
    path.write_bytes(bytes(raw))
    with caplog.at_level("WARNING", logger="ganlab"):
        repaired, hit = cached(tmp_path, key, compute)
    assert not hit and len(calls) == 2 and torch.equal(repaired["mean"], first["mean"]) and "damaged" in caplog.text
    marker = tmp_path / "pwned"
    torch.save({"mean": Boom(marker)}, path)  # a planted pickle, its checksum recomputed by whoever planted it
    meta = path.with_suffix(".json")
    meta.write_text(meta.read_text().replace(yaml.safe_load(meta.read_text())["sha256"], file_sha256(path)))
    planted, hit = cached(tmp_path, key, compute)
    assert not hit and not marker.exists() and torch.equal(planted["mean"], first["mean"])


def test_other_data_under_the_same_root_never_reuses_stale_statistics(tmp_path):
    import torch

    from ganlab.metrics.stats import cached, tensor_sha256

    old, new = torch.zeros(4, 8, dtype=torch.uint8), torch.full((4, 8), 200, dtype=torch.uint8)
    for images in (old, new):
        value, hit = cached(tmp_path, {"real": "same root", "images_sha256": tensor_sha256(images)},
                            lambda: _statistics(images))
        assert not hit and torch.equal(value["mean"], images.float().mean(0))


# --- faults outside train: nothing lost, nothing partial under a final name ---------------------
def test_the_lock_holds_when_its_file_is_deleted(tmp_path):
    from ganlab.errors import ConfigError
    from ganlab.records.rundir import LOCK_NAME, RunDirLock

    with RunDirLock(tmp_path):
        (tmp_path / LOCK_NAME).unlink()  # what a tidy-up script might do while a run trains
        with pytest.raises(ConfigError, match="is in use"):
            RunDirLock(tmp_path).__enter__()
    with RunDirLock(tmp_path):  # released with its holder
        pass


def test_snapshots_are_chosen_and_pruned_by_the_step_they_hold(tmp_path, caplog):
    from conftest import compose_config
    from ganlab.training.train import train

    short = ["schedule.steps=8", "schedule.ckpt_every=4", "schedule.snapshot_every=4", "schedule.keep_last=5"]
    train(compose_config(short), tmp_path)
    folder = tmp_path / "checkpoints"
    shutil.copy(folder / "step_000004.pt", folder / "step_000900.pt")  # renamed: holds step 4
    (folder / "last.pt").unlink()
    with caplog.at_level("INFO", logger="ganlab"):
        loop = train(compose_config([*short, "resume=true", "schedule.steps=12", "schedule.keep_last=1"]), tmp_path)
    assert loop.step == 12
    assert "resumed from step 8 of 12" in caplog.text and "holds step 4, not the step its name says" in caplog.text
    assert sorted(p.name for p in folder.glob("step_*.pt")) == ["step_000012.pt", "step_000900.pt"]
    assert checkpoint.load(folder / "step_000012.pt")["step"] == 12


def test_other_data_on_resume_is_a_warning_with_both_counts(tmp_path, caplog):
    from conftest import compose_config
    from fake_data import make_images
    from ganlab.training.train import train

    make_images(tmp_path / "big", 12)
    make_images(tmp_path / "small", 4)
    common = ["dataset=folder", "dataset.batch_size=4", "schedule.steps=4", "schedule.ckpt_every=2"]
    train(compose_config([*common, f"dataset.root={tmp_path / 'big'}"]), tmp_path / "run")
    with caplog.at_level("WARNING", logger="ganlab"):
        train(compose_config([*common, f"dataset.root={tmp_path / 'small'}", "resume=true", "schedule.steps=6"]),
              tmp_path / "run")
    assert "now holds 4 images, but the run trained on 12" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("format", ["png", "npz"])
def test_a_killed_sample_leaves_nothing_partial_under_the_final_name(tmp_path, finished_run, format):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out" / ("many" if format == "png" else "many.npz")
    command = [sys.executable, "-m", "ganlab", "sample", f"run={finished_run}", "device=cpu", f"format={format}",
               "n=120000", "batch_size=1000", f"out={out}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not any((tmp_path / "out").glob(".*.partial*")):  # mid-write
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed while writing, not finished
    assert not out.exists()  # never a partial folder or an unreadable .npz under the final name
    assert not list((tmp_path / "out").glob("*.npy")) and not list((tmp_path / "out").glob("tmp*"))
    done = run_cli(*command[3:-3], "n=40", f"out={out}", cwd=tmp_path)  # the next sample, in this process
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == [out.name]  # the killed run's partial is gone


@pytest.fixture
def full_disk(tmp_path):
    """A real, tiny file system (tmpfs) with no space left."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        with open(mount / "filler", "wb") as handle:
            handle.write(b"x" * (512 * 1024))
    except OSError:
        pass
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _classifier(tmp_path: Path) -> Path:
    from conftest import compose_config
    from ganlab.training.train import train

    train(compose_config(["model=classifier_mlp", "dataset.resolution=16", "model.classifier.hidden=[16]",
                          "schedule.steps=2"]), tmp_path / "clf")
    return tmp_path / "clf" / "checkpoints" / "last.pt"


@pytest.mark.parametrize("verb", ["sample_npz", "sample_grid", "sample_png", "eval", "report", "train"])
def test_a_full_disk_is_one_paragraph_and_exit_4_for_every_verb(tmp_path, monkeypatch, capsys, finished_run,
                                                                 full_disk, verb):
    args = {"sample_npz": ["sample", f"run={finished_run}", "format=npz", "n=2000", f"out={full_disk}/x.npz"],
            "sample_grid": ["sample", f"run={finished_run}", f"out={full_disk}/x.png"],
            "sample_png": ["sample", f"run={finished_run}", "format=png", "n=500", f"out={full_disk}/x"],
            "eval": ["eval", f"run={finished_run}", f"classifier={finished_run}", "n=50", f"out={full_disk}/e.json"],
            "report": ["report", str(finished_run), f"out={full_disk}/report"],
            "train": ["train", *TINY_RUN, f"hydra.run.dir={full_disk}/run"]}[verb]
    if verb == "eval":
        args[2] = f"classifier={_classifier(tmp_path)}"
    code, _, err = cli_in_process(*args, *([] if verb in ("report", "train") else ["device=cpu"]), cwd=tmp_path,
                                  monkeypatch=monkeypatch, capsys=capsys)
    assert code == 4, err
    last = err.strip().splitlines()[-1]  # (after sample's progress bar)
    assert "Traceback" not in err and last.startswith("ganlab: fault:") and "disk is full" in last, err
    assert str(full_disk) in last, last  # it names the file (or folder) the full disk stopped
    left = sorted(p.name for p in full_disk.rglob("*") if p.name != "filler")
    assert all(not name.startswith(("x", "e.json")) for name in left), left  # no partial output under its name


def test_eval_json_says_computed_when_the_real_side_was_computed(tmp_path, monkeypatch, capsys, finished_run):
    import json

    clf = _classifier(tmp_path)
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "cache"))
    outputs = []
    for attempt in range(2):
        out = tmp_path / f"eval{attempt}.json"
        code, _, err = cli_in_process("eval", f"run={finished_run}", f"classifier={clf}", "n=50", "device=cpu",
                                      "metrics=[classifier_fd,classifier_pr,classifier]", f"out={out}", cwd=tmp_path,
                                      monkeypatch=monkeypatch, capsys=capsys)
        assert code == 0, err
        outputs.append(json.loads(out.read_text()))
    assert [o["protocol"]["real_statistics"] for o in outputs] == ["computed", "cache"]
    assert outputs[0]["metrics"] == outputs[1]["metrics"]


def test_a_signal_after_training_began_does_not_claim_nothing_was_trained(tmp_path):
    """What rank 0 printed when torchrun stopped it after rank 1 died: the truth, not 'nothing was trained'."""
    import subprocess
    import sys

    code = ("import os, signal, pathlib, ganlab.commands.cli as cli; session = cli._stop_cleanly_on_signals('train'); "
            f"session.training_in = pathlib.Path({str(tmp_path)!r}); os.kill(os.getpid(), signal.SIGTERM)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 143
    assert f"after training had begun in {tmp_path}" in done.stderr and "nothing was trained" not in done.stderr
    assert f"resume=true hydra.run.dir={tmp_path}" in done.stderr


def test_a_hydra_option_from_a_shared_folder_is_refused_even_when_typed(tmp_path, monkeypatch, capsys):
    """`hydra/launcher=x` typed by the user, where x is a file in a shared --config-dir: its content
    is someone else's (a launcher's setup lines run in every job), so it is refused by name."""
    marker = tmp_path / "pwned"
    preset(tmp_path / "shared", "evil", "_target_: hydra._internal.core_plugins.basic_launcher.BasicLauncher\n"
                                        f"setup: [touch {marker}]\n", group="hydra/launcher")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}",
                             "hydra/launcher=evil", *TINY_RUN, "hydra.run.dir=run")
    refused(code, err, "Refused hydra/launcher=evil:", "not from a --config-dir")
    assert not marker.exists() and not (tmp_path / "run").exists()
