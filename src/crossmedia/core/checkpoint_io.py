"""Weights on disk: safetensors only, sha256 first, never unpickle.

A zoo file is hashed before a single byte of it is parsed; a file that looks like a pickle
(a ``torch.save`` zip, a raw pickle stream) is refused with the reason, whatever its name.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

__all__ = [
    "WeightsError",
    "sha256_file",
    "verify_sha256",
    "check_safetensors_header",
    "load_weights",
    "save_weights",
    "read_lightning_checkpoint",
]

_PICKLE_HINT = (
    "crossmedia never unpickles weights (a pickle can run arbitrary code). Convert a checkpoint "
    "you trained yourself with `crossmedia zoo export`, which writes safetensors."
)


class WeightsError(RuntimeError):
    """A weights file that is missing, tampered with, or in a refused format."""


def sha256_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    found = sha256_file(path)
    if found != expected.lower():
        raise WeightsError(
            f"sha256 mismatch for {path}:\n  expected {expected}\n  found    {found}\n"
            "The file is corrupt or was changed; delete it so it is fetched again, or pass the "
            "right file with weights=."
        )


def check_safetensors_header(path: str | Path) -> None:
    """Refuse anything that is not a safetensors file, naming what it looks like instead."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[:2] == b"PK":
        raise WeightsError(f"{path} is a zip archive (a torch.save / Lightning checkpoint). {_PICKLE_HINT}")
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        raise WeightsError(f"{path} is a pickle stream. {_PICKLE_HINT}")
    if len(head) < 9:
        raise WeightsError(f"{path} is too short to be a safetensors file ({len(head)} bytes).")
    (header_len,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or header_len > Path(path).stat().st_size:
        raise WeightsError(f"{path} is not a safetensors file (bad header). {_PICKLE_HINT}")


def load_weights(path: str | Path, *, sha256: str | None = None) -> dict:
    """Read a state dict from safetensors, verifying ``sha256`` (when given) before parsing."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if sha256:
        verify_sha256(path, sha256)
    check_safetensors_header(path)
    return load_file(str(path))


def save_weights(state_dict: dict, path: str | Path, *, metadata: dict | None = None) -> str:
    """Write ``state_dict`` as safetensors; returns the file's sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in state_dict.items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    save_file(tensors, str(path), metadata=meta)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # safetensors writes 0600; zoo weights are meant to be shared
    return sha256_file(path)


def read_lightning_checkpoint(path: str | Path) -> dict:
    """Read a Lightning ``.ckpt`` the user trained *themselves* (the one ``torch.load`` we allow).

    ``weights_only=True`` keeps torch's restricted unpickler in charge even here: tensors and
    plain containers only, no code.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)
