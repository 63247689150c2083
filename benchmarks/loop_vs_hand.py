"""ganlab's training step against hand-written loops with the identical networks, loss and
optimizers (pytorch/examples' DCGAN loop: one G forward per step, its fakes reused by the G step).
Rounds alternate between the loops so that machine noise hits all alike.

    python -m benchmarks.loop_vs_hand [--resolution 28|32] [--steps 150] [--rounds 3] [--device auto]

The loops, on the same images (the bundled digits, written as PNG files for the DataLoader):
- plain + DataLoader: the homework script, fp32, fed by `DataLoader(ImageFolder(PNGs))` with 2
  workers (pinned memory on CUDA); ganlab's defaults should beat it (target on CUDA: 2x).
- plain, same data and options: the hand loop on ganlab's in-memory batches with ganlab's runtime
  options for the device (bf16 autocast, channels_last, fused Adam on CUDA); ganlab's bare step
  should be within 5% of it.
- ganlab step (no maintenance) and ganlab at its default intervals (log every 25, grids and
  last.pt every 250 steps; target: under 3% on top).
Prints ms/step, images/s and achieved TFLOP/s (FLOPs of one step counted by torch's FlopCounterMode),
with the GPU's peak where it is known, as a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision import datasets, transforms
from torchvision.io import write_png

from ganlab.trust.paths import compose  # noqa: E402  (the real config tree, as the CLI composes it)

from ganlab.training.runtime import pick_device  # noqa: E402
from ganlab.data.digits import load_digits  # noqa: E402
from ganlab.records.logging import RunLogger  # noqa: E402
from ganlab.training.loop import train_steps  # noqa: E402
from ganlab.training.train import train  # noqa: E402

# dense peak TFLOP/s (bf16 tensor cores, fp32 without tensor cores) of GPUs this may run on
PEAK_TFLOPS = {"H100": {"bf16": 989.0, "fp32": 67.0}, "H200": {"bf16": 989.0, "fp32": 67.0},
               "A100": {"bf16": 312.0, "fp32": 19.5}}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def write_image_folder(root: Path, resolution: int, channels: int) -> int:
    """The digits as PNG files in one class folder (what the DataLoader loop and ganlab both read)."""
    images = load_digits(resolution=resolution, batch_size=1).images
    folder = root / "digits"
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        write_png(image.expand(channels, -1, -1).contiguous(), str(folder / f"{i:05d}.png"))
    return len(images)


def data_loader_batches(root: Path, resolution: int, channels: int, batch_size: int, device: torch.device):
    """pytorch/examples' data path: ImageFolder + transforms in 2 DataLoader workers."""
    steps = [transforms.Grayscale()] if channels == 1 else []
    transform = transforms.Compose([*steps, transforms.Resize(resolution), transforms.ToTensor(),
                                    transforms.Normalize([0.5] * channels, [0.5] * channels)])
    loader = DataLoader(datasets.ImageFolder(str(root), transform=transform), batch_size=batch_size, shuffle=True,
                        num_workers=2, pin_memory=device.type == "cuda", drop_last=True, persistent_workers=True)
    while True:
        for images, _ in loader:
            yield {"image": images.to(device, non_blocking=True)}


class HandLoop:
    """The plain loop on copies of ganlab's G and D. `options=True` gives it ganlab's runtime
    options (autocast precision, channels_last, fused Adam); `batches` is where its images come from."""

    def __init__(self, loop, batches, options: bool):
        runtime = loop.runtime
        self.G = copy.deepcopy(loop.networks["generator"])
        self.D = copy.deepcopy(loop.networks["discriminator"])
        self.G.requires_grad_(True), self.D.requires_grad_(True)  # as pytorch/examples: never toggled
        self.channels_last = options and runtime.channels_last
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last), self.D.to(memory_format=torch.channels_last)
        fused = {"fused": True} if options and runtime.fused else {}
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999), **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999), **fused)
        self.autocast = runtime.autocast if options else contextlib.nullcontext
        self.batches, self.latent = batches, loop.objective.generator.latent_shape
        self.device = loop.device

    def step(self) -> None:
        real = next(self.batches)["image"]
        if self.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        z = torch.randn(real.shape[0], *self.latent, device=self.device)
        with self.autocast():
            fake = self.G(z)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d = F.softplus(-self.D(real).float()).mean() + F.softplus(self.D(fake.detach()).float()).mean()
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            loss_g = F.softplus(-self.D(fake).float()).mean()
        loss_g.backward()
        self.opt_g.step()


