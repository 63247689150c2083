"""Metrics: values against hand-made cases, the registry, the cache, eval.json, best.pt, the EMA."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import compose_config
from ganlab.records.checkpoint import Saved, load
from ganlab.data.toys import load_grid
from ganlab.errors import ConfigError
from ganlab.commands.evaluate import evaluate
from ganlab.training.measuring import open_judge
from ganlab.records.logging import read_metrics
from ganlab.training.maintenance import Maintenance
from ganlab.metrics import Inputs, run_metrics
from ganlab.metrics.registry import METRICS
from ganlab.metrics.stats import frechet_distance, mean_and_covariance, precision_recall
from ganlab.trust.build import allowed_prefixes
from ganlab.training.schedule import Schedule
from ganlab.training.train import train

CLASSIFIER = ["model=classifier_mlp", "dataset.resolution=16", "model.classifier.hidden=[64]", "schedule.steps=150",
              "optimizer.lr=3e-3", "schedule.log_every=50", "schedule.eval_every=150"]


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    """A small MNIST-like judge: an MLP classifier trained on the digits' training split."""
    run_dir = tmp_path_factory.mktemp("judge")
    train(compose_config(CLASSIFIER), run_dir)
    assert read_metrics(run_dir)[-1]["eval/accuracy"] > 0.8
    path = run_dir / "checkpoints" / "last.pt"
    return path, open_judge(str(path), _digits_facts(), torch.device("cpu"), allowed_prefixes(), "classifier")


def _digits_facts():
    from ganlab.data.digits import load_digits

    return load_digits(resolution=16, batch_size=16, split="test").facts


@pytest.fixture(scope="module")
def real_digits():
    from ganlab.data.digits import load_digits
    from ganlab.metrics.measurer import real_images

    return real_images(load_digits(resolution=16, batch_size=16, split="test", value_range="unit"), 400)


def inputs(generated, judge, real, tmp_path, labels=None):
    return Inputs(generated, labels, (lambda: real), "digits-test-16", torch.device("cpu"), tmp_path, classifier=judge)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    x = images.float()
    size = 5
    grid = torch.arange(size) - size // 2
    kernel = torch.exp(-grid.float() ** 2 / (2 * sigma ** 2))
    kernel = (kernel[:, None] * kernel[None]) / kernel.sum() ** 2
    out = F.conv2d(x, kernel[None, None].expand(x.shape[1], 1, size, size), padding=2, groups=x.shape[1])
    return out.round().clamp(0, 255).byte()


def test_frechet_distance_is_zero_for_identical_statistics_and_matches_the_closed_form():
    features = torch.randn(500, 6, generator=torch.Generator().manual_seed(0))
    mu, sigma = mean_and_covariance(features)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)
    # two isotropic Gaussians: |mu1 - mu2|^2 + d (s1 - s2)^2
    eye = torch.eye(3, dtype=torch.float64)
    value = frechet_distance(torch.zeros(3), eye * 4, torch.ones(3), eye)
    assert value == pytest.approx(3 + 3 * (2 - 1) ** 2)


