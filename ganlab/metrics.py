"""Classifier-based metrics of generated images: which classes a GAN produces, and how clearly.

A trained classifier run (e.g. `experiment=fashion_classifier_mlp`) is the feature network:
`metrics.classifier=PATH` rebuilds its network from the checkpoint's own config and judges the
fixed sample batch at every sample step. Logged as diagnostics/*:
  classes_covered   classes that are the top prediction for at least one sample (collapse: few)
  class_entropy     entropy of the predicted class histogram / log(K) (1 = all classes equally often)
  classifier_score  exp(E_x KL(p(y|x) || p(y))), the Inception Score with this classifier
"""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
from omegaconf import OmegaConf

from ganlab import checkpoint
from ganlab.build import build
from ganlab.errors import ConfigError


class ClassifierMetrics:
    def __init__(self, path: str, facts, prefixes: tuple[str, ...], sample_range: str, device: torch.device):
        state = checkpoint.load(path, "metrics.classifier")
        node = (state.get("config") or {}).get("model", {}).get("classifier")
        if node is None or "classifier" not in state["networks"]:
            raise ConfigError(f"metrics.classifier={path} is not a classifier run's checkpoint (its networks are "
                              f"{sorted(state['networks'])}); train one, e.g. experiment=fashion_classifier_mlp.")
        self.network = build(OmegaConf.create(node), "metrics.classifier", prefixes, **asdict(facts))
        try:
            self.network.load_state_dict(state["networks"]["classifier"])
        except RuntimeError as exc:
            raise ConfigError(f"metrics.classifier={path} was trained on data of another shape than this run's "
                              f"{facts.shape} ({str(exc).splitlines()[0]}).") from None
        self.network.to(device).eval().requires_grad_(False)
        trained_range = state["config"].get("dataset", {}).get("value_range", "tanh")
        self.rescale = sample_range == "tanh" and trained_range == "unit"

    @torch.no_grad()
    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        images = (samples.clamp(-1, 1) + 1) / 2 if self.rescale else samples
        probs = torch.softmax(self.network(images), dim=1)
        classes = probs.shape[1]
        histogram = torch.bincount(probs.argmax(1), minlength=classes).float() / probs.shape[0]
        present = histogram[histogram > 0]
        marginal = probs.mean(0, keepdim=True)
        kl = (probs * (probs.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1).mean()
        return {"classes_covered": float((histogram > 0).sum()),
                "class_entropy": max(0.0, float(-(present * present.log()).sum() / math.log(classes))),
                "classifier_score": float(kl.exp())}
