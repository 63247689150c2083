"""Differentiable augmentation of every discriminator input (DiffAugment, Zhao et al. 2020), with
the adaptive probability of ADA (Karras et al. 2020), for GANs trained on little data.

The same policy is applied to real and fake images, in D's updates and in G's, and gradients flow
through it to G: D never sees an un-augmented image, so it cannot learn the augmentation as a
feature of real data. Policies (`augment.policy`, any of them, in order):
  color        brightness, saturation and contrast, drawn per image
  translation  a shift of up to `translation` (1/8) of the size in each direction, the gap filled with zeros
  cutout       one square of `cutout` (1/2) of the size set to zero, at a random place per image
(DiffAugment's sizes; at 28 px they are 4 px of shift and a 14 px square, so the keys make them milder.)
Each image is augmented with probability `p` (each policy drawn separately). `adaptive=true`
adjusts p every `interval` steps from the overfitting heuristic r_t = E[sign(D(real))]: up when r_t
is above `target`, down when below, at a speed that takes p from 0 to 1 in `kimg` thousand real
images. p lives on the device (no host sync) and is saved in checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch

from ganlab.errors import ConfigError
from ganlab.trust.registry import buildable

POLICIES = ("color", "translation", "cutout")
RANGES = {"tanh": (-1.0, 1.0), "unit": (0.0, 1.0)}


def color(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Brightness, saturation and contrast, each drawn per image, kept within [low, high]."""
    n, span = x.shape[0], high - low
    shape = (n, 1, 1, 1)
    x = x + (torch.rand(shape, device=x.device, dtype=x.dtype) - 0.5) * span / 2  # +-0.5 on [-1, 1]
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(shape, device=x.device, dtype=x.dtype) * 2) + mean  # saturation 0..2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (torch.rand(shape, device=x.device, dtype=x.dtype) + 0.5) + mean  # contrast 0.5..1.5
    return x.clamp(low, high)


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size in x and y, filling the gap with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    # index into a copy padded by one zero pixel on every side; sources outside land on the padding
    source_rows = (rows + dy + 1).clamp(0, h + 1).expand(n, h, w)
    source_cols = (cols + dx + 1).clamp(0, w + 1).expand(n, h, w)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, source_rows, source_cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of `ratio` of the size per image, centred anywhere (it may reach past an edge)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - ch // 2, cx - cw // 2
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


@buildable("augmentation")
class DiffAugment:
    """`policy`: a list of POLICIES (empty: off); `p`: each image's probability per policy."""

    def __init__(self, policy: list[str] | tuple[str, ...] = (), p: float = 1.0, adaptive: bool = False,
                 target: float = 0.6, kimg: float = 500.0, interval: int = 4, value_range: str = "tanh",
                 translation: float = 0.125, cutout: float = 0.5):
        policy = [policy] if isinstance(policy, str) else list(policy)
        unknown = [name for name in policy if name not in POLICIES]
        if unknown:
            raise ConfigError(f"augment.policy={policy} has {unknown}, which is not a policy; use any of "
                              f"{', '.join(POLICIES)}, e.g. augment.policy=[translation,cutout].")
        if not 0 <= p <= 1:
            raise ConfigError(f"augment.p={p} must be a probability in [0, 1].")
        if adaptive and not policy:
            raise ConfigError("augment.adaptive=true but augment.policy is empty; name the augmentations, e.g. "
                              "augment.policy=[color,translation,cutout].")
        if value_range not in RANGES:
            raise ConfigError(f"augment.value_range={value_range!r} must be tanh or unit.")
        for key, ratio in (("translation", translation), ("cutout", cutout)):
            if not 0 < ratio <= 1:
                raise ConfigError(f"augment.{key}={ratio} is a fraction of the image size; use a value in (0, 1], "
                                  "e.g. 0.0625 for 1/16.")
        if kimg <= 0 or interval < 1:
            raise ConfigError(f"augment.kimg={kimg} and augment.interval={interval} must be positive.")
        self.policy, self.adaptive, self.target, self.kimg, self.interval = policy, adaptive, target, kimg, interval
        self.low, self.high = RANGES[value_range]
        self.translation_ratio, self.cutout_ratio = translation, cutout
        self.p = torch.tensor(0.0 if adaptive else float(p))  # ADA starts from 0 and finds its own
        self._signs = torch.zeros(())  # sum of sign(D(real)) since the last adjustment, and how many
        self._seen = torch.zeros(())
        self.rt = torch.zeros(())

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.policy or x.ndim != 4:
            return x
        p = self.p.to(x.device)
        for name in self.policy:
            augmented = color(x, self.low, self.high) if name == "color" else \
                translation(x, self.translation_ratio) if name == "translation" else cutout(x, self.cutout_ratio)
            chosen = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p
            x = torch.where(chosen, augmented, x)
        return x

    # --- the adaptive probability ---------------------------------------------------------
    def observe(self, real_logits: torch.Tensor) -> None:
        """D's logits on (augmented) real images of one D update: what r_t is measured on."""
        if self.adaptive:
            logits = real_logits.detach().flatten()
            self._signs = self._signs.to(logits.device) + logits.sign().sum()
            self._seen = self._seen.to(logits.device) + logits.numel()

    def begin_step(self, step: int) -> None:
        """Every `interval` steps: move p towards where r_t meets the target, by the images seen."""
        if not self.adaptive or step == 0 or step % self.interval:
            return
        self._sum_over_processes()
        seen = self._seen.clamp(min=1)
        self.rt = self._signs / seen
        self.p = (self.p.to(seen.device) + torch.sign(self.rt - self.target) * self._seen / (self.kimg * 1000)).clamp(0, 1)
        self._signs, self._seen = torch.zeros_like(self._signs), torch.zeros_like(self._seen)

    def _sum_over_processes(self) -> None:
        """Under torchrun every process saw its own real logits: r_t is the sign statistic over all of
        them (as StyleGAN2-ADA reduces it), so p moves the same way on every rank and stays equal."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            both = torch.stack([self._signs.reshape(()), self._seen.reshape(())]).double()
            dist.all_reduce(both)
            self._signs, self._seen = both[0].to(self._signs.dtype), both[1].to(self._seen.dtype)

    def statistics(self) -> dict[str, torch.Tensor]:
        """Logged as augment/p and augment/rt (ADA's r_t, of the last adjustment)."""
        values = {"augment/p": self.p}
        if self.adaptive:
            values["augment/rt"] = self.rt
        return values

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p.detach().cpu(), "signs": self._signs.detach().cpu(), "seen": self._seen.detach().cpu(),
                "rt": self.rt.detach().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p, self._signs, self._seen, self.rt = state["p"], state["signs"], state["seen"], state["rt"]
