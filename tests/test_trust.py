"""Trust by construction (issue 32): each way a stranger's input got through, as a harmless payload.

A marker file must never exist, a victim file of the test's own must stay byte for byte the same,
nothing may hang past a few seconds, and a refusal is exit 2 with one paragraph naming the file or
key. Fixtures and helpers are shared with test_shared_input.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import run_cli
from ganlab.records import checkpoint
from ganlab.trust.build import allowed_prefixes, check_targets
from ganlab.errors import ConfigError
from test_shared_input import TINY_RUN, _resign, finished_run, preset, refused, snapshot, train_cli  # noqa: F401


@contextlib.contextmanager
def within(seconds: int):
    """Fail (instead of hanging the suite) when the block takes longer than `seconds`."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def victim_file(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("mine, unchanged")
    return victim


def copy_run(finished_run, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    return run_dir


# --- 3: a preset may not write Hydra's record of the command line ----------------------------------
def test_a_preset_may_not_set_hydras_overrides(tmp_path, monkeypatch, capsys):
    preset(tmp_path / "shared", "evil", "# @package _global_\nhydra:\n  overrides:\n    task: "
                                        f"['--experimental-rerun={tmp_path / 'x.pickle'}']\n")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}", "experiment=evil",
                             *TINY_RUN, "hydra.run.dir=run")
    refused(code, err, "hydra.overrides", "experiment=evil")
    assert not (tmp_path / "run").exists()


# --- 4: only registered objects build, under any key ----------------------------------------------
@pytest.mark.parametrize("node", [
    "{_target_: ganlab.metrics.stats.cached, cache_dir: VICTIM, description: {}, compute: null}",
    "{_target_: ganlab.data.folder.load_folder, root: VICTIM, cache: true, cache_dir: VICTIM}",
    "{_target_: torchvision.models.resnet18, weights: DEFAULT}",
    "{_target_: ganlab.data.mnist.load_mnist, root: VICTIM, download: true}",
])
@pytest.mark.parametrize("key", ["_extra", "extra"])
def test_helpers_and_data_sets_never_build_under_a_model_key(tmp_path, monkeypatch, capsys, node, key):
    victim = victim_file(tmp_path)
    text = node.replace("VICTIM", str(tmp_path))
    preset(tmp_path / "shared", "evil", f"# @package _global_\nmodel:\n  generator:\n    {key}: {text}\n")
    before = snapshot(tmp_path)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}", "experiment=evil",
                             *TINY_RUN, "hydra.run.dir=run")
    refused(code, err, f"model.generator.{key}")
    assert snapshot(tmp_path) == before and victim.read_text() == "mine, unchanged"


@pytest.mark.parametrize("verb", ["sample", "eval"])
def test_a_checkpoints_stored_helper_under_an_underscore_key_never_builds(tmp_path, finished_run, verb):
    run_dir = copy_run(finished_run, tmp_path)
    victim = victim_file(tmp_path)
    for path in (run_dir / "checkpoints").glob("*.pt"):
        _resign(path, lambda state: state["config"]["model"]["generator"].update(
            _extra={"_target_": "ganlab.metrics.stats.cached", "cache_dir": str(tmp_path), "description": {},
                    "compute": None}))
    extra = ["classifier=" + str(run_dir / "checkpoints" / "last.pt")] if verb == "eval" else []
    result = run_cli(verb, f"run={run_dir}", "device=cpu", *extra, cwd=tmp_path)
    refused(result.returncode, result.stderr, "model.generator._extra")
    assert victim.read_text() == "mine, unchanged" and not (tmp_path / "real_").exists()


def test_downloads_and_cache_folders_come_only_from_what_the_user_typed(tmp_path, monkeypatch, capsys):
    for text, key in [("dataset:\n  download: true\n", "dataset.download"),
                      (f"dataset:\n  cache_dir: {tmp_path / 'elsewhere'}\n", "dataset.cache_dir"),
                      (f"paths:\n  data: {tmp_path / 'elsewhere'}\n", "paths")]:
        preset(tmp_path / "shared", "evil", "# @package _global_\ndefaults:\n  - override /dataset: mnist\n" + text)
        code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}",
                                 "experiment=evil", *TINY_RUN, "hydra.run.dir=run")
        refused(code, err, key)
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "run").exists()


