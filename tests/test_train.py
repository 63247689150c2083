"""A short CPU run end to end: the run directory holds config, events, metrics, samples, checkpoints."""

import json

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import compose_config, run_cli
from ganlab.records.logging import read_metrics
from ganlab.training.train import train


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_config(["schedule.steps=8", "schedule.snapshot_every=4", "schedule.keep_last=1",
                          "schedule.ema_decay=0.9"])
    loop = train(cfg, run_dir)
    return run_dir, loop


def test_metrics_jsonl_has_one_row_per_log_step_with_the_scalars(finished_run):
    run_dir, _ = finished_run
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    for row in rows:
        for key in ("loss/D", "loss/G", "D/real_logit", "D/fake_logit", "lr/generator", "lr/discriminator",
                    "perf/images_per_s"):
            assert isinstance(row[key], float), key
        assert row["lr/generator"] == pytest.approx(2e-4)
        assert row["perf/images_per_s"] > 0


def test_tensorboard_events_hold_scalars_and_sample_images(finished_run):
    run_dir, _ = finished_run
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    for tag in ("loss/D", "loss/G", "D/real_logit", "D/fake_logit", "lr/generator", "perf/images_per_s"):
        assert tag in tags["scalars"], tag
    assert [e.step for e in events.Scalars("loss/D")] == [2, 4, 6, 8]
    assert "samples" in tags["images"]
    assert [e.step for e in events.Images("samples")] == [4, 8]


def test_sample_grids_are_pngs_of_the_fixed_batch(finished_run):
    run_dir, _ = finished_run
    pngs = sorted(p.name for p in (run_dir / "samples").glob("*.png"))
    # the EMA generator's grids, and the live one's beside them
    assert pngs == ["live_samples_step_000004.png", "live_samples_step_000008.png", "step_000004.png",
                    "step_000008.png"]
    grid = Image.open(run_dir / "samples" / "step_000008.png")
    # 16 samples of 16 px in rows of 8 with 2 px padding: 2 rows x 8 columns, under a title line
    assert grid.size == (8 * 18 + 2, 2 * 18 + 2 + 11 + 6)  # a title line (11-point text) above the grid


def test_a_conditional_runs_grids_have_one_labelled_row_per_class(tmp_path):
    import numpy as np

    train(compose_config(["model=cgan", "schedule.steps=2", "schedule.sample_every=2", "schedule.sample_count=20",
                          "schedule.ema_decay=0"]), tmp_path)
    grid = np.asarray(Image.open(tmp_path / "samples" / "step_000002.png").convert("L"))
    from PIL import ImageDraw

    from ganlab.records.plots import _font

    font = _font(11)  # cells of 16 px: the smallest text size
    label_margin = 8 + int(max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(str(c), font=font) for c in range(10)))
    title = int(font.size) + 6  # the step on top, labels "0" .. "9" on the left
    assert grid.shape[0] == title + 10 * 18 + 2 and grid.shape[1] >= label_margin + 2 * 18 + 2  # 10 rows of 2
    assert (grid[:title, :60] < 128).any() and (grid[title:, :label_margin] < 128).any()  # text is drawn


def test_checkpoints_and_summary_are_written(finished_run):
    run_dir, loop = finished_run
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert [p.name for p in (run_dir / "checkpoints").glob("step_*.pt")] == ["step_000008.pt"]  # keep_last=1
    summary = (run_dir / "model_summary.txt").read_text()
    for name, net in loop.networks.items():
        assert f"{sum(p.numel() for p in net.parameters()):,} params" in summary
        assert name in summary
    assert not list(run_dir.rglob("*.tmp"))


def test_training_moves_the_networks_and_ema_lags_behind(tmp_path):
    train(compose_config(["schedule.steps=4", "schedule.snapshot_every=2", "schedule.keep_last=5",
                          "schedule.ema_decay=0.9"]), tmp_path)
    before, after = (torch.load(tmp_path / "checkpoints" / f"step_00000{s}.pt", weights_only=True) for s in (2, 4))

    def moved(part, net):
        return sum(float((after[part][net][k].float() - before[part][net][k].float()).norm())
                   for k in after[part][net] if after[part][net][k].is_floating_point() and "running" not in k)

    assert moved("networks", "generator") > 0 and moved("networks", "discriminator") > 0  # both networks train
    assert 0 < moved("ema", "generator") < moved("networks", "generator")  # the average follows, more slowly


def test_discriminator_learns_to_separate_real_from_fake(tmp_path):
    cfg = compose_config(["schedule.steps=30", "schedule.log_every=5", "optimizer.lr=1e-3"])
    train(cfg, tmp_path)
    rows = [row for row in read_metrics(tmp_path) if "loss/D" in row]
    first, last = rows[0], rows[-1]
    assert last["loss/D"] < first["loss/D"]
    assert last["D/real_logit"] > last["D/fake_logit"]


def test_epochs_are_converted_to_steps(tmp_path):
    # 1797 digits / batch 16 = 112 batches per epoch; n_critic=2 draws 2 batches per step -> 56 steps
    cfg = compose_config(["schedule.epochs=1", "schedule.n_critic=2", "schedule.log_every=1000"])
    loop = train(cfg, tmp_path)
    assert loop.step == 56
    assert read_metrics(tmp_path)[-1]["step"] == 56


@pytest.mark.slow
def test_cli_run_writes_the_hydra_config_and_the_run(tmp_path):
    run_dir = tmp_path / "cli-run"
    result = run_cli("train", "device=cpu", "progress=false", "dataset.resolution=16", "dataset.batch_size=16",
                     "model.generator.width=8", "model.discriminator.width=8", "schedule.steps=4",
                     "schedule.log_every=2", "schedule.sample_every=4", "schedule.ckpt_every=4",
                     f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert "schedule.steps=4" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert (run_dir / "samples" / "step_000004.png").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))
    # one line per network with its parameter count, in the output and in model_summary.txt
    assert "generator" in result.stdout + result.stderr and "params" in result.stdout + result.stderr
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
