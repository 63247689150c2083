"""Diffusion (DDPM/DDIM) and flow matching: the maths against closed forms, then real tiny runs
through the same runner, verbs and checks as the GANs."""

import json
import math
import shutil

import pytest
import torch

from conftest import compose_config, run_cli
from ganlab.errors import ConfigError
from ganlab.models.unet import UNet
from ganlab.objectives.diffusion import DiffusionObjective, alpha_bars, sampling_timesteps, snr
from ganlab.objectives.flow import FlowObjective, euler, heun
from ganlab.records.logging import read_metrics
from ganlab.training.train import train

# a UNet that trains in a second at 8 px (the digits), one residual block a level
TINY_UNET = ["dataset=digits", "dataset.resolution=8", "model.denoiser.width=8", "model.denoiser.channel_mult=[1,2]",
             "model.denoiser.attention_resolutions=[4]", "model.denoiser.num_res_blocks=1", "debug=tiny"]


def tiny(model: str, *extra: str):
    return compose_config([f"model={model}", *TINY_UNET, *extra], shrink=False)


def objective(kind=DiffusionObjective, conditional=False, **settings):
    net = UNet(8, 1, num_classes=10 if conditional else 0, width=8, channel_mult=(1, 2), num_res_blocks=1,
               class_conditional=conditional)
    return kind(net, resolution=8, channels=1, num_classes=10 if conditional else 0, **settings)


# --- schedules --------------------------------------------------------------------------------------
def test_linear_schedule_is_the_product_of_one_minus_beta():
    abar = alpha_bars("linear", 1000)
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    assert abar[0].item() == pytest.approx(1 - 1e-4)
    assert abar[499].item() == pytest.approx(math.prod(1 - b for b in betas[:500]), rel=1e-9)
    assert abar[-1].item() == pytest.approx(math.prod(1 - b for b in betas), rel=1e-9)
    assert abar[-1].item() < 1e-4  # nearly pure noise at T


def test_cosine_schedule_follows_its_closed_form_with_the_offset():
    abar, s = alpha_bars("cosine", 1000), 0.008
    f = lambda t: math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 100, 500, 900):
        assert abar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-6)
    assert abar[-1].item() < abar[-2].item()  # beta clipped at 0.999 near the end, still decreasing


def test_snr_and_min_snr_weights():
    abar = alpha_bars("linear", 1000)
    assert snr(abar)[10].item() == pytest.approx(abar[10].item() / (1 - abar[10].item()))
    t = torch.tensor([0, 500, 999])
    ratio = snr(abar[t]).float()
    for prediction, expected in (("eps", ratio.clamp(max=5) / ratio), ("x0", ratio.clamp(max=5)),
                                 ("v", ratio.clamp(max=5) / (ratio + 1))):
        weights = objective(prediction=prediction, min_snr_gamma=5.0).weights(t)
        assert torch.allclose(weights, expected)
    assert objective(min_snr_gamma=5.0).weights(t)[0] < 0.01 and objective().weights(t).tolist() == [1, 1, 1]


def test_sampling_timesteps_run_from_the_noisiest_to_zero():
    assert sampling_timesteps(1000, 5) == [999, 749, 500, 250, 0]
    assert sampling_timesteps(10, 50) == list(range(9, -1, -1))


# --- samplers against oracles -------------------------------------------------------------------------
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ddim_with_an_oracle_network_recovers_x0_exactly(prediction, schedule):
    obj = objective(prediction=prediction, schedule=schedule, sample_steps=10, clip_denoised=False)
    x0 = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    noise = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    abar = obj.abar.float()

    def oracle(x, time):  # the exact eps / x0 / v of x given the one x0
        a = abar[time].view(-1, 1, 1, 1)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return {"eps": eps, "x0": x0, "v": a.sqrt() * eps - (1 - a).sqrt() * x0}[prediction]

    start = abar[-1].sqrt() * x0 + (1 - abar[-1]).sqrt() * noise
    out = obj.integrate(oracle, start, lambda: torch.zeros_like(start))
    assert torch.allclose(out, x0, atol=1e-4)