def test_a_resumed_runs_stored_download_and_cache_folder_are_not_used(tmp_path, monkeypatch, capsys, finished_run):
    from ganlab.trust import stored

    settings = {"dataset": {"_target_": "ganlab.data.mnist.load_mnist", "download": True,
                            "cache_dir": str(tmp_path / "elsewhere")}, "allowed_targets": ["os"], "paths": {"data": "/x"}}
    now = {"dataset": {"_target_": "ganlab.data.mnist.load_mnist", "download": False}, "allowed_targets": [],
           "paths": {"data": "data"}}
    merged = stored.merged(settings, now, now, typed=[])
    assert merged["dataset"]["download"] is False and merged["dataset"]["cache_dir"] == "data/.cache"
    assert merged["allowed_targets"] == [] and merged["paths"] == {"data": "data"}


# --- 5-7: the guarded writer -----------------------------------------------------------------------
def test_a_planted_link_as_an_image_caches_json_is_refused(tmp_path, monkeypatch, capsys):
    from fake_data import make_images

    victim = victim_file(tmp_path)
    make_images(tmp_path / "images", 20)
    cache = tmp_path / "cache"
    args = ["dataset=folder", f"dataset.root={tmp_path / 'images'}", "dataset.cache=true", f"dataset.cache_dir={cache}",
            *TINY_RUN]
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, *args, "hydra.run.dir=first")
    assert code == 0, err
    (json_file,) = cache.glob("*.json")
    (pt_file,) = cache.glob("*.pt")
    pt_file.unlink()
    json_file.unlink()
    json_file.symlink_to(victim)  # the name is predictable from the files: planted before the next run
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, *args, "hydra.run.dir=second")
    refused(code, err, str(json_file), "symbolic link")
    assert victim.read_text() == "mine, unchanged"


@pytest.mark.parametrize("verb,folder", [("report", "report"), ("sample", "generated")])
def test_an_output_folder_that_is_a_link_is_refused(tmp_path, finished_run, verb, folder):
    run_dir = copy_run(finished_run, tmp_path)
    victims = tmp_path / "victims"
    victims.mkdir()
    (victims / "runs.md").write_text("mine")
    (victims / "last_grid_64.png").write_text("mine")
    (run_dir / folder).symlink_to(victims)
    args = [str(run_dir)] if verb == "report" else [f"run={run_dir}", "device=cpu"]
    result = run_cli(verb, *args, cwd=tmp_path)
    refused(result.returncode, result.stderr, "symbolic link")
    assert sorted(p.name for p in victims.iterdir()) == ["last_grid_64.png", "runs.md"]
    assert all(p.read_text() == "mine" for p in victims.iterdir())


def test_a_run_folder_that_is_a_link_is_refused(tmp_path, monkeypatch, capsys, finished_run):
    target = copy_run(finished_run, tmp_path)
    before = snapshot(target)
    (tmp_path / "link").symlink_to(target)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={tmp_path / 'link'}",
                             "schedule.steps=6")
    refused(code, err, "symbolic link")
    assert snapshot(target) == before


@pytest.mark.parametrize("name", ["metrics.jsonl", "train.log", "samples/step_000002.png", "model_summary.txt"])
def test_a_hard_link_planted_in_a_run_folder_is_refused(tmp_path, monkeypatch, capsys, finished_run, name):
    run_dir = copy_run(finished_run, tmp_path)
    victim = victim_file(tmp_path)
    (run_dir / name).unlink()
    os.link(victim, run_dir / name)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}",
                             "schedule.steps=6")
    refused(code, err, name.split("/")[-1], "hard links")
    assert victim.read_text() == "mine, unchanged"


