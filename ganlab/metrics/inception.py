"""Inception metrics: FID, KID, IS and precision / recall (k = 3) in InceptionV3 features, the
numbers papers report.

Offline (the `ganlab[fid]` extra, `metrics/nvidia_inception.py`): FID, KID and precision/recall in
the features of NVIDIA's inception-2015-12-05 network, computed here, the real side's features
cached (tensors-only, verified). IS needs the network's logits, which that export lacks.
With `inception_weights=PATH` (or without the `fid` extra), torch-fidelity (`ganlab[metrics]`).

Weights: `inception_weights=PATH` (a local copy of torch-fidelity's
weights-inception-2015-12-05-6726825d.pth), else torch's hub cache, else torch-fidelity's usual
download. They are read with `weights_only=True` (a weights file runs no code) and handed to
torch-fidelity as a private copy made for that call. torch-fidelity's own feature cache is off: it
unpickles its files, so the real side's features are computed again for each evaluation.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ganlab.records.cache import file_sha256, load_tensors, tensor_sha256
from ganlab.errors import ConfigError
from ganlab.metrics import nvidia_inception
from ganlab.metrics.registry import Inputs, register
from ganlab.metrics.stats import (cached, frechet_distance, kernel_inception_distance, knn_radii, mean_and_covariance,
                                  precision_recall)

URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
FILE = URL.rsplit("/", 1)[1]
# our metric name -> (torch-fidelity switch, its result keys -> ours, higher is better)
FAMILY = {
    "fid": ("fid", {"frechet_inception_distance": ("fid", False)}),
    "kid": ("kid", {"kernel_inception_distance_mean": ("kid", False)}),
    "is": ("isc", {"inception_score_mean": ("inception_score", True)}),
    "pr": ("prc", {"precision": ("precision", True), "recall": ("recall", True)}),
}


def hub_copy() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / FILE


def weights_at_hand(path: str | None) -> bool:
    """Whether torch-fidelity's weights are here (all four metrics can run)."""
    return bool(path) or hub_copy().is_file()