def gaussian_velocity(mean: float, std: float):
    """The exact marginal velocity of the straight path from N(0, 1) to N(mean, std^2)."""
    def velocity(x, t):
        tt = t.view(-1, *[1] * (x.ndim - 1))
        var = (1 - tt) ** 2 + tt ** 2 * std ** 2
        return mean + (tt * std ** 2 - (1 - tt)) / var * (x - tt * mean)
    return velocity


def test_euler_and_heun_reach_the_target_gaussian_heun_closer():
    mean, std = 2.0, 0.5
    x = torch.randn(200_000, 1, generator=torch.Generator().manual_seed(0))
    errors = {}
    for name, integrate in (("euler", euler), ("heun", heun)):
        out = integrate(gaussian_velocity(mean, std), x.clone(), 8)
        errors[name] = abs(out.mean().item() - mean) + abs(out.std().item() - std)
        assert out.mean().item() == pytest.approx(mean, abs=0.05) and out.std().item() == pytest.approx(std, abs=0.1)
    assert errors["heun"] < errors["euler"] / 3
    fine = euler(gaussian_velocity(mean, std), x.clone(), 200)
    assert fine.std().item() == pytest.approx(std, abs=0.01)


def test_guidance_one_is_the_plain_conditional_prediction_and_two_extrapolates():
    obj = objective(FlowObjective, conditional=True)
    net = obj.networks["denoiser"].eval()
    x, t, labels = torch.randn(3, 1, 8, 8), torch.tensor([100.0, 500.0, 900.0]), torch.tensor([1, 4, 7])
    with torch.no_grad():
        assert torch.equal(obj.guided(net, labels)(x, t), net(x, t, labels))
        obj.with_sampling(guidance=2.0)
        conditional, unconditional = net(x, t, labels), net(x, t, torch.full_like(labels, 10))
        assert torch.allclose(obj.guided(net, labels)(x, t), unconditional + 2 * (conditional - unconditional),
                              atol=1e-5)


def test_labels_are_dropped_at_p_uncond():
    obj = objective(FlowObjective, conditional=True, p_uncond=0.25)
    torch.manual_seed(0)
    dropped = (obj.training_labels(torch.zeros(20_000, dtype=torch.long)) == 10).float().mean().item()
    assert dropped == pytest.approx(0.25, abs=0.01)


def test_the_unet_checks_its_sizes_and_matches_ddpm_cifar10():
    from ganlab.models.blocks import count_parameters
    from ganlab.trust.build import allowed_prefixes, build

    cfg = compose_config(["experiment=cifar10_ddpm"], shrink=False)
    net = build(cfg.model.denoiser, "model.denoiser", allowed_prefixes(), resolution=32, channels=3, num_classes=10)
    assert round(count_parameters(net) / 1e6, 1) == 35.7  # Ho et al.: 35.7M
    with pytest.raises(ConfigError, match=r"dataset.resolution=28 cannot be halved.*channel_mult=\[1, 2, 2\]"):
        UNet(28, 1, channel_mult=(1, 2, 2, 2))
    with pytest.raises(ConfigError, match=r"attention_resolutions=\[16\]: \[16\] is not a resolution"):
        UNet(28, 1, channel_mult=(1, 2, 2), attention_resolutions=(16,))


# --- real runs -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("flow") / "run"
    train(tiny("flow", "model.denoiser.class_conditional=true", "schedule.steps=6", "schedule.ckpt_every=3",
               "schedule.sample_every=3", "schedule.log_every=1", "schedule.sample_count=10"), run_dir)
    return run_dir