def test_metrics_swapped_for_a_link_after_start_up_never_reach_the_victim(tmp_path):
    from ganlab.records.logging import RunLogger

    victim = victim_file(tmp_path)
    logger = RunLogger(tmp_path / "run", total_steps=4, progress=False)
    logger.scalars(1, {"loss/D": 1.0})
    (tmp_path / "run" / "metrics.jsonl").rename(tmp_path / "kept.jsonl")
    (tmp_path / "run" / "metrics.jsonl").symlink_to(victim)
    logger.scalars(2, {"loss/D": 0.5})
    logger.close()
    assert victim.read_text() == "mine, unchanged"
    assert [json.loads(line)["step"] for line in (tmp_path / "kept.jsonl").read_text().splitlines()] == [1, 2]


def test_the_guarded_writer_refuses_links_fifos_and_hard_links_by_name(tmp_path):
    from ganlab.records.safe_files import atomic_output, open_append, write_text_atomic

    victim = victim_file(tmp_path)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "link").symlink_to(victim)
    os.mkfifo(folder / "fifo")
    os.link(victim, folder / "hard")
    for name in ("link", "fifo", "hard"):
        with within(5):
            for write in (lambda p: write_text_atomic(p, "x"), open_append, lambda p: atomic_output(p).__enter__()):
                with pytest.raises(ConfigError, match=name):
                    write(folder / name)
    (tmp_path / "linked_folder").symlink_to(folder)
    with pytest.raises(ConfigError, match="linked_folder"):
        write_text_atomic(tmp_path / "linked_folder" / "new.txt", "x")
    assert victim.read_text() == "mine, unchanged" and not (folder / "new.txt").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["fifo", "hard", "link"]  # no temporaries left


# --- 8: FIFOs never hang -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["train.log", "metrics.jsonl", "samples/step_000002.png"])
@pytest.mark.parametrize("verb", ["resume", "report"])
def test_a_fifo_in_a_run_folder_is_refused_within_seconds(tmp_path, monkeypatch, capsys, finished_run, name, verb):
    run_dir = copy_run(finished_run, tmp_path)
    (run_dir / name).unlink()
    os.mkfifo(run_dir / name)
    started = time.monotonic()
    with within(60):
        if verb == "resume":
            code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}",
                                     "schedule.steps=6")
        else:
            result = run_cli("report", str(run_dir), cwd=tmp_path)
            code, err = result.returncode, result.stderr
    assert time.monotonic() - started < 60
    if verb == "report" and name != "metrics.jsonl":  # report reads neither the log nor that grid: nothing hangs
        assert code == 0, err
    else:
        refused(code, err, name.split("/")[-1], "FIFO")


# --- 9-11: bounded input -----------------------------------------------------------------------------
ALIAS_BOMB = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]",  # 10^9 values once the aliases are followed
              *(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9))]
INTERPOLATION_BOMB = ["b0: x", *(f"b{i}: '{''.join([f'${{b{i - 1}}}'] * 10)}'" for i in range(1, 9))]  # 10^8 steps


@pytest.mark.parametrize("lines,words", [(ALIAS_BOMB, ("bomb.yaml", "aliases")),
                                         (INTERPOLATION_BOMB, ("interpolations", "1,000,000 steps"))])
def test_a_yaml_or_interpolation_bomb_in_a_preset_is_refused_within_seconds(tmp_path, monkeypatch, capsys, lines,
                                                                            words):
    preset(tmp_path / "shared", "bomb", "\n".join(["# @package _global_", *lines]) + "\n")
    with within(20):
        code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}",
                                 "experiment=bomb", *TINY_RUN, "hydra.run.dir=run")
    refused(code, err, *words)


def test_a_defaults_entry_may_not_leave_the_search_path(tmp_path, monkeypatch, capsys):
    secret = tmp_path / "elsewhere" / "secretdir"
    secret.mkdir(parents=True)
    (secret / "creds.yaml").write_text("token: s3cret\n")
    up = "/".join([".."] * 12)
    preset(tmp_path / "shared", "leak", f"# @package _global_\ndefaults:\n  - /{up}{secret}@paths.leak: creds\n")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}", "experiment=leak",
                             *TINY_RUN, "hydra.run.dir=run")
    refused(code, err, "may not leave the config search path")
    assert not (tmp_path / "run").exists()


