"""The classifier objective: cross-entropy in one phase, test loss and accuracy on evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganlab.objectives.base import Objective, Phase
from ganlab.trust.registry import buildable


@buildable("objective")
class ClassifierObjective(Objective):
    wants_evaluation = True

    def __init__(self, classifier, label_smoothing: float = 0.0):
        self.networks = {"classifier": classifier}
        self.phases = [Phase("C", "classifier")]
        self.label_smoothing = label_smoothing

    def loss(self, phase, batch):
        logits = self.networks["classifier"](batch["image"])
        loss = F.cross_entropy(logits, batch["label"], label_smoothing=self.label_smoothing)
        return loss, {"accuracy": (logits.argmax(1) == batch["label"]).float().mean()}

    @torch.no_grad()
    def evaluate(self, batches, networks, final):
        classifier = networks["classifier"]
        loss, correct, count = 0.0, 0, 0
        for batch in batches():
            logits = classifier(batch["image"])
            loss += F.cross_entropy(logits, batch["label"], reduction="sum").item()
            correct += (logits.argmax(1) == batch["label"]).sum().item()
            count += batch["label"].shape[0]
        return {"loss": loss / max(count, 1), "accuracy": correct / max(count, 1)}, {}