def test_a_diffusion_run_logs_the_loss_per_quarter_of_t_and_draws_grids(tmp_path):
    run = train(tiny("ddpm", "schedule.steps=4", "schedule.log_every=1", "dataset.batch_size=64"), tmp_path / "run")
    rows = read_metrics(tmp_path / "run")
    quarters = [k for k in rows[-1] if k.startswith("loss/t")]
    assert sorted(quarters) == ["loss/t0-25", "loss/t25-50", "loss/t50-75", "loss/t75-100"]
    # noise is easy to predict from a nearly pure-noise input, hard from a nearly clean one
    assert rows[-1]["loss/t75-100"] < rows[-1]["loss/t0-25"]
    assert (tmp_path / "run" / "samples" / "step_000004.png").is_file() and run.run.ema


@pytest.mark.parametrize("model", ["ddpm", "flow"])
def test_the_loss_goes_down(tmp_path, model):
    run_dir = tmp_path / model
    train(tiny(model, "schedule.steps=60", "schedule.log_every=10", "optimizer.lr=2e-3", "dataset.batch_size=32"),
          run_dir)
    losses = [r["loss/denoise"] for r in read_metrics(run_dir) if "loss/denoise" in r]
    assert losses[-1] < 0.7 * losses[0]


def test_a_killed_diffusion_run_resumes_bit_for_bit(tmp_path):
    common = ["schedule.ckpt_every=3", "schedule.snapshot_every=3", "schedule.log_every=1", "schedule.steps=6",
              "model.objective.min_snr_gamma=5", "model.denoiser.dropout=0.1"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(tiny("ddpm", *common), whole)
    shutil.copytree(whole, killed)
    shutil.copy(whole / "checkpoints" / "step_000003.pt", killed / "checkpoints" / "last.pt")
    train(tiny("ddpm", *common, "resume=true"), killed)
    a = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    for part in ("networks", "ema"):
        for key, value in a[part]["denoiser"].items():
            assert torch.equal(value, b[part]["denoiser"][key]), key
    drop = lambda rows: [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]  # noqa: E731
    assert drop(read_metrics(whole)) == drop(read_metrics(killed))


def test_sample_same_seed_same_images_ancestral_noise_included(flow_run, tmp_path):
    for sampler in ("euler", "heun"):
        first, second = tmp_path / f"{sampler}_a.npz", tmp_path / f"{sampler}_b.npz"
        for out in (first, second):
            result = run_cli("sample", f"run={flow_run}", "format=npz", "n=6", "steps=3", f"sampler={sampler}",
                             "guidance=2", f"out={out}", cwd=tmp_path)
            assert result.returncode == 0, result.stderr
        import numpy as np

        assert np.array_equal(np.load(first)["images"], np.load(second)["images"])


def test_ddpm_ancestral_noise_is_seeded_by_each_samples_start_noise():
    obj = objective(sampler="ddpm", sample_steps=5)
    net = obj.networks["denoiser"].eval()
    start = obj.latent(4, torch.Generator().manual_seed(3))
    alone = obj.decode({"denoiser": net}, start[:2])
    together = obj.decode({"denoiser": net}, start)
    assert torch.allclose(alone, together[:2], atol=1e-5)  # the batch around a sample changes nothing
    other = obj.decode({"denoiser": net}, obj.latent(4, torch.Generator().manual_seed(4)))
    assert not torch.allclose(together, other)


def test_sample_and_eval_record_the_sampling_protocol(flow_run, tmp_path):
    from ganlab.commands.evaluate import evaluate

    judge_dir = tmp_path / "judge"
    train(compose_config(["model=classifier_mlp", "dataset=digits", "dataset.resolution=8", "schedule.steps=20",
                          "model.classifier.hidden=[16]"]), judge_dir)
    result = evaluate(run=str(flow_run), classifier=str(judge_dir), metrics=["classifier_fd", "class_accuracy"],
                      n=20, real_n=20, steps=2, sampler="heun", guidance=3.0, device="cpu")
    assert result["protocol"]["sampling"] == {"sampler": "heun", "steps": 2, "guidance": 3.0, "eta": 0.0}
    assert 0 <= result["metrics"]["class_accuracy"] <= 1 and result["metrics"]["classifier_fd"] >= 0
    saved = json.loads((flow_run / "eval.json").read_text())
    assert saved["protocols"]["classifier_fd"]["sampling"]["sampler"] == "heun"


def test_report_and_tensorboard_read_a_diffusion_run(flow_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_cli("report", str(flow_run), f"out={tmp_path / 'report'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "report" / "runs.md").read_text()
    assert "loss/denoise final" in table and "loss/t75-100 final" in table
    events = EventAccumulator(str(flow_run)).Reload()
    assert "loss/denoise" in events.Tags()["scalars"] and "loss/t75-100" in events.Tags()["scalars"]
    assert any("samples" in tag for tag in events.Tags()["images"])


# --- bad input: one paragraph, exit 2, nothing written ---------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["steps=0"], "steps=0 must be a whole number of at least 1"),
    (["sampler=ddim"], "sampler='ddim' is not a sampler of this model; use one of euler, heun"),
    (["interpolate=4", "n=8", "sampler=euler", "eta=0.5"], "eta=0.5 is DDIM's noise"),
])
def test_bad_sampling_options_are_one_paragraph(flow_run, tmp_path, args, words):
    before = sorted(p.name for p in (flow_run / "generated").glob("*")) if (flow_run / "generated").exists() else []
    result = run_cli("sample", f"run={flow_run}", *args, cwd=tmp_path)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr
    after = sorted(p.name for p in (flow_run / "generated").glob("*")) if (flow_run / "generated").exists() else []
    assert after == before


def test_interpolate_needs_a_deterministic_sampler(tmp_path):
    run_dir = tmp_path / "ddpm"
    train(tiny("ddpm", "schedule.steps=2"), run_dir)
    result = run_cli("sample", f"run={run_dir}", "interpolate=4", "n=8", "sampler=ddpm", cwd=tmp_path)
    assert result.returncode == 2 and "needs a deterministic sampler" in result.stderr
    assert not (run_dir / "generated").exists() or not any((run_dir / "generated").iterdir())
    ok = run_cli("sample", f"run={run_dir}", "interpolate=4", "n=8", "sampler=ddim", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    gan = run_cli("sample", f"run={run_dir}", "steps=3", cwd=tmp_path)
    assert gan.returncode == 0
    # ancestral sampling is eta 1 by definition: a typed eta would be replaced silently
    noisy = run_cli("sample", f"run={run_dir}", "sampler=ddpm", "eta=0.5", cwd=tmp_path)
    assert noisy.returncode == 2 and "eta=0.5 has no effect with sampler=ddpm" in noisy.stderr
    assert "sampler=ddim eta=0.5" in noisy.stderr
    with pytest.raises(ConfigError, match="model.objective.eta=0.5 has no effect with model.objective.sampler=ddpm"):
        train(tiny("ddpm", "schedule.steps=2", "model.objective.sampler=ddpm", "model.objective.eta=0.5"),
              tmp_path / "other")


@pytest.mark.parametrize("overrides, words", [
    (["model.objective.guidance=2"], "model.objective.guidance=2 steers a class-conditional model"),
    (["model.objective.sampler=heun"], "sampler='heun' is not a sampler of this model; use one of ddim, ddpm"),
    (["dataset.resolution=12", "model.denoiser.channel_mult=[1,2,2,2]"], "cannot be halved that often"),
])
def test_bad_model_settings_refuse_the_run_before_anything_is_written(tmp_path, overrides, words):
    run_dir = tmp_path / "run"
    args = ["model=ddpm", *TINY_UNET, *overrides, f"hydra.run.dir={run_dir}"]
    result = run_cli("train", *args, cwd=tmp_path)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not run_dir.exists()


def test_sampling_settings_on_a_gan_run_are_refused(tmp_path):
    run_dir = tmp_path / "gan"
    train(compose_config(["schedule.steps=2"]), run_dir)
    result = run_cli("sample", f"run={run_dir}", "steps=25", cwd=tmp_path)
    assert result.returncode == 2 and "sampling settings are for diffusion and flow runs" in result.stderr
