"""ganlab's training step against a hand-written loop with the identical networks, loss,
optimizers and batches (pytorch/examples' DCGAN loop: one G forward per step, its fakes reused
by the G step). Rounds alternate between the two so that machine noise hits both alike.

    python -m benchmarks.loop_vs_hand [--steps 150] [--rounds 4] [--device auto]

Prints ms/step for the hand loop, ganlab's bare step (no maintenance), and ganlab at its default
intervals (log every 25, grids and last.pt every 250 steps), with the ratios.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import compose_config  # noqa: E402  (the real config tree, as the CLI composes it)

from ganlab.checks import pick_device  # noqa: E402
from ganlab.logging import RunLogger  # noqa: E402
from ganlab.train import train  # noqa: E402

# DCGAN at 28 px with the hand loop's widths (64), batch 64, BCE, Adam 2e-4 (0.5, 0.999)
CONFIG = ["dataset.resolution=28", "dataset.batch_size=64", "progress=false", "schedule.snapshot_every=0"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class HandLoop:
    """The plain loop: the same G, D (copies), Adam settings and data batches as ganlab's run."""

    def __init__(self, loop):
        self.G = copy.deepcopy(loop.networks["generator"])
        self.D = copy.deepcopy(loop.networks["discriminator"])
        self.G.requires_grad_(True), self.D.requires_grad_(True)  # as pytorch/examples: never toggled
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.batches, self.latent = copy.deepcopy(loop.batches), loop.objective.generator.latent_shape
        self.device = loop.device

    def step(self) -> None:
        real = next(self.batches)["image"]
        z = torch.randn(real.shape[0], *self.latent, device=self.device)
        fake = self.G(z)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d = F.softplus(-self.D(real)).mean() + F.softplus(self.D(fake.detach())).mean()
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g = F.softplus(-self.D(fake)).mean()
        loss_g.backward()
        self.opt_g.step()


def time_hand(hand: HandLoop, steps: int) -> float:
    sync(hand.device)
    start = time.perf_counter()
    for _ in range(steps):
        hand.step()
    sync(hand.device)
    return (time.perf_counter() - start) / steps * 1000


def time_ganlab(loop, run_dir: str, steps: int, maintenance: bool) -> float:
    loop.logger = RunLogger(Path(run_dir), loop.step + steps, start_step=loop.step, progress=False)
    loop.schedule.steps = loop.step + steps
    if not maintenance:
        loop._maintain = lambda: None  # the bare step: no logging, grids or checkpoints at all
    sync(loop.device)
    start = time.perf_counter()
    loop.run()
    sync(loop.device)
    elapsed = time.perf_counter() - start
    loop.logger.close()
    if not maintenance:
        del loop._maintain
    return elapsed / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as run_dir:
        loop = train(compose_config([*CONFIG, f"device={device}", "schedule.steps=10"], shrink=False), run_dir)
        hand = HandLoop(loop)
        time_hand(hand, 10)  # warm-up
        results = {"hand": [], "ganlab": [], "ganlab_maintained": []}
        for _ in range(args.rounds):
            results["hand"].append(time_hand(hand, args.steps))
            results["ganlab"].append(time_ganlab(loop, run_dir, args.steps, maintenance=False))
            # 500 steps: two grids and checkpoints (at 250 and 500), as in every 500 steps of a run
            results["ganlab_maintained"].append(time_ganlab(loop, run_dir, 500, maintenance=True))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; DCGAN 28 px, "
          f"widths 64, batch 64; median of {args.rounds} alternating rounds")
    print(f"hand loop                   {med['hand']:7.1f} ms/step")
    print(f"ganlab step                 {med['ganlab']:7.1f} ms/step   hand/ganlab = {med['hand'] / med['ganlab']:.3f}")
    print(f"ganlab, default maintenance {med['ganlab_maintained']:7.1f} ms/step   overhead "
          f"{(med['ganlab_maintained'] / med['ganlab'] - 1) * 100:+.1f}% (log 25, grids and last.pt 250)")


if __name__ == "__main__":
    main()
