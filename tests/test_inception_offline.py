"""The offline Inception network (the `ganlab[fid]` extra): verified before it loads, used with no
network access, FID 0 for a set against itself, and what eval.json says about the protocol."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import compose_config
from ganlab.errors import ConfigError
from ganlab.metrics import nvidia_inception
from ganlab.metrics.registry import Inputs, run_metrics

pytestmark = pytest.mark.skipif(not nvidia_inception.at_hand(), reason="needs the ganlab[fid] extra")


def test_another_file_is_refused_before_it_loads(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network" * 100)
    with pytest.raises(ConfigError, match="is not the Inception network ganlab measures with"):
        nvidia_inception.feature_network(torch.device("cpu"), fake)


def digits(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    for i in range(n):  # a bright square at a random place: grey images, repeated to RGB by the protocol
        y, x = torch.randint(0, 20, (2,), generator=generator).tolist()
        images[i, 0, y:y + 8, x:x + 8] = 255
    return images


@pytest.mark.slow
def test_fid_is_zero_for_a_set_against_itself_offline(tmp_path, monkeypatch):
    import ganlab.metrics.inception as inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no hub weights to fall back on
    monkeypatch.setattr(inception, "URL", "http://127.0.0.1:9/" + inception.FILE)  # and nothing to download
    real = digits(12, seed=0)
    noise = torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8)

    def measure(generated):
        inputs = Inputs(generated, None, lambda: (real, None), "squares", torch.device("cpu"), tmp_path / "cache")
        return run_metrics(["fid", "kid", "pr"], inputs), inputs.protocol

    same, protocol = measure(real.clone())
    # FID 0; KID's unbiased estimate is 0 only in expectation (12 images: within +-0.01)
    assert same["fid"] == pytest.approx(0, abs=1e-3) and abs(same["kid"]) < 0.01
    assert same["precision"] == 1 and same["recall"] == 1
    assert protocol["feature_network"].startswith("NVIDIA inception-2015-12-05") and "bilinear" in protocol["resize"]
    assert protocol["real_statistics"] == "computed"
    other, protocol = measure(noise)
    assert other["fid"] > 100 * max(same["fid"], 1e-3) and other["kid"] > 0.1 and other["precision"] < 1
    assert protocol["real_statistics"] == "cache"


def test_the_inception_score_asks_for_torch_fidelitys_weights(tmp_path):
    inputs = Inputs(digits(4, 0), None, lambda: (digits(4, 1), None), "squares", torch.device("cpu"), tmp_path)
    with pytest.raises(ConfigError, match="Inception Score needs the network's logits"):
        run_metrics(["is"], inputs)


@pytest.mark.slow
def test_ganlab_eval_writes_the_offline_protocol(tmp_path):
    from ganlab.commands.evaluate import evaluate
    from ganlab.training.train import train

    train(compose_config(["schedule.steps=2"]), tmp_path / "run")
    result = evaluate(str(tmp_path / "run"), metrics=["fid"], n=10, real_n=10, device="cpu")
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["metrics"]["fid"] == pytest.approx(result["metrics"]["fid"]) and saved["metrics"]["fid"] > 0
    assert saved["protocol"]["feature_network"] == nvidia_inception.NAME
    assert saved["protocol"]["real_count"] == 10 and saved["protocol"]["generated_count"] == 10
    assert saved["protocol"]["precision"] == ("bf16 autocast" if nvidia_inception.uses_bfloat16(torch.device("cpu"))
                                              else "fp32")
    with pytest.raises(ConfigError, match="inception_precision='fp16' is not one of auto, fp32, bf16"):
        evaluate(str(tmp_path / "run"), metrics=["fid"], n=10, real_n=10, device="cpu", inception_precision="fp16")


@pytest.mark.slow
def test_bf16_and_channels_last_keep_the_features_and_have_their_own_cache(tmp_path):
    """channels-last gives fp32's numbers; bf16 moves them by a few percent (benchmarks/inception_cpu.py:
    FID within 0.2% on MNIST), so its real side is cached apart from fp32's."""
    images = digits(4, 0)
    exact = nvidia_inception.features(images, torch.device("cpu"), channels_last=False)
    assert torch.allclose(nvidia_inception.features(images, torch.device("cpu")), exact, rtol=1e-4, atol=1e-4)
    half = nvidia_inception.features(images, torch.device("cpu"), bfloat16=True)
    assert 0 < float((half - exact).norm() / exact.norm()) < 0.1
    for precision in ("fp32", "bf16"):
        inputs = Inputs(images, None, lambda: (digits(4, 1), None), "squares", torch.device("cpu"), tmp_path,
                        inception_precision=precision)
        run_metrics(["fid"], inputs)
        assert inputs.protocol["precision"] == {"fp32": "fp32", "bf16": "bf16 autocast"}[precision]
        assert inputs.protocol["real_statistics"] == "computed"  # bf16 did not take fp32's cached real side