def time_hand(hand: HandLoop, steps: int) -> float:
    sync(hand.device)
    start = time.perf_counter()
    for _ in range(steps):
        hand.step()
    sync(hand.device)
    return (time.perf_counter() - start) / steps * 1000


class BareStep:
    """No maintenance at all (no logging, grids or checkpoints): what times the bare step."""

    def __init__(self, logger):
        self.logger = logger

    def start(self) -> None:
        pass

    def after_step(self, done) -> None:
        pass

    def save_last(self) -> None:
        pass


def time_ganlab(training, run_dir: str, steps: int, maintenance: bool) -> float:
    target = training.step + steps
    logger = RunLogger(Path(run_dir), target, start_step=training.step, progress=False)
    training.maintenance.logger = logger
    training.schedule.steps = target
    sync(training.device)
    start = time.perf_counter()
    if maintenance:
        training.train(target)
    else:
        train_steps(training.step_runner, BareStep(logger), training.state, training.runtime, target)
    sync(training.device)
    elapsed = time.perf_counter() - start
    logger.close()
    return elapsed / steps * 1000


def step_flops(hand: HandLoop) -> int:
    """Floating-point operations of one training step (forward and backward of both phases)."""
    counter = FlopCounterMode(display=False)
    with counter:
        hand.step()
    return counter.get_total_flops()


def peak(device: torch.device, precision: str) -> str:
    if device.type != "cuda":
        return "-"
    name = torch.cuda.get_device_name(device)
    known = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return f"{known['bf16' if precision == 'bf16' else 'fp32']:.0f}" if known else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=28, choices=[28, 32],
                        help="28: the MNIST DCGAN (1 channel); 32: the CIFAR DCGAN (3 channels)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    channels = 1 if args.resolution == 28 else 3
    with tempfile.TemporaryDirectory() as tmp:
        images, run_dir = Path(tmp) / "images", str(Path(tmp) / "run")
        count = write_image_folder(images, args.resolution, channels)
        config = ["dataset=folder", f"dataset.root={images}", f"dataset.resolution={args.resolution}",
                  f"dataset.channels={channels}", f"dataset.batch_size={args.batch_size}", "progress=false",
                  "model.generator.width=64", "model.discriminator.width=64",  # pytorch/examples: ngf = ndf = 64
                  "schedule.snapshot_every=0", f"device={device}", "schedule.steps=10"]
        loop = train(compose(config), run_dir)
        loaders = {"plain + DataLoader (fp32)": (data_loader_batches(images, args.resolution, channels,
                                                                      args.batch_size, device), False),
                   "plain, same data and options": (copy.deepcopy(loop.batches), True)}
        hands = {name: HandLoop(loop, batches, options) for name, (batches, options) in loaders.items()}
        flops = step_flops(HandLoop(loop, copy.deepcopy(loop.batches), False))
        for hand in hands.values():
            time_hand(hand, 10)  # warm-up: workers started, kernels chosen
        results = {name: [] for name in [*hands, "ganlab step", "ganlab, default intervals"]}
        for _ in range(args.rounds):
            for name, hand in hands.items():
                results[name].append(time_hand(hand, args.steps))
            results["ganlab step"].append(time_ganlab(loop, run_dir, args.steps, maintenance=False))
            # 500 steps: two grids and checkpoints (at 250 and 500), as in every 500 steps of a run
            results["ganlab, default intervals"].append(time_ganlab(loop, run_dir, 500, maintenance=True))
    runtime = loop.runtime
    med = {k: statistics.median(v) for k, v in results.items()}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{where}; torch {torch.__version__}; DCGAN {args.resolution} px, {channels} channel(s), batch "
          f"{args.batch_size}, {count} images; ganlab's options: precision {runtime.precision}, channels_last "
          f"{runtime.channels_last}, fused {runtime.fused}, compile {runtime.compile}; median of {args.rounds} "
          f"alternating rounds; {flops / 1e9:.2f} GFLOP per step; peak TFLOP/s: {peak(device, runtime.precision)}\n")
    print("| loop | ms/step | images/s | TFLOP/s | vs. plain + DataLoader | vs. plain, same data |")
    print("|---|---|---|---|---|---|")
    for name, ms in med.items():
        print(f"| {name} | {ms:.2f} | {args.batch_size / ms * 1000:,.0f} | {flops / ms / 1e9:.2f} | "
              f"{med['plain + DataLoader (fp32)'] / ms:.2f}x | {med['plain, same data and options'] / ms:.2f}x |")
    print(f"\ndefault intervals cost {(med['ganlab, default intervals'] / med['ganlab step'] - 1) * 100:+.1f}% "
          "on top of the bare step (log 25, grids and last.pt 250)")


if __name__ == "__main__":
    main()
