"""Feature statistics shared by the metrics: Frechet distance, k-NN precision / recall, and a
cache of the real side named by a hash of what produced it (data set, split, size, network)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import torch

from ganlab.records.cache import load_verified, save_verified, tensor_sha256  # noqa: F401 - callers' import path


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), in float64 through symmetric eigensolves."""
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    values, vectors = torch.linalg.eigh(sigma1)
    root1 = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    middle = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + sigma1.trace() + sigma2.trace() - 2 * middle)


def mean_and_covariance(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features = features.double()
    return features.mean(0), torch.cov(features.T)


def knn_radii(features: torch.Tensor, k: int = 3, chunk: int = 2048) -> torch.Tensor:
    """Distance of each point to its k-th nearest neighbour among the others."""
    radii = []
    for start in range(0, len(features), chunk):
        distances = torch.cdist(features[start:start + chunk], features)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at 0
    return torch.cat(radii)


def coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> float:
    """Share of `points` inside at least one ball (centre, radius)."""
    inside = []
    for start in range(0, len(points), chunk):
        inside.append((torch.cdist(points[start:start + chunk], centres) <= radii[None]).any(1))
    return float(torch.cat(inside).float().mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3,
                     real_radii: torch.Tensor | None = None) -> dict[str, float]:
    """Kynkaanniemi et al. (2019): precision = fakes inside the real k-NN manifold, recall = reals
    inside the fake one."""
    real, fake = real.float(), fake.float()
    real_radii = knn_radii(real, k) if real_radii is None else real_radii
    return {"precision": coverage(fake, real, real_radii), "recall": coverage(real, fake, knn_radii(fake, k))}


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> float:
    """KID (Binkowski et al. 2018), as StyleGAN's metrics compute it: the unbiased MMD^2 with the
    cubic polynomial kernel (x.y / d + 1)^3, averaged over `subsets` random subsets of each side."""
    real, fake = real.double(), fake.double()
    d, m = real.shape[1], min(subset_size, len(real), len(fake))
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        x = fake[torch.randperm(len(fake), generator=generator)[:m]]
        y = real[torch.randperm(len(real), generator=generator)[:m]]
        within = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        between = (x @ y.T / d + 1) ** 3
        total += float((within.sum() - within.diagonal().sum()) / (m - 1) - between.sum() * 2 / m)
    return total / subsets / m


def cached(cache_dir: Path, description: dict[str, Any], compute: Callable[[], dict[str, torch.Tensor]]):
    """(`compute()`, whether it came from the cache), computed once per `description`, which should
    name the data by content (`tensor_sha256` of the real images): other files under the same root
    never reuse stale statistics. Verified and tensors-only, see `ganlab.records.cache`."""
    key = hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"real_{key}.pt"
    value = load_verified(path)
    if isinstance(value, dict):
        return value, True
    value = compute()
    save_verified(value, path, description)
    return value, False
