"""A user's day (issue 36): mistakes that used to train anyway, or answer twice, are one paragraph
and exit 2 (or a warning that names the key) the first time."""

from __future__ import annotations

import pytest

from conftest import CLI_TINY, cli_in_process, run_cli, sweep_table
from test_shared_input import TINY_RUN, finished_run, refused  # noqa: F401
from ganlab.records.logging import read_metrics


def train(tmp_path, *args):
    return cli_in_process("train", *args, cwd=tmp_path)


@pytest.fixture
def images(tmp_path):
    from fake_data import make_images

    make_images(tmp_path / "images", 20)
    return ["dataset=folder", f"dataset.root={tmp_path / 'images'}"]


@pytest.mark.parametrize("args,words", [
    (["resume=true"], "resume=true continues a run: name its folder"),
    (["+optimizer.per_network.discrimnator.lr=4e-4"], "Did you mean optimizer.per_network.discriminator?"),
    (["model=vae_mlp", "+optimizer.per_network.discriminator.lr=4e-4"], "Its networks are: vae"),
    (["modle=sngan"], "modle is not a config group or key. Did you mean model="),
    (["schedule.step=100"], "schedule.step is not a ganlab setting. Did you mean schedule.steps?"),
    (["loss=hingee"], "loss=hingee is not an option of loss. Did you mean loss=hinge?"),
    (["dataset.resolution=16384"], "dataset.resolution=16384: 1,797 digits images of 1x16384x16384 need"),
    (["schedule.adaptive=true"], "schedule.adaptive=True is a group of settings, not a switch"),
])
def test_a_mistake_is_refused_the_first_time(tmp_path, args, words):
    sizes = [] if "model=vae_mlp" in args else CLI_TINY  # the VAE has no generator to shrink
    folder = [] if args == ["resume=true"] else ["hydra.run.dir=run"]
    code, _, err = train(tmp_path, *sizes, "device=cpu", "debug=tiny", *args, *folder)
    refused(code, err, words)
    assert "To append to your config use" not in err  # Hydra's +key advice would only be refused next
    assert not (tmp_path / "run").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("setting,words", [("dataset.crop=-5", "dataset.crop=-5 must be positive"),
                                           ("dataset.memory_limit_gb=-1", "must be zero or more"),
                                           ("dataset.workers=-1", "dataset.workers=-1 must be zero or more")])
def test_bad_data_settings_are_named_not_a_worker_traceback(tmp_path, images, setting, words):
    code, _, err = train(tmp_path, *TINY_RUN, *images, setting, "hydra.run.dir=run")
    refused(code, err, words)


def test_metrics_best_with_nothing_measured_warns_that_no_best_pt_is_kept(tmp_path):
    code, _, err = train(tmp_path, *TINY_RUN, "metrics.best=fid", "hydra.run.dir=run")
    assert code == 0, err
    log = (tmp_path / "run" / "train.log").read_text()
    assert "metrics.best=fid keeps best.pt by a metric measured during training, but none is measured" in log
    assert "so no best.pt is kept" in log and not (tmp_path / "run" / "checkpoints" / "best.pt").exists()


def test_epochs_and_steps_together_say_which_wins(tmp_path):
    code, _, err = train(tmp_path, *TINY_RUN, "schedule.epochs=1", "schedule.steps=5", "hydra.run.dir=run")
    assert code == 0, err
    log = (tmp_path / "run" / "train.log").read_text()
    assert "schedule.epochs=1 sets the run's length" in log and "(schedule.steps=5 is not used)" in log


def test_zero_intervals_mean_at_the_end_only_for_grids_and_evaluation_alike(tmp_path):
    """sample_every=0 was refused while eval_every=0 (at the end only) was accepted: both mean the same now."""
    from ganlab.training.train import train as train_config
    from conftest import compose_config

    vae = ["model=vae_mlp", "dataset.resolution=8", "model.vae.hidden=[16]", "dataset.split=train",
           "schedule.steps=6", "schedule.log_every=2", "schedule.sample_every=0", "schedule.eval_every=0"]
    train_config(compose_config(vae), tmp_path)
    assert sorted(p.name for p in (tmp_path / "samples").glob("step_*.png")) == ["step_000006.png"]
    assert [r["step"] for r in read_metrics(tmp_path) if "eval/mse" in r] == [6]