def source_weights(path: str | None) -> Path:
    """The Inception weights file to read: `inception_weights=PATH`, else the hub copy (fetched if
    it can be)."""
    source = Path(path).expanduser() if path else hub_copy()
    if not source.is_file():
        if path:
            raise ConfigError(f"inception_weights={path} does not exist; point it at a copy of {FILE}.")
        try:
            torch.hub.load_state_dict_from_url(URL, progress=False, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - offline: no route, DNS, proxy refusals
            raise ConfigError(f"the Inception metrics need InceptionV3 weights, and they could not be downloaded "
                              f"here ({type(exc).__name__}). Fetch {URL} on a machine with internet, copy it here, "
                              f"and pass inception_weights=/path/to/{FILE} (or put it in {hub_copy().parent}).") from None
    return source


@contextlib.contextmanager
def clean_weights(path: str | None) -> Iterator[tuple[Path, str]]:
    """(a weights file torch-fidelity may load, the source's sha256). torch-fidelity unpickles its
    weights file (`weights_only=False`), so it never gets a file someone else could have written:
    the tensors are read safely (`weights_only=True`) and written to a private temporary folder
    for this one call, never to a shared cache that a predictable name would let others replace."""
    source = source_weights(path)
    sha = file_sha256(source)
    try:
        state = load_tensors(source)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"inception_weights={source} could not be read as plain weights ({type(exc).__name__})."
                          f" Use torch-fidelity's {FILE}.") from None
    if not isinstance(state, dict):
        raise ConfigError(f"inception_weights={source} is not a state dict of tensors; use torch-fidelity's {FILE}.")
    with tempfile.TemporaryDirectory(prefix="ganlab-inception-") as folder:  # mode 0700: this user's alone
        clean = Path(folder) / "weights.pt"
        torch.save({k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, clean)
        yield clean, sha


class _RGB(Dataset):
    """uint8 images (N, C, H, W) as the 3-channel uint8 tensors torch-fidelity reads."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image


def uses_bundled(weights: str | None) -> bool:
    """The offline network (the `fid` extra) unless torch-fidelity's weights were named."""
    return not weights and nvidia_inception.at_hand()


def _bundled(inputs: Inputs, wanted: list[str]) -> dict[str, float]:
    """FID, KID and precision/recall in the bundled network's features; the real side cached."""
    if "is" in wanted:
        raise ConfigError("metrics=[is]: the Inception Score needs the network's logits, which the offline network "
                          "(ganlab[fid]) does not give; pass inception_weights=PATH (torch-fidelity's weights) for it, "
                          "or measure fid, kid and pr.")
    real, _ = inputs.real()
    bf16 = nvidia_inception.uses_bfloat16(inputs.device, inputs.inception_precision)
    precision = "bf16 autocast" if bf16 else "fp32"

    def compute():
        found = nvidia_inception.features(real, inputs.device, bfloat16=bf16).float()
        mu, sigma = mean_and_covariance(found)
        return {"features": found, "mu": mu, "sigma": sigma, "radii": knn_radii(found)}

    side, hit = cached(inputs.cache_dir, {"real": inputs.real_key, "feature_network": nvidia_inception.NAME,
                                          "images_sha256": tensor_sha256(real),
                                          **({"precision": precision} if bf16 else {})}, compute)  # fp32: as before
    fake = nvidia_inception.features(inputs.generated, inputs.device, bfloat16=bf16).float()
    values: dict[str, float] = {}
    if "fid" in wanted:
        mu, sigma = mean_and_covariance(fake)
        values["fid"] = frechet_distance(mu, sigma, side["mu"], side["sigma"])
    if "kid" in wanted:
        values["kid"] = kernel_inception_distance(side["features"], fake)
    if "pr" in wanted:
        values.update(precision_recall(side["features"], fake, k=3, real_radii=side["radii"]))
    inputs.protocol.update({"feature_network": nvidia_inception.NAME, "resize": nvidia_inception.RESIZE,
                            "precision": precision,
                            "real_count": len(real), "real_statistics": "cache" if hit else "computed"})
    return values


def _compute(inputs: Inputs) -> dict[str, float]:
    """Every requested Inception metric at once (features are extracted once)."""
    memo = inputs.protocol.setdefault("_memo", {})
    if "inception" in memo:
        return memo["inception"]
    if inputs.real is None:
        raise ConfigError("the Inception metrics compare with real images, but the run's data set is not at hand; "
                          "set dataset_root=PATH to where it lies on this machine.")
    wanted = [n for n in inputs.protocol.get("requested", FAMILY) if n in FAMILY]
    if uses_bundled(inputs.inception_weights):
        memo["inception"] = _bundled(inputs, wanted)
        return memo["inception"]
    try:
        import torch_fidelity
    except ImportError:
        raise ConfigError("the Inception metrics need torch-fidelity (pip install 'ganlab[metrics]') and its "
                          "weights, or the offline network: pip install 'ganlab[fid]'.") from None
    real, _ = inputs.real()
    with clean_weights(inputs.inception_weights) as (weights, sha):
        result = torch_fidelity.calculate_metrics(
            input1=_RGB(inputs.generated), input2=_RGB(real), cuda=inputs.device.type == "cuda",
            cache=False,  # torch-fidelity's feature cache is unpickled when read: never used
            feature_extractor="inception-v3-compat", feature_layer_prc="2048",  # precision/recall in Inception features
            feature_extractor_weights_path=str(weights), verbose=False, batch_size=64,
            kid_subset_size=min(1000, len(real), len(inputs.generated)), prc_neighborhood=3,
            **{FAMILY[n][0]: True for n in wanted})
    inputs.protocol["inception_weights_sha256"] = sha
    inputs.protocol["real_count"] = len(real)
    memo["inception"] = {ours: float(result[theirs]) for n in wanted for theirs, (ours, _) in FAMILY[n][1].items()}
    return memo["inception"]


def _metric(name: str):
    keys = FAMILY[name][1].values()
    return lambda inputs: {k: v for k, v in _compute(inputs).items() if k in {ours for ours, _ in keys}}


for _name, (_, _outputs) in FAMILY.items():
    register(_name, needs="inception" if _name == "is" else "inception_features",
             higher_is_better=dict(_outputs.values()))(_metric(_name))
