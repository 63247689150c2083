"""Quality at equal steps: ganlab's MNIST defaults against the hand-written DCGAN of the common homework
shape (pytorch/examples' loop: G 100 -> 256x7x7 -> 128x14x14 -> 1x28x28 with BatchNorm and ReLU; D 64 ->
128 with LeakyReLU 0.2; BCE; Adam 2e-4, betas (0.5, 0.999); N(0, 0.02) init), both trained on the
10,000 MNIST test images for the same steps of batch 64, judged alike: classifier FD and class KL of
2,000 samples against those images, by an MLP classifier trained on the MNIST training split.

    python -m benchmarks.defaults_vs_hand --data ../shared/data [--steps 2000] [--seeds 0,1] [--row 'model.generator.width=64'] [--skip hand,defaults]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import ganlab, mnist_judge
from ganlab.data.memory import pixels_to_float
from ganlab.data.mnist import load_mnist
from ganlab.records.logging import read_metrics
from ganlab.metrics.measurer import REAL_LIMIT, cache_dir, real_images
from ganlab.training.measuring import open_judge
from ganlab.metrics.registry import Inputs, run_metrics
from ganlab.records.plots import to_uint8

NAMES = ["classifier_fd", "classifier"]


def hand_networks() -> tuple[nn.Module, nn.Module]:
    def init(m: nn.Module) -> None:  # pytorch/examples' weights_init
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02), nn.init.zeros_(m.bias)

    G = nn.Sequential(nn.Unflatten(1, (100, 1, 1)), nn.ConvTranspose2d(100, 256, 7, 1, 0, bias=False),
                      nn.BatchNorm2d(256), nn.ReLU(True), nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False),
                      nn.BatchNorm2d(128), nn.ReLU(True), nn.ConvTranspose2d(128, 1, 4, 2, 1), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(64, 128, 4, 2, 1, bias=False),
                      nn.BatchNorm2d(128), nn.LeakyReLU(0.2, True), nn.Conv2d(128, 1, 7, 1, 0), nn.Flatten())
    return G.apply(init), D.apply(init)


def train_hand(images: torch.Tensor, steps: int, seed: int) -> nn.Module:
    """The homework loop on `images` (uint8, the same tensor ganlab reads: the IDX files ship gzipped,
    which torchvision's MNIST class does not read), scaled to [-1, 1] as Normalize(0.5, 0.5) does."""
    torch.manual_seed(seed)
    G, D = hand_networks()
    loader = DataLoader(TensorDataset(pixels_to_float(images, "tanh")), batch_size=64, shuffle=True, drop_last=True)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce, step = nn.BCEWithLogitsLoss(), 0
    while step < steps:
        for (real,) in loader:
            fake = G(torch.randn(len(real), 100))
            opt_d.zero_grad()
            loss_d = bce(D(real), torch.ones(len(real), 1)) + bce(D(fake.detach()), torch.zeros(len(real), 1))
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            bce(D(fake), torch.ones(len(real), 1)).backward()
            opt_g.step()
            step += 1
            if step == steps:
                break
    return G


def measure(G: nn.Module, judge, real, seed: int, n: int = 2000) -> dict[str, float]:
    G.eval()
    with torch.no_grad():
        z = torch.randn(n, 100, generator=torch.Generator().manual_seed(seed))
        images = to_uint8(G(z), "tanh")
    inputs = Inputs(images, None, lambda: real, "bench:mnist-test", torch.device("cpu"), cache_dir(), judge)
    return run_metrics(NAMES, inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--row", action="append", default=[],
                        help="a further ganlab row: overrides separated by spaces (repeatable), e.g. "
                             "'model.generator.width=64' (the default before dataset=mnist had its own)")
    parser.add_argument("--skip", default="", help="rows not to run: hand, defaults or both (hand,defaults), "
                                                     "to measure only the --row ones")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_defaults_vs_hand"))
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    root, out, seeds = args.data.resolve(), args.out.resolve(), [int(s) for s in args.seeds.split(",")]
    path = str(mnist_judge(root, out) / "checkpoints" / "last.pt")
    test = load_mnist(str(root), split="test")
    judge = open_judge(path, test.facts, torch.device("cpu"), (), "metrics.classifier")
    real = real_images(test, REAL_LIMIT)
    ganlab_rows = {**({} if "defaults" in skip else {"ganlab train dataset=mnist": []}),
                   **{row: row.split() for row in args.row}}
    rows: dict[str, list[dict[str, float]]] = {}
    for seed in seeds:
        saved = out / f"hand_seed{seed}.json"  # each result is kept: a rerun measures only what is missing
        if "hand" not in skip:
            if not saved.exists():
                start = time.perf_counter()
                G = train_hand(real[0], args.steps, seed)
                saved.write_text(json.dumps({**measure(G, judge, real, seed), "seconds": time.perf_counter() - start}))
            rows.setdefault("hand-written loop", []).append(json.loads(saved.read_text()))
        for name, overrides in ganlab_rows.items():
            run_dir = out / f"{'_'.join(overrides) or 'defaults'}_seed{seed}".replace("=", "-")
            if not (run_dir / "wall_seconds.txt").exists():
                seconds = ganlab("dataset=mnist", f"dataset.root={root}", "dataset.split=test", *overrides,
                                 f"seed={seed}", f"schedule.steps={args.steps}", f"schedule.eval_every={args.steps}",
                                 f"metrics.names=[{','.join(NAMES)}]", "metrics.n=2000", f"metrics.classifier={path}",
                                 "progress=false", "device=cpu", f"hydra.run.dir={run_dir}")
                (run_dir / "wall_seconds.txt").write_text(f"{seconds:.0f}\n")
            last = [r for r in read_metrics(run_dir) if "metrics/classifier_fd" in r][-1]
            rows.setdefault(name, []).append({**{k[8:]: v for k, v in last.items() if k.startswith("metrics/")},
                                              "seconds": float((run_dir / "wall_seconds.txt").read_text())})
    print(f"MNIST test split (10,000 images), {args.steps} steps of batch 64, seeds {args.seeds}; 2,000 samples "
          "against the 10,000 images, MLP judge trained on the training split; mean (std) over seeds\n")
    print("| loop | classifier FD [each seed] | class KL | classes covered | wall time |\n|---|---|---|---|---|")
    for name, results in rows.items():
        def cell(key: str, fmt: str = "{:.3f}") -> str:
            values = [r[key] for r in results]
            spread = f" ({statistics.stdev(values):.3f})" if len(values) > 1 else ""
            return fmt.format(statistics.mean(values)) + spread
        each = ", ".join(f"{r['classifier_fd']:.2f}" for r in results)
        print(f"| {name} | {cell('classifier_fd', '{:.2f}')} [{each}] | {cell('class_kl')} "
              f"| {cell('classes_covered', '{:.0f}')} | {cell('seconds', '{:.0f}')} s |")

if __name__ == "__main__":
    main()
