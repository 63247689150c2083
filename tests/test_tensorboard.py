"""TensorBoard as a user opens it: a real server on localhost, asked through its HTTP API, over a
folder mixing a sweep, a VAE and a conditional GAN (what a real `outputs/` holds)."""

import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import CLI_TINY, cli_in_process
from ganlab.records.logging import TENSORBOARD_SAMPLES

pytestmark = pytest.mark.slow
GRIDS = 12  # more than TensorBoard's default of 10 sampled images


class Quiet:  # cli_in_process reads captured output; a module fixture has no capsys
    @staticmethod
    def readouterr():
        return "", ""


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    monkeypatch = pytest.MonkeyPatch()
    common = ["device=cpu", "progress=false", "dataset.resolution=16", "dataset.batch_size=16",
              f"schedule.steps={GRIDS}", "schedule.log_every=2", "schedule.sample_every=1", "schedule.ckpt_every=100"]
    runs = [["-m", *CLI_TINY, *common[4:], "loss=bce,hinge", "hydra.sweep.dir=sweep"],
            [*common, "model=vae_mlp", "model.vae.hidden=[16]", "hydra.run.dir=vae"],
            [*common, "model=cgan", "model.generator.backbone.width=8", "model.discriminator.backbone.width=8",
             "hydra.run.dir=cgan"]]
    try:
        for args in runs:
            code, _, _ = cli_in_process("train", *args, cwd=root, monkeypatch=monkeypatch, capsys=Quiet)
            assert code == 0, args
    finally:
        monkeypatch.undo()
    return root


@pytest.fixture(scope="module")
def server(outputs):
    """`make tensorboard`'s command line, on the test folder and a free port."""
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    flags = re.search(r"tensorboard --logdir outputs (--samples_per_plugin \S+)", makefile).group(1).split()
    assert flags == ["--samples_per_plugin", TENSORBOARD_SAMPLES]
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(outputs), "--host", "127.0.0.1",
                             "--port", "0", *flags], stderr=subprocess.PIPE, text=True)
    url = None
    deadline = time.time() + 90
    while url is None and time.time() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        url = found.group(1) if found else None
    assert url, "TensorBoard did not start"
    for _ in range(120):  # until it has read every run
        if len(_get(url, "data/plugin/images/tags")) >= 4:
            break
        time.sleep(0.5)
    yield url
    proc.kill()
    proc.wait()


def _get(url: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_every_sample_grid_of_a_run_is_served(server, outputs):
    tags = _get(server, "data/plugin/images/tags")
    run = next(r for r in tags if r.endswith("loss=hinge"))
    query = urllib.parse.urlencode({"run": run, "tag": "samples"})
    images = _get(server, f"data/plugin/images/images?{query}")
    assert [image["step"] for image in images] == list(range(1, GRIDS + 1))  # every grid, not a sample of 10
    assert len(list((outputs / "sweep").glob("1_*/samples/step_*.png"))) == GRIDS


def test_hparams_of_a_mixed_folder_list_each_runs_varied_keys(server):
    experiment = _get(server, "data/plugin/hparams/experiment", {"experimentName": ""})
    columns = {info["name"] for info in experiment["hparamInfos"]}
    assert {"loss", "model", "dataset"} <= columns  # a sweep's loss beside the VAE's and the cGAN's model
    values = {info["name"]: info.get("domainDiscrete") for info in experiment["hparamInfos"]}
    assert {"bce", "hinge"} <= set(values["loss"]) and {"dcgan", "vae_mlp", "cgan"} <= set(values["model"])
    # the trial ID is the whole path (cut off in the table's first column); `run` is the folder's own name
    assert {"0_loss=bce", "1_loss=hinge", "vae", "cgan"} == set(values["run"])
    from ganlab.training.train import run_label
    assert run_label(Path("outputs/2026-12-05/14-35-45_dcgan_digits")) == "dcgan_digits 14-35-45"
    assert run_label(Path("multirun/2026-12-05/14-37-30/0_loss=bce")) == "0_loss=bce"
    # a typed number is a number column (sorted, filtered by range), as the keys left at their defaults
    types = {info["name"]: info.get("type") for info in experiment["hparamInfos"]}
    assert types["schedule.steps"] == types["dataset.batch_size"] == "DATA_TYPE_FLOAT64", types
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"loss/D", "loss/G", "loss/VAE"} <= metrics


def test_custom_scalars_give_each_kind_of_run_its_own_charts(server):
    layout = _get(server, "data/plugin/custom_scalars/layout")
    charts = {category["title"]: [chart["title"] for chart in category["chart"]] for category in layout["category"]}
    assert set(charts) == {"ganlab GAN runs", "ganlab VAE runs"}
    gan_charts = next(c for c in layout["category"] if c["title"] == "ganlab GAN runs")["chart"]
    assert [c["multiline"]["tag"] for c in gan_charts[:2]] == [["^loss/D$"], ["^loss/G$"]]  # one quantity a chart,
    # never matching a VAE's loss/VAE
    assert any("reconstruction and KL" in title for title in charts["ganlab VAE runs"])
