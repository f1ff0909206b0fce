"""crossmedia: a PyTorch Lightning model zoo for cross-media learning.

Heavy imports (torch, Lightning, timm) are deferred so ``import crossmedia`` stays cheap;
``from crossmedia import zoo`` is the front door.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["zoo", "__version__"]


def __getattr__(name: str):
    if name == "zoo":
        return importlib.import_module("crossmedia.zoo")
    raise AttributeError(f"module 'crossmedia' has no attribute {name!r}")
