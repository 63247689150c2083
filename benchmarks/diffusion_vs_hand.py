"""ganlab's diffusion (or flow-matching) training step against a plain hand-written loop over the same
UNet, loss and batches: the loop a student writes from the DDPM paper (t uniform, noise, the simple
MSE on eps, Adam, an EMA copy updated every step) or from torchcfm (the straight path's velocity).
Rounds alternate between the loops so that machine noise hits both alike.

    python -m benchmarks.diffusion_vs_hand [--model ddpm|flow] [--steps 30] [--rounds 3] [--device auto]

The UNet of the mnist_ddpm / mnist_flow presets (width 32, channel_mult 1,2,2, one block a level,
attention at 7 px), 28 px digits, batch 64. Target: ganlab's step at least as fast (>= 1.0x).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.loop_vs_hand import peak, sync, time_ganlab, time_hand
from ganlab.trust.paths import compose
from ganlab.training.runtime import pick_device
from ganlab.training.train import train


class HandDiffusion:
    """The plain loop on a copy of ganlab's UNet, with ganlab's runtime options for the device."""

    def __init__(self, training, model: str, batches):
        runtime = training.runtime
        self.net = copy.deepcopy(training.networks["denoiser"]).requires_grad_(True)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        fused = {"fused": True} if runtime.fused else {}
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=2e-4, betas=(0.9, 0.999), **fused)
        self.autocast, self.batches, self.device, self.model = runtime.autocast, batches, training.device, model
        self.abar = training.objective.abar.float().to(self.device) if model == "ddpm" else None

    def step(self) -> None:
        x0 = next(self.batches)["image"]
        noise = torch.randn_like(x0)
        if self.model == "ddpm":
            t = torch.randint(0, 1000, (len(x0),), device=self.device)
            a = self.abar[t].view(-1, 1, 1, 1)
            x, target, time = a.sqrt() * x0 + (1 - a).sqrt() * noise, noise, t
        else:
            t = torch.rand(len(x0), device=self.device)
            along = t.view(-1, 1, 1, 1)
            x, target, time = (1 - along) * noise + along * x0, x0 - noise, t * 1000
        with self.autocast():
            loss = (self.net(x, time).float() - target).pow(2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.net.parameters()):
                e.lerp_(p, 1 - 0.999)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ddpm", choices=["ddpm", "flow"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = str(Path(tmp) / "run")
        config = [f"model={args.model}", "dataset=digits", "dataset.resolution=28", f"dataset.batch_size={args.batch_size}",
                  "model.denoiser.width=32", "model.denoiser.channel_mult=[1,2,2]", "model.denoiser.num_res_blocks=1",
                  "model.denoiser.attention_resolutions=[7]", "progress=false", "schedule.snapshot_every=0",
                  f"device={device}", "schedule.steps=2", "schedule.sample_count=8"]
        training = train(compose(config), run_dir)
        hand = HandDiffusion(training, args.model, copy.deepcopy(training.batches))
        time_hand(hand, 3)  # warm-up: kernels chosen
        results = {"plain loop, same data, options and EMA": [], "ganlab step": []}
        for _ in range(args.rounds):
            results["plain loop, same data, options and EMA"].append(time_hand(hand, args.steps))
            results["ganlab step"].append(time_ganlab(training, run_dir, args.steps, maintenance=False))
    runtime = training.runtime
    med = {k: statistics.median(v) for k, v in results.items()}
    params = sum(p.numel() for p in training.networks["denoiser"].parameters())
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    sync(device)
    print(f"{where}; torch {torch.__version__}; {args.model} UNet ({params / 1e6:.2f}M parameters), 28 px, batch "
          f"{args.batch_size}; ganlab's options: precision {runtime.precision}, channels_last {runtime.channels_last}, "
          f"fused {runtime.fused}; median of {args.rounds} alternating rounds of {args.steps} steps; peak TFLOP/s: "
          f"{peak(device, runtime.precision)}\n")
    print("| loop | ms/step | images/s | vs. plain |")
    print("|---|---|---|---|")
    plain = med["plain loop, same data, options and EMA"]
    for name, ms in med.items():
        print(f"| {name} | {ms:.1f} | {args.batch_size / ms * 1000:,.0f} | {plain / ms:.2f}x |")


if __name__ == "__main__":
    main()
