"""The runtime seam: precision, layout, compile and many processes, each in its CPU form
(bf16 autocast, channels_last, torch.compile and torchrun over gloo all run on CPU)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import cli_in_process, compose_config
from ganlab.records.checkpoint import load
from ganlab.errors import ConfigError
from ganlab.records.logging import read_metrics
from ganlab.training.train import train

MLP = ["model=mlp", "dataset.resolution=8", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
       "model.generator.latent_dim=8"]
DCGAN_BN = ["dataset.resolution=16", "model.generator.width=8", "model.discriminator.width=8",
            "model.generator.latent_dim=16", "runtime.sync_batchnorm=true"]
COMMON = ["device=cpu", "progress=false", "dataset.batch_size=16", "schedule.log_every=2", "schedule.ckpt_every=2",
          "schedule.sample_every=100", "schedule.snapshot_every=0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def losses(run_dir):
    return [{k: v for k, v in row.items() if k.startswith(("loss/", "D/"))} for row in read_metrics(run_dir)]


def torchrun(*args, cwd, **popen):
    """`ganlab train ARGS` in two processes under torchrun (gloo on CPU)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.Popen([*launcher, "-m", "ganlab", "train", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finished(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out + err


def assert_close(a, b):
    assert len(a) == len(b) and a
    for row_a, row_b in zip(a, b):
        assert row_a.keys() == row_b.keys()
        for key in row_a:
            assert row_a[key] == pytest.approx(row_b[key], rel=1e-4, abs=1e-5), key


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, monkeypatch, capsys):
    # a DCGAN with BatchNorm in both networks: DDP's gradient averaging and SyncBatchNorm's global
    # batch statistics must both hold for the numbers to match (a plain DDP run differs only in not
    # converting the BatchNorms, so one torchrun covers both)
    args = [*COMMON, *DCGAN_BN, "schedule.steps=6"]
    # the one-process reference runs in this process (an interpreter start-up less), the pair under torchrun
    code, _, err = cli_in_process("train", *args, f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path,
                                  monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    output = finished(torchrun(*args, f"hydra.run.dir={tmp_path / 'two'}", cwd=tmp_path))
    assert_close(losses(tmp_path / "two"), losses(tmp_path / "one"))
    # exactly one set of files: one events file, one Hydra folder, one log, one line per log step
    assert len(list((tmp_path / "two").glob("events.out.tfevents.*"))) == 1
    names = lambda run: sorted(p.name for p in (tmp_path / run).iterdir() if not p.name.startswith("events."))
    assert names("two") == names("one")
    assert output.count("run finished") == 1
    state = load(tmp_path / "two" / "checkpoints" / "last.pt")
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in state["networks"]["generator"])


@pytest.mark.slow
def test_a_torchrun_stopped_by_sigterm_resumes(tmp_path, monkeypatch, capsys):
    args = [*COMMON, *MLP, "schedule.steps=4000", "schedule.ckpt_every=1000", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = torchrun(*args, cwd=tmp_path, start_new_session=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 20):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)  # as a scheduler stops a job: every process gets it
    out, err = proc.communicate(timeout=120)
    stopped = load(tmp_path / "run" / "checkpoints" / "last.pt")["step"]
    assert 20 <= stopped < 4000, err[-2000:]
    resumed = [a for a in args if not a.startswith("schedule.steps")] + ["schedule.steps=" + str(stopped + 10),
                                                                        "resume=true"]
    # resumed by one process (batch_size is the global batch, so the run goes on alike), in this one
    code, _, err = cli_in_process("train", *resumed, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    rows = read_metrics(tmp_path / "run")
    assert rows[-1]["step"] == stopped + 10 and [r["step"] for r in rows] == sorted({r["step"] for r in rows})


def test_bf16_autocast_runs_on_cpu_and_keeps_float32_weights(tmp_path):
    loop = train(compose_config(["runtime.precision=bf16", "schedule.steps=4"]), tmp_path)
    assert loop.runtime.precision == "bf16"
    rows = read_metrics(tmp_path)
    assert all(math_finite(r["loss/D"]) and math_finite(r["loss/G"]) for r in rows)
    state = load(tmp_path / "checkpoints" / "last.pt")
    assert all(t.dtype == torch.float32 for t in state["networks"]["generator"].values() if t.is_floating_point())
    seen = []  # inside the step's autocast a conv really computes in bf16 (a null context would give float32)
    conv = next(m for m in loop.networks["discriminator"].modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    with loop.runtime.autocast():
        loop.networks["discriminator"](torch.randn(2, *loop.run.facts.shape))
    handle.remove()
    assert seen == [torch.bfloat16]


def math_finite(x):
    return x == x and abs(x) != float("inf")


def test_channels_last_trains_and_its_checkpoint_opens_anywhere(tmp_path):
    loop = train(compose_config(["runtime.channels_last=true", "schedule.steps=2"]), tmp_path)
    conv = next(m for m in loop.networks["discriminator"].modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    from ganlab.commands.sample import sample

    assert sample(str(tmp_path), n=4, device="cpu")[0].is_file()


def test_fused_optimizers_compute_what_the_plain_ones_do_and_resume_either_way(tmp_path):
    fused = train(compose_config(["runtime.fused=true", "schedule.steps=4", "schedule.log_every=1"]), tmp_path / "f")
    assert all(opt.defaults["fused"] for opt in fused.optimizers.values())
    plain = train(compose_config(["schedule.steps=4", "schedule.log_every=1"]), tmp_path / "p")
    assert not any(opt.defaults.get("fused") for opt in plain.optimizers.values())  # auto: fused on CUDA only
    assert_close(losses(tmp_path / "f"), losses(tmp_path / "p"))
    # a fused run's checkpoint resumes into a plain run (the kernel choice follows the run, not the file)
    resumed = train(compose_config(["schedule.steps=6", f"resume={tmp_path}/f/checkpoints/last.pt"]), tmp_path / "r")
    assert not any(group["fused"] for opt in resumed.optimizers.values() for group in opt.param_groups)
    # ... and an optimizer that has no fused kernels keeps torch's default
    rms = train(compose_config(["runtime.fused=true", "optimizer=rmsprop", "schedule.steps=1"]), tmp_path / "rms")
    assert "fused" not in rms.optimizers["generator"].defaults


def test_fp16_on_cpu_and_unknown_precisions_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="runtime.precision=fp16 needs a CUDA device"):
        train(compose_config(["runtime.precision=fp16"]), tmp_path)
    with pytest.raises(ConfigError, match="runtime.precision='fp8' is not known"):
        train(compose_config(["runtime.precision=fp8"]), tmp_path)


@pytest.mark.slow
def test_compiled_networks_train_and_checkpoint_without_wrapper_prefixes(tmp_path):
    from torch._dynamo.utils import counters

    counters.clear()
    train(compose_config(MLP + ["runtime.compile=true", "schedule.steps=12", "schedule.sample_every=3"]),
          tmp_path / "compiled")
    # 24 phase switches (requires_grad toggled each time) and 4 sample steps (eval mode, no_grad):
    # a fixed few graphs per network (real vs fake inputs to D; G with and without grad), no more
    assert counters["stats"]["unique_graphs"] <= 4
    state = load(tmp_path / "compiled" / "checkpoints" / "last.pt")
    assert not any("_orig_mod" in k for net in state["networks"].values() for k in net)
    # ... so a plain run resumes it
    assert train(compose_config(MLP + ["schedule.steps=14", f"resume={tmp_path}/compiled/checkpoints/last.pt"]),
                 tmp_path / "plain").step == 14


def test_the_g_step_reuses_the_d_steps_fakes_only_when_one_d_step_precedes_it(tmp_path):
    def forwards_of_g_in_one_step(loop) -> int:
        calls = []
        handle = loop.networks["generator"].register_forward_hook(lambda *_: calls.append(1))
        loop.step_runner(loop.step)  # one more step itself: its phases, without the maintenance after it
        handle.remove()
        return len(calls)

    loop = train(compose_config(["schedule.steps=1"]), tmp_path / "a")
    assert loop.objective.reuse_fakes and loop.objective.reuses_latent == "G"
    assert forwards_of_g_in_one_step(loop) == 1  # D's step draws the fakes, G's step reuses them
    two = train(compose_config(["schedule.steps=1", "schedule.n_critic=2"]), tmp_path / "b")
    assert not two.objective.reuse_fakes
    assert forwards_of_g_in_one_step(two) == 3  # two D steps and G's own: nothing to reuse


def test_help_and_composing_do_not_import_torch():
    code = ("import sys; from ganlab.commands.cli import main; main(['--help']); "
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert result.stdout.strip().endswith("NO TORCH")


def test_a_finished_run_leaves_the_process_group(tmp_path):
    # an undestroyed gloo group can abort a process at exit ("terminate called without an active exception")
    import torch.distributed as dist

    from ganlab.training.runtime import leave_processes

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    leave_processes()
    assert not dist.is_initialized()
    leave_processes()  # and again: nothing to leave
