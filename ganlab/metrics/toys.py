"""The 2-d mixtures' metrics (the VEEGAN / PacGAN protocol, on 2,500 samples)."""

from __future__ import annotations

import torch

from ganlab.metrics.registry import Inputs, register


@register("toy", needs="toy", higher_is_better={"modes_covered": True, "high_quality": True, "reverse_kl": False})
def toy_modes(inputs: Inputs) -> dict[str, float]:
    """Modes with a sample within 3 std, the share of samples within 3 std of a mode, and the reverse
    KL between the samples' mode histogram (nearest mode) and the data's (uniform)."""
    mixture, points = inputs.mixture, inputs.generated.float()
    values = mixture.mode_coverage(points)
    nearest = torch.cdist(points, mixture.modes).argmin(1)
    histogram = torch.bincount(nearest, minlength=len(mixture.modes)).double() / len(points)
    present = histogram[histogram > 0]
    values["reverse_kl"] = float((present * (present * len(mixture.modes)).log()).sum())
    return values