def test_identical_real_sets_give_fd_near_zero_and_fd_grows_with_blur_and_noise(judge, real_digits, tmp_path):
    _, jd = judge
    images, _ = real_digits
    fd = lambda generated: run_metrics(["classifier_fd"], inputs(generated, jd, real_digits, tmp_path))["classifier_fd"]
    same = fd(images)
    slightly, strongly = fd(blur(images, 0.7)), fd(blur(images, 1.5))
    noise = torch.randint(0, 256, images.shape, generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    assert same == pytest.approx(0.0, abs=1e-3)
    assert same < slightly < strongly < fd(noise)


def test_a_classifier_run_folder_is_a_judge_like_its_last_checkpoint(judge):
    """metrics.classifier=<run folder> (not only its checkpoints/last.pt) opens the same network; its
    identity hashes the checkpoint (hashing the folder once raised IsADirectoryError)."""
    path, by_file = judge
    by_folder = open_judge(str(path.parent.parent), _digits_facts(), torch.device("cpu"), allowed_prefixes(), "classifier")
    assert by_folder.identity == by_file.identity  # the same file, named the same: one cache entry
    for mine, theirs in zip(by_folder.network.state_dict().values(), by_file.network.state_dict().values()):
        assert torch.equal(mine, theirs)


def test_a_metric_name_that_is_a_value_or_a_near_miss_is_named():
    from ganlab.metrics.registry import check_names

    with pytest.raises(ConfigError, match="class_kl is a value the metric classifier logs: name that metric"):
        check_names(["class_kl"], "metrics.names")
    with pytest.raises(ConfigError, match="classifer_fd: did you mean classifier_fd"):
        check_names(["fid", "classifer_fd"], "metrics.names")


def test_one_image_covers_one_class_and_real_images_cover_all(judge, real_digits, tmp_path):
    _, jd = judge
    images, labels = real_digits
    collapsed = run_metrics(["classifier"], inputs(images[:1].repeat(300, 1, 1, 1), jd, real_digits, tmp_path))
    assert collapsed["classes_covered"] == 1 and collapsed["class_entropy"] == 0
    assert collapsed["classifier_score"] == pytest.approx(1.0, abs=1e-4)
    assert collapsed["class_kl"] > 1.5  # far from the data's ten equal classes
    real = run_metrics(["classifier"], inputs(images, jd, real_digits, tmp_path))
    assert real["classes_covered"] == 10 and real["class_entropy"] > 0.95 and real["class_kl"] < 0.05
    pr = run_metrics(["classifier_pr"], inputs(images[:1].repeat(300, 1, 1, 1), jd, real_digits, tmp_path))
    assert pr["classifier_recall"] < 0.05  # one image covers almost none of the real manifold


def test_per_class_accuracy_of_a_conditional_model(judge, real_digits, tmp_path):
    _, jd = judge
    images, labels = real_digits
    right = run_metrics(["class_accuracy"], inputs(images, jd, real_digits, tmp_path, labels=labels))
    wrong = run_metrics(["class_accuracy"], inputs(images, jd, real_digits, tmp_path, labels=(labels + 1) % 10))
    assert right["class_accuracy"] > 0.8 and wrong["class_accuracy"] < 0.2


def test_precision_and_recall_on_points():
    real = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    assert precision_recall(real, real.clone())["precision"] == 1.0
    shifted = precision_recall(real, real + 100)
    assert shifted == {"precision": 0.0, "recall": 0.0}
    half = precision_recall(real, real[real[:, 0] > 0])  # a G that draws only half of the data
    assert half["precision"] > 0.95 and half["recall"] < 0.75


def test_toy_metrics_see_one_mode_and_all_modes(tmp_path):
    grid = load_grid(batch_size=256)
    one_mode = grid.modes[:1].repeat(2500, 1)
    collapsed = run_metrics(["toy"], Inputs(one_mode, None, None, "", torch.device("cpu"), tmp_path, mixture=grid))
    assert collapsed["modes_covered"] == 1 and collapsed["high_quality"] == 1.0
    assert collapsed["reverse_kl"] == pytest.approx(math.log(25))
    real = grid.sample(2500, torch.Generator().manual_seed(0))["image"]
    good = run_metrics(["toy"], Inputs(real, None, None, "", torch.device("cpu"), tmp_path, mixture=grid))
    # a 2-d Gaussian puts 1 - exp(-4.5) = 98.9% of its mass within 3 std
    assert good["modes_covered"] == 25 and good["high_quality"] > 0.97 and good["reverse_kl"] < 0.02


def test_the_real_statistics_are_cached_and_reused(judge, real_digits, tmp_path):
    _, jd = judge
    calls = []

    def real():
        calls.append(1)
        return real_digits

    first = inputs(real_digits[0], jd, None, tmp_path)
    first.real = real
    run_metrics(["classifier_fd"], first)
    second = inputs(real_digits[0], jd, None, tmp_path)
    second.real = real
    run_metrics(["classifier_fd"], second)
    # the real images are read each time (their content names the cache entry), their features are not
    assert len(calls) == 2 and first.protocol["real_statistics"] == "computed"
    assert second.protocol["real_statistics"] == "cache"
    assert len(list(tmp_path.glob("real_*.pt"))) == 1


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory, judge):
    run_dir = tmp_path_factory.mktemp("gan")
    path, _ = judge
    train(compose_config(["schedule.steps=12", "schedule.eval_every=4", "metrics.n=200", f"metrics.classifier={path}",
                          "metrics.names=[classifier,classifier_fd]", "metrics.best=classifier_fd",
                          "schedule.ema_decay=0.99"]), run_dir)
    return run_dir


