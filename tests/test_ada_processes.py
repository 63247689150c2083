"""ADA's p under many processes (issue 34): r_t is summed over every process before p moves, so
both ranks hold the same p, equal to one process that saw all the real logits."""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp

from ganlab.objectives.augment import DiffAugment

STEPS, INTERVAL = 12, 4


def logits_of(rank: int, step: int) -> torch.Tensor:
    """Each rank's half of a global batch: rank 0's D says 'real' more often than rank 1's."""
    generator = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(8, generator=generator) + (1.0 if rank == 0 else -0.6)


def walk(augment: DiffAugment, ranks: list[int]) -> list[float]:
    ps = []
    for step in range(STEPS):
        augment.begin_step(step)
        for rank in ranks:
            augment.observe(logits_of(rank, step))
        ps.append(float(augment.p))
    return ps


def _rank(rank: int, world: int, port: int, out) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        augment = DiffAugment(policy=["translation"], adaptive=True, kimg=0.05, interval=INTERVAL)
        out[rank] = walk(augment, [rank])
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_hold_the_same_p_as_one_process_over_the_global_batches():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_rank, args=(2, port, out), nprocs=2, join=True)
    one = walk(DiffAugment(policy=["translation"], adaptive=True, kimg=0.05, interval=INTERVAL), [0, 1])
    assert out[0] == out[1]  # the ranks never drift apart
    assert out[0] == pytest.approx(one)  # ... and follow the whole global batch
    alone = walk(DiffAugment(policy=["translation"], adaptive=True, kimg=0.05, interval=INTERVAL), [0])
    assert alone != one  # (rank 0's own logits alone would have moved p elsewhere: the test can fail)
