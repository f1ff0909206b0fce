"""Weights & Biases as the default logger: online when logged in, offline otherwise.

``WANDB_MODE`` set by the user always wins (``disabled`` in tests, ``offline`` on clusters);
offline runs can be uploaded later with ``wandb sync <run folder>/wandb/offline-run-*``.
"""
from __future__ import annotations

import netrc
import os
from pathlib import Path

__all__ = ["wandb_mode", "make_default_logger"]


def _logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode() -> str:
    """``online`` | ``offline`` | ``disabled``: the user's WANDB_MODE, else online iff logged in."""
    return os.environ.get("WANDB_MODE") or ("online" if _logged_in() else "offline")


def make_default_logger(save_dir: str | Path, name: str, *, project: str = "crossmedia"):
    from pytorch_lightning.loggers import WandbLogger

    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    mode = wandb_mode()
    return WandbLogger(
        project=os.environ.get("WANDB_PROJECT", project),
        name=name,
        save_dir=str(save_dir),
        offline=mode == "offline",
        mode=mode,
    )
