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
import warnings
from pathlib import Path
from typing import Any

import torch

from ganlab.records.safe_files import read_text, write_atomic, write_text_atomic

log = logging.getLogger("ganlab")
# A saved view (an expanded label batch, say) may stand for more values than its storage holds, up
# to this many bytes; beyond it, copying it (the checksum does) would exhaust memory.
VIEW_LIMIT = 64 * 2**20


def load_tensors(path: Path | str) -> Any:
    """`torch.load(weights_only=True)`: tensors and plain containers only, never code. A foreign
    pickle raises; torch's warning about its pickle protocol is dropped, since the caller's error
    message is the one paragraph the user gets. Every tensor must fit its storage (no zero or
    overlapping strides standing for more elements than the file holds), checked before anything
    copies it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    _check_tensor_sizes(loaded, str(path))
    return loaded


def _check_tensor_sizes(value: Any, path: str, where: str = "") -> None:
    if isinstance(value, torch.Tensor):
        needed = value.numel() * value.element_size()
        if needed > max(value.untyped_storage().nbytes(), VIEW_LIMIT):
            raise ValueError(f"the tensor at {where or 'the top'} in {path} stands for {value.numel():,} values over "
                             f"{value.untyped_storage().nbytes():,} bytes of storage (zero or overlapping strides); "
                             "a saved tensor holds its own values")
    elif isinstance(value, dict):
        for key, child in value.items():
            _check_tensor_sizes(child, path, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for i, child in enumerate(value):
            _check_tensor_sizes(child, path, f"{where}[{i}]")


def load_verified(path: Path) -> Any | None:
    """The tensors saved at `path` by `save_verified`, or None when missing, damaged or foreign."""
    path, meta = Path(path), _meta(path)
    if not path.is_file():
        return None
    try:
        expected = json.loads(read_text(meta, limit=2**20)).get("sha256")
        if expected == file_sha256(path):
            return load_tensors(path)
    except Exception:  # noqa: BLE001 - unreadable, foreign or damaged: computed again
        pass
    log.warning("the cache file %s is damaged (its checksum or content does not match); computing it again", path)
    return None


def save_verified(value: Any, path: Path, description: Any = None) -> None:
    """Save `value` (tensors and containers of them) atomically, with its checksum beside it; both
    through the guarded writer (a link, FIFO or hard link planted under either name is refused)."""
    path = Path(path)
    write_atomic(path, lambda handle: torch.save(value, handle))
    sha = file_sha256(path)
    write_text_atomic(_meta(path), json.dumps({"description": description, "sha256": sha}, indent=1, default=str))


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