def test_metrics_during_training_are_logged_and_best_pt_is_the_best_step(gan_run):
    rows = [r for r in read_metrics(gan_run) if "metrics/classifier_fd" in r]
    assert [r["step"] for r in rows] == [4, 8, 12]
    best_row = min(rows, key=lambda r: r["metrics/classifier_fd"])
    state = load(gan_run / "checkpoints" / "best.pt")
    assert state["step"] == best_row["step"]
    assert {k: Saved(state).best[k] for k in ("metric", "value", "step")} == {
        "metric": "classifier_fd", "value": pytest.approx(best_row["metrics/classifier_fd"]), "step": best_row["step"]}


def test_best_pt_breaks_ties_on_the_first_value_with_the_next_ones(tmp_path):
    from types import SimpleNamespace

    class Steps:  # the maintenance's own rule, on a sequence of toy measurements
        best, ckpt_dir, saved = None, tmp_path, []
        # modes, then quality, then reverse KL
        evaluator = SimpleNamespace(best_rule=list(METRICS["toy"].higher_is_better.items()))
        state = SimpleNamespace(step=0)
        keep_best = Maintenance.keep_best

        def _save(self, path):
            self.saved.append(self.state.step)

    steps = Steps()
    for steps.state.step, modes, quality in [(1, 20, 0.5), (2, 25, 0.3), (3, 25, 0.8), (4, 24, 0.95), (5, 25, 0.7)]:
        steps.keep_best({"modes_covered": modes, "high_quality": quality, "reverse_kl": 0.1})
    assert steps.saved == [1, 2, 3] and steps.best["step"] == 3 and steps.best["value"] == 25


def test_ganlab_eval_writes_eval_json_with_the_protocol(gan_run, judge, tmp_path, monkeypatch):
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "cache"))
    path, _ = judge
    result = evaluate(str(gan_run), checkpoint="best", classifier=str(path), n=300, device="cpu")
    saved = json.loads((gan_run / "eval.json").read_text())
    assert saved["metrics"] == pytest.approx(result["metrics"])
    assert {"classes_covered", "classifier_fd", "classifier_precision", "class_kl"} <= set(saved["metrics"])
    assert "fid" not in saved["metrics"]  # auto on a CPU with a classifier: no minutes-long Inception pass
    protocol = saved["protocol"]
    assert protocol["generated_count"] == 300 and protocol["real_split"] == "test"
    assert protocol["real_count"] == 359  # the digits' held-out fifth
    assert "sha256:" in protocol["feature_network"] and saved["checkpoint"].endswith("best.pt")


def test_missing_inception_weights_offline_name_the_file_and_the_key(gan_run, tmp_path, monkeypatch):
    import ganlab.metrics.inception as inception
    from ganlab.metrics import nvidia_inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(inception, "URL", "http://127.0.0.1:9/" + inception.FILE)  # nothing listens there
    monkeypatch.setattr(nvidia_inception, "bundled_path", lambda: None)  # as without the ganlab[fid] extra
    with pytest.raises(ConfigError) as info:
        evaluate(str(gan_run), metrics=["fid"], n=50, device="cpu")
    message = str(info.value)
    assert inception.FILE in message and "inception_weights=" in message
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate(str(gan_run), metrics=["fid"], n=50, device="cpu", inception_weights=str(tmp_path / "none.pth"))


