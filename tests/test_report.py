"""`ganlab report` on tiny real runs and a 2-job sweep; the TensorBoard layout, HParams and run names."""

from pathlib import Path
import csv

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import CLI_TINY, cli_in_process
from ganlab.records.logging import read_metrics
from ganlab.commands.report import higher_is_better, report


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two jobs that differ in their loss, run through the real CLI."""
    tmp = tmp_path_factory.mktemp("sweep")
    code, _, err = cli_in_process("train", "-m", *CLI_TINY, "loss=bce,hinge", "schedule.steps=8",
                                  "schedule.log_every=2", "schedule.sample_every=2", "hydra.sweep.dir=sweep", cwd=tmp)
    assert code == 0, err
    return tmp / "sweep"


def jobs(sweep):
    return sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit())


def test_a_differing_choice_explains_its_whole_group():
    """A GAN's `loss=bce` beside a diffusion run's `loss=none` (an empty `loss` node) is one `loss` column."""
    from ganlab.commands.report import differing_keys

    gan = {"config": {"loss": {"adversarial": {"_target_": "x.Bce"}}, "seed": 0, "lr": 1}, "choices": {"loss": "bce"}}
    diffusion = {"config": {"loss": {}, "seed": 0, "lr": 2}, "choices": {"loss": "none"}}
    assert differing_keys([gan, diffusion]) == ["lr"]


def test_a_sweep_report_has_a_table_of_the_differing_keys_and_real_values(sweep):
    written = report([str(sweep)])
    assert {p.name for p in written} == {"learning_curves.png", "runs.md", "runs.csv"}
    rows = list(csv.DictReader(open(sweep / "report" / "runs.csv")))
    assert [r["run"] for r in rows] == ["loss=bce", "loss=hinge"]
    assert [r["loss"] for r in rows] == ["bce", "hinge"]  # the user's choice, not a _target_ path
    for row, job in zip(rows, jobs(sweep)):
        metrics = read_metrics(job)
        assert float(row["loss/D final"]) == pytest.approx(metrics[-1]["loss/D"])
        assert "loss/D best" not in row  # the lowest D loss measures nothing for a GAN
    markdown = (sweep / "report" / "runs.md").read_text()
    assert markdown.startswith("| run | loss |") and "| loss=hinge |" in markdown
    assert "_target_" not in markdown  # the choice explains the classes it builds
    assert "schedule.steps" not in markdown  # the same in both jobs
    assert Image.open(sweep / "report" / "learning_curves.png").size[0] > 600


def test_best_values_follow_each_metric_direction():
    # metrics/* from the registry; eval/accuracy and diagnostics/diversity by name; the rest lower
    assert [higher_is_better(n) for n in ("metrics/high_quality", "metrics/reverse_kl", "metrics/classifier_fd",
                                          "metrics/classifier_recall", "metrics/fid", "metrics/inception_score",
                                          "eval/accuracy", "diagnostics/diversity", "eval/mse", "loss/G")] \
        == [True, False, False, True, False, True, True, True, False, False]


def test_a_run_report_shows_samples_at_the_chosen_steps(sweep, tmp_path):
    run = jobs(sweep)[0]
    written = report([str(run)], out=str(tmp_path), steps=[2, 5, 8])
    assert [p.name for p in written] == ["learning_curves.png", f"samples_{run.name}.png", "runs.md", "runs.csv"]
    assert Image.open(tmp_path / f"samples_{run.name}.png").size[0] > 3 * 200


def test_epochs_become_steps_through_the_checkpoint(sweep, tmp_path):
    # digits at batch 16: 112 batches per epoch, so every epoch asked for is past this 8-step run's grids
    [_, samples, _, _] = report([str(jobs(sweep)[0])], out=str(tmp_path), epochs=[1, 5])
    assert samples.is_file()
    from ganlab.commands.figures import chosen_grids
    from ganlab.commands.report import _info

    info = _info(jobs(sweep)[0])
    assert info["steps_per_epoch"] == 112  # 1,797 digits at batch 16, one batch a step
    assert [(title, grid.name) for title, grid in chosen_grids(info, None, [1, 5])] == [
        ("epoch 1 (grid of step 8)", "step_000008.png"), ("epoch 5 (grid of step 8)", "step_000008.png")]
    assert [title for title, _ in chosen_grids(info, [2, 5], None)] == ["step 2", "step 5 (grid of step 4)"]


def test_report_through_the_cli_and_its_errors(sweep, tmp_path, monkeypatch, capsys):
    code, out, err = cli_in_process("report", str(jobs(sweep)[1]), f"out={tmp_path / 'r'}", cwd=tmp_path,
                                    monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert (tmp_path / "r" / "runs.md").is_file()
    code, _, err = cli_in_process("report", str(tmp_path / "nothing"), cwd=tmp_path, monkeypatch=monkeypatch,
                                  capsys=capsys)
    assert code == 2 and "nothing does not exist" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli_in_process("report", str(tmp_path / "empty"), cwd=tmp_path, monkeypatch=monkeypatch,
                                  capsys=capsys)
    assert code == 2 and "is not a run (no metrics.jsonl)" in err


def test_tensorboard_has_the_custom_layout_and_an_hparams_entry(sweep):
    events = EventAccumulator(str(jobs(sweep)[1]), size_guidance={"tensors": 0}).Reload()
    plugins = events.PluginTagToContent
    assert list(plugins("custom_scalars")) == ["custom_scalars__config__"]  # this run's layout
    hparams = plugins("hparams")
    assert "_hparams_/session_start_info" in hparams
    start = hparams["_hparams_/session_start_info"]
    assert b"loss" in start and b"hinge" in start  # the override loss=hinge is the run's hyperparameter
    assert b"optimizer.lr" in start and b"schedule.steps" in start  # defaults too: no blank cell beside other runs


def test_each_sweep_job_times_its_own_start_up(sweep):
    import re
    from datetime import datetime

    found = [re.search(r"\[([\d-]+ [\d:,]+)\]\[ganlab\]\[INFO\] - first step done ([\d.]+) s",
                       (job / "train.log").read_text()) for job in jobs(sweep)]
    when = [datetime.strptime(f.group(1), "%Y-%m-%d %H:%M:%S,%f") for f in found]
    # job 2's clock starts with job 2: it is shorter than the time from job 1's first step to its own
    assert float(found[1].group(2)) < (when[1] - when[0]).total_seconds()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """Three runs that differ only in their seed, as `ganlab train -m seed=0,1,2` makes them."""
    tmp = tmp_path_factory.mktemp("seeds")
    code, _, err = cli_in_process("train", "-m", *CLI_TINY, "seed=0,1,2", "schedule.steps=4", "schedule.log_every=2",
                                  "schedule.sample_every=2", "hydra.sweep.dir=sweep", cwd=tmp)
    assert code == 0, err
    return tmp / "sweep"


@pytest.mark.slow
def test_a_seed_sweep_report_shows_mean_std_and_n_that_match_a_hand_computation(seeds):
    import statistics

    report([str(seeds)])
    rows = list(csv.DictReader(open(seeds / "report" / "runs.csv")))
    assert [r["run"] for r in rows[:3]] == ["seed=0", "seed=1", "seed=2"]
    mean_row, std_row = rows[3], rows[4]
    assert mean_row["run"] == "runs mean (n=3, seeds 0,1,2)" and std_row["run"].startswith("runs std (n=3")
    finals = [read_metrics(run)[-1]["loss/D"] for run in jobs(seeds)]
    assert float(mean_row["loss/D final"]) == pytest.approx(statistics.fmean(finals))
    assert float(std_row["loss/D final"]) == pytest.approx(statistics.stdev(finals))
    assert mean_row["seed"] == "0,1,2"
    assert "differ only in their seed" in (seeds / "report" / "runs.md").read_text()
    from ganlab.commands.report import _info, _seed_means, run_labels

    infos = [_info(run) for run in jobs(seeds)]
    [curve], [label] = _seed_means(infos, run_labels(infos), [[0, 1, 2]])
    assert label == "sweep (mean +- std, n=3)"
    at_2 = [next(r for r in read_metrics(run) if r["step"] == 2)["loss/G"] for run in jobs(seeds)]
    row = next(r for r in curve["rows"] if r["step"] == 2)
    assert row["loss/G"] == pytest.approx(statistics.fmean(at_2))
    assert curve["band"]["loss/G"][2] == pytest.approx(statistics.stdev(at_2))


def test_a_report_of_mixed_runs_labels_them_by_choices_and_keeps_columns_that_matter(tmp_path):
    for args in (["model=vae_mlp"], ["model=cgan"], ["model=classifier_mlp"]):
        code, _, err = cli_in_process("train", "device=cpu", "progress=false", "debug=tiny", "schedule.steps=2",
                                      *args, cwd=tmp_path)
        assert code == 0, err
    runs = sorted(str(p) for p in (tmp_path / "outputs").glob("*/*"))
    report(runs, out=str(tmp_path / "report"))
    rows = list(csv.DictReader(open(tmp_path / "report" / "runs.csv")))
    assert sorted(r["run"] for r in rows) == ["model=cgan", "model=classifier_mlp", "model=vae_mlp"]
    header = list(rows[0])
    assert not any("_target_" in h for h in header) and not any(h.startswith("model.") for h in header)
    assert len(header) < 30, header


def test_a_sweep_beside_a_default_run_is_labelled_by_each_differing_setting_once():
    """What a newcomer compares first: `ganlab train -m loss=bce,hinge model=sngan schedule.steps=300
    progress=false` beside the `make train` run (no overrides): each key once, its value taken from
    the choices or the config where it was not typed, and nothing that does not change the result."""
    from ganlab.commands.figures import fit
    from ganlab.commands.report import run_labels

    def info(name, overrides, model, loss, steps, progress):
        return {"dir": Path(name), "overrides": overrides, "choices": {"model": model, "loss": loss, "dataset": "digits"},
                "config": {"schedule": {"steps": steps}, "progress": progress, "seed": 0}}

    swept = ["model=sngan", "schedule.steps=300", "progress=False"]
    infos = [info("0_loss=bce", ["loss=bce", *swept], "sngan", "bce", 300, False),
             info("1_loss=hinge", ["loss=hinge", *swept], "sngan", "hinge", 300, False),
             info("14-22-28_dcgan_digits", [], "dcgan", "bce", 2000, True)]
    assert run_labels(infos) == ["loss=bce model=sngan schedule.steps=300", "loss=hinge model=sngan schedule.steps=300",
                                 "loss=bce model=dcgan schedule.steps=2000"]
    # a setting one run left unset (no experiment preset) is not written as `experiment=None`
    preset = info("gan", ["experiment=mnist_dcgan", "debug=tiny"], "dcgan", "bce", 8, False)
    preset["choices"].update(experiment="mnist_dcgan", debug="tiny")
    plain = info("classifier", ["model=classifier_mlp"], "classifier_mlp", None, 200, False)
    assert run_labels([plain, preset]) == ["model=classifier_mlp", "model=dcgan experiment=mnist_dcgan debug=tiny"]
    # a label too long for a legend is cut between settings, never inside a value
    assert fit("model=sngan loss=hinge schedule.steps=300", 40) == "model=sngan loss=hinge …"
    assert fit("model=sngan loss=hinge", 40) == "model=sngan loss=hinge"