def test_a_cifar_batch_of_shared_references_is_refused(tmp_path):
    import pickle

    from ganlab.data.cifar import load_cifar10

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    row = [0] * 3072
    with open(folder / "test_batch", "wb") as handle:  # a few KB standing for 10^9 values
        pickle.dump({"data": [row] * 300_000, "labels": [0] * 300_000}, handle)
    assert (folder / "test_batch").stat().st_size < 2_000_000
    with within(20), pytest.raises(ConfigError, match="not a CIFAR-10 batch.*array of 32x32"):
        load_cifar10(str(tmp_path), split="test")


def test_a_gzip_that_inflates_past_its_idx_header_is_refused(tmp_path):
    from ganlab.data.mnist import load_mnist

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    header = b"\0\0\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(header)
        for _ in range(200):  # 200 MB of zeros: far more than the 7,840 bytes declared
            handle.write(bytes(1 << 20))
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(b"\0\0\x08\x01" + (10).to_bytes(4, "big") + bytes(10))
    with within(20), pytest.raises(ConfigError, match="more than the 7,840 bytes its header declares"):
        load_mnist(str(tmp_path), split="test")


def test_metrics_rows_that_are_too_large_or_not_rows_are_named_and_skipped(tmp_path, finished_run, caplog):
    run_dir = copy_run(finished_run, tmp_path)
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    wide = json.dumps({"step": 3, **{f"k{i}": 1.0 for i in range(3000)}})
    long, deep = "[" * 100_000 + "]" * 100_000, "[" * 30_000 + "]" * 30_000
    (run_dir / "metrics.jsonl").write_text("\n".join([rows[0], wide, "[1, 2]", long, deep, *rows[1:]]) + "\n")
    with within(30):
        result = run_cli("report", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    for line, words in [(2, "3,001 values"), (3, "JSON list"), (4, "characters"), (5, "not a JSON row")]:
        assert f"line {line} " in caplog.text and words in caplog.text, caplog.text


def test_a_checkpoint_tensor_with_zero_strides_is_refused_before_the_checksum(tmp_path, finished_run):
    run_dir = copy_run(finished_run, tmp_path)
    path = run_dir / "checkpoints" / "last.pt"
    _resign(path, lambda state: state.update(fixed={**state["fixed"], "bomb": torch.zeros(1).expand(10_000, 3_000)}))
    with within(20), pytest.raises(ConfigError, match="zero or overlapping strides"):
        checkpoint.load(path)


@pytest.mark.parametrize("side", [13_000, 20_000])  # 169 MP (Pillow warns), 400 MP (Pillow raises, in a worker)
def test_an_image_of_too_many_pixels_is_refused_in_one_paragraph(tmp_path, monkeypatch, capsys, side):
    from PIL import Image

    from fake_data import make_images

    make_images(tmp_path / "images", 3)
    Image.new("1", (side, side)).save(tmp_path / "images" / "huge.png")  # a small file declaring many pixels
    with within(60):
        code, _, err = train_cli(tmp_path, monkeypatch, capsys, "dataset=folder", f"dataset.root={tmp_path / 'images'}",
                                 *TINY_RUN, "hydra.run.dir=run")
    refused(code, err, "huge.png", "megapixels")


# --- the property: only registered names or the user's typed modules build ---------------------------
CANDIDATES = [
    # ganlab's own helpers, loaders of the wrong kind, torch and the standard library
    "ganlab.metrics.stats.cached", "ganlab.records.cache.save_verified", "ganlab.records.checkpoint.save_atomic",
    "ganlab.records.safe_files.write_text_atomic", "ganlab.data.folder.ImageFiles", "ganlab.data.memory.InMemoryImages",
    "ganlab.models.blocks.count_parameters", "ganlab.training.run.open", "ganlab.training.train.train", "torch.load", "torch.save",
    "torch.hub.load", "torch.nn.modules.module.os.system", "torch.nn.init.torch.save", "torch.optim.Optimizer",
    "torchvision.models.resnet18", "torchvision.datasets.MNIST", "torchvision.io.write_png", "os.system",
    "subprocess.run", "builtins.eval", "io.open", "shutil.rmtree", "pathlib.Path.write_text", "collections.OrderedDict",
]
ALLOWED = ["torch.nn.Linear", "torch.nn.ReLU", "torch.optim.Adam", "torch.optim.lr_scheduler.StepLR",
           "torchvision.transforms.Resize", "ganlab.losses.HingeLoss", "ganlab.penalties.R1Penalty",
           "ganlab.models.mlp.MLPGenerator", "ganlab.augment.DiffAugment"]


def test_only_registered_names_or_typed_modules_build_at_any_depth_and_key():
    import random

    from ganlab.trust import registry

    rng = random.Random(0)
    for trial in range(400):
        target = rng.choice(CANDIDATES + ALLOWED)
        depth = rng.randint(0, 4)
        keys = [rng.choice(["generator", "_extra", "hidden", "objective", "x", "layers", "_private"]) for _ in range(depth)]
        as_list = rng.random() < 0.3
        node: object = {"_target_": target}
        if as_list:
            node = [node]
        for key in reversed(keys):
            node = {key: node}
        root = rng.choice(["model", "loss", "optimizer", "augment", "metrics"])
        cfg = OmegaConf.create({root: node})
        typed = rng.choice([[], ["collections"]])
        buildable = registry.lookup(target) is not None or (typed and target.startswith("collections."))
        underscore = any(k.startswith("_") for k in keys)
        try:
            check_targets(cfg, allowed_prefixes(typed))
        except ConfigError as exc:
            assert not buildable or underscore or "is not a setting" in str(exc), (trial, target, keys, exc)
            continue
        assert buildable and not underscore, (trial, target, keys, typed)


def test_ganlab_buildable_lists_the_set(tmp_path):
    result = run_cli("buildable", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  ganlab.models.dcgan.DCGANGenerator" in lines and "  torch.optim.Adam" in lines
    assert not any("cached" in line or "resnet18" in line for line in lines)
    assert any(line.startswith("dataset (only as the `dataset` node)") for line in lines)


# --- what was refused with a traceback: one paragraph now --------------------------------------------
@pytest.mark.parametrize("change,words", [
    (lambda s: s["facts"].update(extra=1), "data facts ganlab does not know (extra)"),
    (lambda s: s.pop("networks"), "it has no `networks`"),
    (lambda s: s.update(config="a string"), "its `config` is a str"),
    (lambda s: s.update(step="abc"), "its `step` is a str"),
])
def test_a_resigned_checkpoint_of_another_layout_is_one_paragraph(tmp_path, finished_run, change, words):
    run_dir = copy_run(finished_run, tmp_path)
    for path in (run_dir / "checkpoints").glob("*.pt"):
        _resign(path, change)
    result = run_cli("sample", f"run={run_dir}", "device=cpu", cwd=tmp_path)
    refused(result.returncode, result.stderr, words)


def test_an_encoder_init_checkpoint_without_networks_is_one_paragraph_and_leaves_no_folder(tmp_path, monkeypatch,
                                                                                          capsys, finished_run):
    run_dir = copy_run(finished_run, tmp_path)
    _resign(run_dir / "checkpoints" / "last.pt", lambda s: s.update(networks={}, ema={}))
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "model=vae_mlp", "debug=tiny", "device=cpu",
                             f"model.encoder_init={run_dir / 'checkpoints' / 'last.pt'}", "hydra.run.dir=vae")
    refused(code, err, "model.encoder_init", "holds []")
    assert not (tmp_path / "vae").exists()


def test_a_sample_file_with_a_name_that_is_not_a_step_is_ignored_by_report(tmp_path, finished_run):
    run_dir = copy_run(finished_run, tmp_path)
    shutil.copy(next((run_dir / "samples").glob("step_*.png")), run_dir / "samples" / "step_abc.png")
    result = run_cli("report", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr


def test_invalid_utf8_in_metrics_on_resume_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys,
                                                                                 finished_run):
    run_dir = copy_run(finished_run, tmp_path)
    with open(run_dir / "metrics.jsonl", "ab") as handle:
        handle.write(b"\xff\xfe not text\n")
    before = snapshot(run_dir)
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}",
                             "schedule.steps=6")
    refused(code, err, "metrics.jsonl", "not UTF-8")
    assert snapshot(run_dir) == before


