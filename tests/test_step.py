"""The step on its own: phases with repeats and intervals, and the adaptive rule's arithmetic."""

from __future__ import annotations

import torch
from torch import nn

from ganlab.objectives.base import Objective, Phase
from ganlab.training.runtime import build_runtime
from ganlab.training.schedule import AdaptiveRule, Schedule
from ganlab.training.step import Step


class TwoPhases(Objective):
    """A real objective of two linear maps: `every` runs each step, `lazy` every third (as lazy R1 would)."""

    def __init__(self):
        self.networks = {"a": nn.Linear(1, 1), "b": nn.Linear(1, 1)}
        self.phases = [Phase("every", "a", repeats=2), Phase("lazy", "b", uses_data=False, interval=3)]
        self.calls: list[tuple[int, str]] = []
        self.step = 0

    def begin_step(self, step: int) -> None:
        self.step = step

    def loss(self, phase, batch):
        self.calls.append((self.step, phase))
        net = self.networks["a" if phase == "every" else "b"]
        return net(batch["x"]).pow(2).mean(), {}


def batches():
    while True:
        yield {"x": torch.ones(4, 1)}


def test_a_phase_with_an_interval_runs_every_nth_step_only():
    objective = TwoPhases()
    optimizers = {name: torch.optim.SGD(net.parameters(), lr=0.1) for name, net in objective.networks.items()}
    step = Step(objective, optimizers, batches(), Schedule(steps=7), build_runtime(torch.device("cpu")), 4, {})
    b_before = objective.networks["b"].weight.detach().clone()
    done = [step(i) for i in range(7)]
    assert [s for s, phase in objective.calls if phase == "lazy"] == [0, 3, 6]
    assert [s for s, phase in objective.calls if phase == "every"] == [s for s in range(7) for _ in range(2)]
    assert [sum("loss/lazy" in r for r in d.records) for d in done] == [1, 0, 0, 1, 0, 0, 1]
    assert [d.images for d in done] == [8] * 7  # two data updates of 4 a step; the lazy phase reads none
    assert not torch.equal(objective.networks["b"].weight, b_before)


def test_the_adaptive_rule_counts_leading_gaps_beyond_its_margin():
    rule = AdaptiveRule(phase="G", margin=1.0, max_extra=3)
    assert rule.extra_updates([]) == 0  # the first step has no gaps yet
    assert rule.extra_updates([2.0, 1.5, 0.5, 3.0]) == 2  # stops at the first gap within the margin
    assert rule.extra_updates([5.0, 5.0, 5.0, 5.0]) == 3  # at most max_extra
    assert rule.extra_updates([0.2, 5.0]) == 0