def test_without_metrics_eval_says_what_it_needs(gan_run, tmp_path, monkeypatch):
    from ganlab.metrics import nvidia_inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(nvidia_inception, "bundled_path", lambda: None)  # as without the ganlab[fid] extra
    with pytest.raises(ConfigError, match="classifier=PATH"):
        evaluate(str(gan_run), n=50, device="cpu")


def test_ema_warms_up_and_does_not_depend_on_the_batch_size():
    schedule = Schedule(steps=1000, ema_decay=0.999)
    early, middle, late = schedule.ema_beta(10, 64), schedule.ema_beta(5000, 64), schedule.ema_beta(50_000, 64)
    assert early < 0.5 < middle < late  # tracks G early on ...
    assert late == pytest.approx(0.999)  # ... and is the typed decay once warmed up
    by_images = Schedule(steps=1000, ema_kimg=10, ema_rampup=None)
    # the same number of images forgets the same share, whatever the batch size
    assert by_images.ema_beta(0, 32) ** 2 == pytest.approx(by_images.ema_beta(0, 64))


def test_the_ema_generator_gets_its_own_batchnorm_statistics(gan_run):
    from ganlab.training import run as runs

    opened = runs.open(gan_run)
    live = dict(opened.networks["generator"].named_buffers())
    ema = dict(opened.sampling_networks("auto")["generator"].named_buffers())  # calibrated for its own weights
    means = [k for k in ema if k.endswith("running_mean")]
    assert means and all(not torch.allclose(ema[k], live[k]) for k in means)
    assert (gan_run / "samples" / "live_samples_step_000012.png").is_file()  # both grids when both exist


def random_inception_weights(path):
    """A weights file of the right layout with random values: the real torch-fidelity path runs offline."""
    import torch_fidelity.feature_extractor_inceptionv3 as module

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(module.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        net = module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"])
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.slow
def test_inception_metrics_run_through_torch_fidelity_with_local_weights(gan_run, tmp_path, monkeypatch):
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "cache"))
    weights = random_inception_weights(tmp_path / "weights-inception-2015-12-05-6726825d.pth")
    result = evaluate(str(gan_run), metrics=["fid", "kid", "is", "pr"], n=20, real_n=20, device="cpu",
                      inception_weights=str(weights), out=str(tmp_path / "eval.json"))
    values = result["metrics"]
    assert set(values) == {"fid", "kid", "inception_score", "precision", "recall"}
    # random weights: degenerate features, so only the ranges are meaningful here
    assert values["fid"] > -1e-6 and values["inception_score"] > 1 - 1e-6 and 0 <= values["precision"] <= 1
    assert result["protocol"]["inception_weights_sha256"]
    # no pickle is kept for later: neither a weights copy nor torch-fidelity's feature cache
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_ganlab_eval_through_the_cli_prints_a_table_on_a_toy_run(tmp_path, monkeypatch, capsys):
    from conftest import cli_in_process

    train(compose_config(["model=mlp", "dataset=ring", "schedule.steps=2"]), tmp_path / "toy")
    code, out, err = cli_in_process("eval", f"run={tmp_path / 'toy'}", "n=2500", "device=cpu", cwd=tmp_path,
                                    monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert "modes_covered" in out and "reverse_kl" in out and "eval.json" in out
    saved = json.loads((tmp_path / "toy" / "eval.json").read_text())
    assert saved["protocol"]["generated_count"] == 2500
    from ganlab.training import run as runs
    from ganlab.data.toys import load_ring
    from ganlab.training.drawing import generate

    opened = runs.open(tmp_path / "toy")  # the same 2,500 points (seed 0), counted by the mixture itself
    points, _ = generate(opened, opened.sampling_networks(), 2500, torch.Generator().manual_seed(0))
    assert saved["metrics"]["modes_covered"] == load_ring().mode_coverage(points)["modes_covered"]
    code, _, err = cli_in_process("eval", f"run={tmp_path / 'toy'}", "metrics=[fidd]", cwd=tmp_path,
                                  monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "['fidd'] are not metrics" in err
