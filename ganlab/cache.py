"""Files ganlab keeps between runs (decoded images, real-side feature statistics): read with
`weights_only=True`, so a cache file someone else wrote runs no code, and checked against the
SHA-256 kept beside it, so a damaged file is recomputed instead of silently used.

The checksum guards against accidental damage, not against someone who can write the cache
folder (they can rewrite both files): what makes a planted file harmless is that only tensors
are ever read, and the key that names a file includes a fingerprint of the data it came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("ganlab")


def load_tensors(path: Path | str) -> Any:
    """`torch.load(weights_only=True)`: tensors and plain containers only, never code. A foreign
    pickle raises; torch's warning about its pickle protocol is dropped, since the caller's error
    message is the one paragraph the user gets."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def load_verified(path: Path) -> Any | None:
    """The tensors saved at `path` by `save_verified`, or None when missing, damaged or foreign."""
    path, meta = Path(path), _meta(path)
    if not path.is_file():
        return None
    try:
        expected = json.loads(meta.read_text(encoding="utf-8")).get("sha256")
        if expected == file_sha256(path):
            return load_tensors(path)
    except Exception:  # noqa: BLE001 - unreadable, foreign or damaged: computed again
        pass
    log.warning("the cache file %s is damaged (its checksum or content does not match); computing it again", path)
    return None


def save_verified(value: Any, path: Path, description: Any = None) -> None:
    """Save `value` (tensors and containers of them) atomically, with its checksum beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(value, tmp)
    sha = file_sha256(tmp)
    _meta(path).write_text(json.dumps({"description": description, "sha256": sha}, indent=1, default=str),
                           encoding="utf-8")
    tmp.replace(path)


def _meta(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensor_sha256(*tensors: torch.Tensor | None) -> str:
    """A fingerprint of data by content (dtype, shape and bytes)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if tensor is not None:
            flat = tensor.detach().cpu().contiguous()
            digest.update(f"{flat.dtype}{tuple(flat.shape)}".encode())
            digest.update(flat.reshape(-1).view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()
