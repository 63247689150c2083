"""Sweeps that search: Optuna's sweeper optimises what `ganlab train` returns, for real."""

from __future__ import annotations

import csv
import math
import re

import pytest
import yaml

from conftest import cli_in_process
from ganlab.records.checkpoint import Saved, load
from ganlab.errors import ConfigError
from ganlab.commands.search import metric_direction, objective_value

optuna = pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")


def test_the_direction_and_value_come_from_the_metric():
    assert metric_direction({"names": ["toy"], "best": None}) == ("modes_covered", True)
    assert metric_direction({"names": ["toy"], "best": "reverse_kl"}) == ("reverse_kl", False)
    with pytest.raises(ConfigError, match="an Optuna sweep optimises a metric"):
        metric_direction({"names": [], "best": None})
    assert objective_value({"metric": "fid", "value": 12.5}, False) == 12.5
    assert objective_value({"metric": "fid", "value": math.nan}, False) == math.inf  # never NaN
    assert objective_value(None, False) is None


@pytest.mark.slow
def test_an_optuna_sweep_optimises_the_runs_metric_and_a_diverged_trial_is_inf(tmp_path):
    code, out, err = cli_in_process(
        "train", "-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=4",
        "debug=tiny", "model=mlp", "dataset=ring", "optimizer.lr=choice(0.001,0.002)",
        "schedule.divergence_limit=choice(1000000.0,0.001)",  # the 0.001 trials diverge at their first log
        "metrics.names=[toy]", "metrics.best=reverse_kl", "metrics.n=200", "schedule.eval_every=2",
        "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert code == 0, err
    sweep = tmp_path / "sweep"
    returned = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()):
        log = (job / "train.log").read_text()
        if "divergence_limit=0.001" in job.name:
            assert "the sweeper is told inf" in log
            returned[job.name] = math.inf
        else:
            value = float(re.search(r"objective value for the sweeper: reverse_kl = (\S+)", log).group(1))
            assert value == pytest.approx(Saved(load(job / "checkpoints" / "best.pt")).best["value"], rel=1e-5)
            returned[job.name] = value
    assert len(returned) == 4 and sum(v == math.inf for v in returned.values()) == 2
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(min(returned.values()), rel=1e-5)  # reverse_kl: minimised
    from ganlab.commands.report import report

    report([str(sweep)])
    rows = list(csv.DictReader(open(sweep / "report" / "runs.csv")))
    ranks = {r["run"]: r["rank"] for r in rows}
    assert sorted(v for v in ranks.values() if v) == ["1", "2"]  # the two trials that did not diverge


@pytest.mark.slow
def test_an_optuna_search_continues_its_study_without_rerunning_finished_trials(tmp_path):
    search = ["train", "-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=grid", "debug=tiny", "model=mlp",
              "dataset=ring", "optimizer.lr=choice(0.001,0.002,0.003,0.004)", "metrics.names=[toy]",
              "metrics.best=reverse_kl", "metrics.n=200", "schedule.eval_every=2", "hydra.sweep.dir=sweep"]
    code, _, err = cli_in_process(*search, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    assert code == 0, err
    sweep = tmp_path / "sweep"
    first = {p.name: (p / "metrics.jsonl").read_bytes() for p in sweep.iterdir() if p.name[0].isdigit()}
    assert len(first) == 2 and (sweep / "optuna.db").is_file()
    code, _, err = cli_in_process(*search, "hydra.sweeper.n_trials=4", "resume=true", cwd=tmp_path)
    assert code == 0, err
    jobs = sorted(p.name for p in sweep.iterdir() if p.name[0].isdigit())
    assert [name.split("_")[0] for name in jobs] == ["0", "1", "2", "3"]  # numbered after the earlier trials
    assert {name: (sweep / name / "metrics.jsonl").read_bytes() for name in first} == first  # not run again
    import optuna

    trials = optuna.load_study(study_name="ganlab", storage=f"sqlite:///{sweep / 'optuna.db'}").trials
    assert len(trials) == 4 and len({t.params["optimizer.lr"] for t in trials}) == 4  # the grid, each point once
    code, out, err = cli_in_process(*search, "hydra.sweeper.n_trials=4", "resume=true", cwd=tmp_path)
    assert code == 0 and "has finished 4 of hydra.sweeper.n_trials=4 trials" in out, err
