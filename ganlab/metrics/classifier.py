"""Metrics with a ganlab classifier run as the feature network (`classifier=PATH`): they work
offline, on any data set a classifier was trained on, where Inception weights are not at hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ganlab.metrics.registry import Inputs, register
from ganlab.data.memory import pixels_to_float
from ganlab.data.stacked import MODES, mode_of
from ganlab.errors import ConfigError
from ganlab.records.plots import to_uint8
from ganlab.metrics.stats import (cached, frechet_distance, knn_radii, mean_and_covariance, precision_recall,
                                  tensor_sha256)


@dataclass
class Judge:
    """A trained classifier, the pixel range it was trained on, and its weights' identity."""

    network: nn.Module
    value_range: str
    identity: str  # path and checksum: names the feature network in eval.json and in caches
    per_channel: bool = False  # a 1-channel classifier judging each channel (Stacked MNIST: 3 digits an image)

    @torch.no_grad()
    def outputs(self, images: torch.Tensor, device: torch.device, batch: int = 500):
        """(probabilities, penultimate features) of uint8 images, in batches."""
        probs, features = [], []
        for start in range(0, len(images), batch):
            x = pixels_to_float(images[start:start + batch].to(device), self.value_range)
            hidden = self.network.features(x)
            probs.append(torch.softmax(self.network.head(hidden), 1).cpu())
            features.append(hidden.flatten(1).cpu())
        return torch.cat(probs), torch.cat(features)

    def diagnose(self, samples: torch.Tensor, value_range: str) -> dict[str, float]:
        """Classes covered, class entropy and classifier score of a batch of samples in `value_range`,
        seen as the pixels they become (what `ganlab eval` measures, whatever range each side uses);
        for a per-channel judge, the stacked modes covered and their KL to uniform."""
        images = to_uint8(samples, value_range)
        if self.per_channel:
            return mode_statistics(self.channel_modes(images, samples.device))
        return class_statistics(self.outputs(images, samples.device)[0])[0]

    def channel_modes(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Each image's mode: the digit of each channel by this 1-channel classifier (100 r + 10 g + b)."""
        digits = [self.outputs(images[:, c:c + 1], device)[0].argmax(1) for c in range(images.shape[1])]
        return mode_of(torch.stack(digits, dim=1))


def _generated(inputs: Inputs):
    if inputs.classifier.per_channel:
        raise ConfigError("this classifier judges one channel of the run's images (a digit a channel, as Stacked "
                          "MNIST); measure those runs with metrics=[stacked_modes].")
    key = ("generated", id(inputs.generated))
    if key not in inputs.protocol.setdefault("_memo", {}):
        inputs.protocol["_memo"][key] = inputs.classifier.outputs(inputs.generated, inputs.device)
    return inputs.protocol["_memo"][key]


def _real(inputs: Inputs) -> dict[str, torch.Tensor]:
    """The real side's features, statistics and class histogram, cached per data set and classifier."""
    def compute():
        probs, features = inputs.classifier.outputs(images, inputs.device)
        mu, sigma = mean_and_covariance(features)
        classes = probs.shape[1]
        return {"mu": mu, "sigma": sigma, "features": features, "radii": knn_radii(features.float()),
                "histogram": torch.bincount(probs.argmax(1), minlength=classes).double() / len(probs)}

    if inputs.real is None:
        raise ConfigError("this metric compares with real images, but the run's data set is not at hand; set "
                          "dataset_root=PATH to where it lies on this machine.")
    memo = inputs.protocol.setdefault("_memo", {})
    if "real" in memo:  # several metrics of one measurement share it (and its provenance)
        return memo["real"]
    images, labels = inputs.real()
    value, hit = cached(inputs.cache_dir, {"real": inputs.real_key, "feature_network": inputs.classifier.identity,
                                           "images_sha256": tensor_sha256(images, labels)}, compute)
    inputs.protocol["real_statistics"] = "cache" if hit else "computed"
    inputs.protocol["real_count"] = len(value["features"])
    memo["real"] = value
    return value


def class_statistics(probs: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
    """Classes covered (some sample's top prediction), the normalised entropy of the predicted-class
    histogram (1 = all classes equally often) and the classifier score exp(E KL(p(y|x) || p(y)));
    and the histogram itself."""
    k = probs.shape[1]
    histogram = torch.bincount(probs.argmax(1), minlength=k).double() / len(probs)
    present = histogram[histogram > 0]
    marginal = probs.mean(0, keepdim=True)
    score = (probs * (probs.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1).mean().exp()
    return {"classes_covered": float((histogram > 0).sum()),
            "class_entropy": max(0.0, float(-(present * present.log()).sum() / math.log(k))),
            "classifier_score": float(score)}, histogram


def mode_statistics(modes: torch.Tensor) -> dict[str, float]:
    """Stacked MNIST: modes covered of 1,000, and KL(the samples' mode histogram || uniform) (PacGAN's Table 2)."""
    histogram = torch.bincount(modes.long().flatten(), minlength=MODES).double() / modes.numel()
    present = histogram[histogram > 0]
    return {"stacked_modes": float((histogram > 0).sum()),
            "stacked_kl": float((present * (present * MODES).log()).sum())}


# registered first: with metrics.names=auto, the FD decides best.pt
@register("classifier_fd", needs="classifier", higher_is_better={"classifier_fd": False})
def classifier_fd(inputs: Inputs) -> dict[str, float]:
    """Frechet distance between real and generated features in the classifier's penultimate layer."""
    _, features = _generated(inputs)
    real = _real(inputs)
    mu, sigma = mean_and_covariance(features)
    return {"classifier_fd": frechet_distance(mu, sigma, real["mu"], real["sigma"])}


@register("classifier", needs="classifier",
          higher_is_better={"classes_covered": True, "class_entropy": True, "classifier_score": True,
                            "class_kl": False})
def classes(inputs: Inputs) -> dict[str, float]:
    """Which classes the samples are (the classifier's top prediction), how evenly, and how clearly.

    class_kl: KL(sample class histogram || the real held-out images' histogram), when they are at hand."""
    probs, _ = _generated(inputs)
    values, histogram = class_statistics(probs)
    present = histogram[histogram > 0]
    inputs.protocol["class_histogram"] = [round(float(h), 4) for h in histogram]
    if inputs.real is not None:
        data = _real(inputs)["histogram"].clamp_min(1e-12)
        values["class_kl"] = float((present * (present.log() - data[histogram > 0].log())).sum())
    return values


@register("classifier_pr", needs="classifier",
          higher_is_better={"classifier_precision": True, "classifier_recall": True})
def classifier_pr(inputs: Inputs) -> dict[str, float]:
    """Precision and recall (k = 3) in the classifier's feature space."""
    _, features = _generated(inputs)
    real = _real(inputs)
    values = precision_recall(real["features"], features, k=3, real_radii=real["radii"])
    return {f"classifier_{k}": v for k, v in values.items()}


@register("class_accuracy", needs="classifier", higher_is_better={"class_accuracy": True})
def class_accuracy(inputs: Inputs) -> dict[str, float]:
    """Conditional models: is a sample asked for class k classified as k? (mean, and per class in eval.json)"""
    labels = inputs.generated_labels
    if labels is None or labels.dtype != torch.long:
        return {}
    probs, _ = _generated(inputs)
    right = probs.argmax(1) == labels
    inputs.protocol["class_accuracy_per_class"] = {int(c): round(float(right[labels == c].float().mean()), 4)
                                                   for c in labels.unique()}
    return {"class_accuracy": float(right.float().mean())}


@register("stacked_modes", needs="stacked", higher_is_better={"stacked_modes": True, "stacked_kl": False})
def stacked_modes(inputs: Inputs) -> dict[str, float]:
    """Stacked MNIST: the modes (of 1,000) the samples cover, each channel's digit labelled by an MNIST
    classifier, and KL(the mode histogram || uniform); PacGAN's protocol uses 26,000 samples (eval n=26000)."""
    if inputs.classifier is None or not inputs.classifier.per_channel:
        raise ConfigError("metric stacked_modes needs 3-channel images (dataset=stacked_mnist) and a 1-channel "
                          "MNIST classifier run (classifier=PATH) to label each channel.")
    return mode_statistics(inputs.classifier.channel_modes(inputs.generated, inputs.device))