def test_a_yaml_syntax_error_is_named_as_one_not_as_a_tag(tmp_path, monkeypatch, capsys):
    preset(tmp_path / "shared", "broken", "# @package _global_\nmodel: [\n")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}", "experiment=broken",
                             *TINY_RUN, "hydra.run.dir=run")
    refused(code, err, "not valid YAML", "broken.yaml", "line")
    assert "tag" not in err


def test_set_by_names_the_shared_preset_not_the_users_own_ganlab_options(tmp_path, monkeypatch, capsys):
    preset(tmp_path / "shared", "evil", "# @package _global_\nhydra:\n  job:\n    name: evil\n")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, f"--config-dir={tmp_path / 'shared'}", "experiment=evil",
                             "debug=tiny", "device=cpu", "hydra.run.dir=run")
    refused(code, err, "hydra.job.name", "experiment=evil")
    assert "debug=tiny" not in err


def test_optuna_with_a_shared_preset_and_no_typed_direction_is_one_paragraph(tmp_path, monkeypatch, capsys):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    preset(tmp_path / "shared", "opt", "# @package _global_\nmetrics:\n  best: classifier_fd\n")
    code, _, err = train_cli(tmp_path, monkeypatch, capsys, "-m", f"--config-dir={tmp_path / 'shared'}",
                             "experiment=opt", "debug=tiny", "hydra/sweeper=optuna", "optimizer.lr=interval(1e-4,1e-3)",
                             "hydra.sweeper.n_trials=1", "hydra.sweep.dir=sweep")
    refused(code, err, "hydra.sweeper.direction=minimize")