def test_interpolate_needs_whole_walks_and_report_says_when_a_step_is_past_the_run(tmp_path, finished_run, caplog):
    result = run_cli("sample", f"run={finished_run}", "device=cpu", "interpolate=8", "n=5", cwd=tmp_path)
    refused(result.returncode, result.stderr, "interpolate=8 draws walks of 8 images", "set n=8")
    result = run_cli("report", str(finished_run), "steps=[999999]", f"out={tmp_path / 'report'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "step 999999 is past the run's last grid (step 4); that grid is shown" in caplog.text


def test_ctrl_c_in_a_reader_verb_does_not_speak_of_training(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    code = ("import os, signal, ganlab.commands.cli as cli; cli._stop_cleanly_on_signals('report'); "
            "os.kill(os.getpid(), signal.SIGINT); import time; time.sleep(5)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGINT
    assert "ganlab report left no partial output" in done.stderr and "trained" not in done.stderr
    assert done.stderr.count("ganlab:") == 1
    del os


# --- results that say where they are ------------------------------------------------------------------
def test_runs_are_named_and_say_where_they_are_when_they_start(tmp_path):
    code, out, err = train(tmp_path, *TINY_RUN, "name=my first/run")
    assert code == 0, err
    (folder,) = (tmp_path / "outputs").glob("*/*_my-first-run")
    assert out.startswith(f"ganlab: run folder {folder}\n") and f"tensorboard --logdir {folder}" in out
    assert f"ganlab report {folder}" in out
    code, out, err = train(tmp_path, "device=cpu", "progress=false", "debug=tiny", "schedule.steps=2", "model=vae_mlp")
    assert code == 0, err
    assert len(list((tmp_path / "outputs").glob("*/*_vae_mlp_digits"))) == 1  # named by its choices


def test_a_sweep_ends_with_a_table_of_its_jobs_and_the_report_command(tmp_path):
    code, out, err = train(tmp_path, "-m", *TINY_RUN, "loss=bce,hinge", "hydra.sweep.dir=S")
    assert code == 0, err
    table = out[out.index(f"ganlab: sweep {tmp_path / 'S'}:"):]
    rows = sweep_table(table)
    assert [(r["job"], r["status"], r["step"]) for r in rows] == [("0_loss=bce", "finished", "4"),
                                                                   ("1_loss=hinge", "finished", "4")]
    finals = [{k: v for k, v in read_metrics(tmp_path / "S" / r["job"])[-1].items() if k.startswith("loss/")}
              for r in rows]
    assert [float(r["loss/D"]) for r in rows] == pytest.approx([f["loss/D"] for f in finals], rel=1e-3)
    assert f"compare: ganlab report {tmp_path / 'S'}" in table


def test_betas_a_run_folder_that_cannot_exist_and_a_failed_sweep_job_are_one_paragraph(tmp_path):
    code, _, err = train(tmp_path, *TINY_RUN, "optimizer.betas=0.5", "hydra.run.dir=run")
    refused(code, err, "optimizer.betas=0.5 must be two numbers", "optimizer.betas=[0.5,0.999]")
    code, _, err = train(tmp_path, *TINY_RUN, "hydra.run.dir=/proc/ganlab_test/run")
    refused(code, err, "hydra.run.dir=/proc/ganlab_test/run cannot be created: /proc does not take new files")
    code, out, err = train(tmp_path, "-m", *TINY_RUN, "dataset.batch_size=16,0", "hydra.sweep.dir=S")
    assert code == 2 and "HYDRA_FULL_ERROR" not in err and "Error executing job" not in err, err
    assert "1_dataset.batch_size=0: dataset.batch_size=0 must be positive" in err
    rows = sweep_table(out[out.index("ganlab: sweep "):])
    assert {r["job"]: r["status"] for r in rows} == {"0_dataset.batch_size=16": "finished",
                                                     "1_dataset.batch_size=0": "failed"}


def test_a_failed_download_is_one_paragraph_and_leaves_no_empty_folders(tmp_path, monkeypatch, capsys):
    from torchvision import datasets

    from ganlab.data.mnist import load_mnist
    from ganlab.errors import ConfigError

    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://mirror.invalid/mnist/"])  # offline, wherever it runs
    with pytest.raises(ConfigError, match=r"mnist could not be downloaded into .*this machine may be offline"):
        load_mnist(str(tmp_path / "data"), download=True)
    assert not (tmp_path / "data").exists()  # no empty MNIST/raw left behind
    assert "Downloading" not in capsys.readouterr().out  # torchvision's five URLs are not printed


def test_report_help_says_it_takes_run_folders(tmp_path):
    result = run_cli("report", "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: ganlab report RUNS... [key=value ...]")


def test_custom_scalars_draw_one_chart_per_quantity_with_the_runs_overlaid():
    from ganlab.records.logging import custom_layout

    charts = custom_layout(["D", "G"], {"metrics/classifier_fd": False})["ganlab GAN runs"]
    assert all(len(tags) == 1 for _, tags in charts.values())  # one quantity a chart: 8 runs give 8 curves, not 16
    assert {tags[0] for _, tags in charts.values()} >= {"^loss/D$", "^loss/G$", "^D/real_logit$", "^D/fake_logit$"}


def test_the_cpu_eval_protocol_is_1000_a_side_and_said_while_typed_sizes_win(caplog):
    import torch

    from ganlab.commands.evaluate import protocol_sizes

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    with caplog.at_level("INFO", logger="ganlab"):
        assert protocol_sizes(["fid", "kid"], cpu, None, None) == (1000, 1000)
    assert "default protocol is 1,000 generated and 1,000 real images" in caplog.text and "KID is unbiased" in caplog.text
    assert protocol_sizes(["fid", "kid"], cpu, 5000, None) == (5000, 1000)  # what is typed wins
    assert protocol_sizes(["fid"], cuda, None, None) == (10000, 10000)  # a GPU: the published protocol
    assert protocol_sizes(["classifier_fd"], cpu, None, None) == (10000, 10000)  # a classifier is cheap on a CPU


def test_a_collapsed_gan_warns_and_stops_with_exit_3_at_the_users_patience(tmp_path):
    collapse = [*TINY_RUN, "optimizer.lr=10", "schedule.steps=20", "schedule.log_every=1"]
    code, _, err = train(tmp_path, *collapse, "hydra.run.dir=warned")
    assert code == 0, err
    log = (tmp_path / "warned" / "train.log").read_text()
    assert log.count("D wins outright and G learns nothing (a collapsed GAN)") == 1  # once, not every log step
    code, _, err = train(tmp_path, *collapse, "schedule.collapse_patience=4", "hydra.run.dir=stopped")
    assert code == 3, err
    assert "training collapsed for 4 log steps in a row (schedule.collapse_patience=4)" in err
    assert "Traceback" not in err