@pytest.mark.parametrize("verb", ["resume", "sample"])
def test_a_stored_interpolation_is_refused_never_resolved(tmp_path, monkeypatch, capsys, finished_run, verb):
    run_dir = copy_run(finished_run, tmp_path)
    monkeypatch.setenv("GANLAB_TEST_SECRET", "s3cret")
    for path in (run_dir / "checkpoints").glob("*.pt"):
        _resign(path, lambda s: s["config"]["model"]["generator"].update(init="${oc.env:GANLAB_TEST_SECRET}"))
    before = snapshot(run_dir)
    if verb == "resume":
        code, _, err = train_cli(tmp_path, monkeypatch, capsys, "resume=true", f"hydra.run.dir={run_dir}",
                                 "schedule.steps=6")
    else:
        result = run_cli("sample", f"run={run_dir}", "device=cpu", cwd=tmp_path)
        code, err = result.returncode, result.stderr
    refused(code, err, "interpolation at config.model.generator.init")
    assert "s3cret" not in err and snapshot(run_dir) == before


def test_the_events_file_name_cannot_be_predicted(tmp_path):
    from ganlab.records.logging import RunLogger

    names = set()
    for attempt in range(2):
        logger = RunLogger(tmp_path / f"run{attempt}", total_steps=1, progress=False)
        logger.close()
        (events,) = (tmp_path / f"run{attempt}").glob("events.out.tfevents.*")
        names.add(events.name.rsplit(".", 1)[-1])
    assert len(names) == 2 and all(len(n) == 16 for n in names)  # a random 64-bit suffix each time


def test_eval_never_downloads_nor_caches_where_a_stored_config_says(tmp_path, finished_run):
    """A checkpoint's stored data set is built by `ganlab eval` (its real side): the keys that reach
    outside the run take ganlab's values, as on resume, whatever the file says."""
    run_dir = copy_run(finished_run, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    for path in (run_dir / "checkpoints").glob("*.pt"):
        _resign(path, lambda s: s["config"].update(dataset={
            "_target_": "ganlab.data.mnist.load_mnist", "root": str(elsewhere / "mnist"), "download": True,
            "resolution": 16, "batch_size": 16, "split": "test", "value_range": "tanh"}))
    result = run_cli("eval", f"run={run_dir}", "device=cpu", "n=20", "real_n=20", cwd=tmp_path)
    refused(result.returncode, result.stderr, "mnist (test split) was not found")  # looked, never fetched
    assert "download" not in result.stderr.split("was not found")[0] and not (elsewhere / "mnist" / "MNIST").exists()
