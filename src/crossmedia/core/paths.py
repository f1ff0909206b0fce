"""Where crossmedia finds its cards, weights and datasets.

A checkout (editable install) uses its own ``zoo/``, ``checkpoints/`` and ``data/``; a plain
``pip install .`` ships cards and weights under ``<prefix>/share/crossmedia/``. ``$CROSSMEDIA_HOME``
overrides the user-writable locations (weights cache, data).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["checkout_root", "home", "data_root", "zoo_dirs", "checkpoint_dirs", "cache_dir", "file_name_problem",
           "join_inside"]


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None for a plain install."""
    root = Path(__file__).resolve().parents[3]  # src/crossmedia/core/paths.py -> checkout
    return root if (root / "setup.cfg").is_file() and (root / "zoo").is_dir() else None


def home() -> Path:
    """User-writable home: ``$CROSSMEDIA_HOME`` or ``~/.cache/crossmedia``."""
    return Path(os.environ.get("CROSSMEDIA_HOME", Path.home() / ".cache" / "crossmedia")).expanduser()


def _installed_share() -> Path:
    return Path(sys.prefix) / "share" / "crossmedia"


def data_root() -> Path:
    """Dataset root: ``$CROSSMEDIA_DATA``, else the checkout's ``data/``, else ``<home>/data``."""
    if os.environ.get("CROSSMEDIA_DATA"):
        return Path(os.environ["CROSSMEDIA_DATA"]).expanduser()
    root = checkout_root()
    return root / "data" if root else home() / "data"


def zoo_dirs() -> list[Path]:
    """Folders holding zoo cards, first match wins: the checkout's ``zoo/``, the installed copy."""
    root = checkout_root()
    dirs = [root / "zoo"] if root else []
    return dirs + [_installed_share() / "zoo"]


def checkpoint_dirs() -> list[Path]:
    """Weight search order after an explicit path: $CROSSMEDIA_HOME, checkout, installed copy."""
    dirs = []
    if os.environ.get("CROSSMEDIA_HOME"):
        dirs.append(home() / "checkpoints")
    root = checkout_root()
    if root:
        dirs.append(root / "checkpoints")
    dirs.append(_installed_share() / "checkpoints")
    return dirs


def cache_dir() -> Path:
    """Where weights downloaded from a card's url are kept."""
    return home() / "cache"


def file_name_problem(name: object) -> str | None:
    """Why ``name`` is not a plain file name (no folder part, not ``.``/``..``), or None if it is.

    Names that come from a card or a command line (``weights.file``, ``export --name``) are joined to
    a folder crossmedia writes into; a name with a folder part could write anywhere.
    """
    if not isinstance(name, str) or not name:
        return "it is empty or not a string"
    if name in (".", ".."):
        return "it names a folder"
    if any(sep in name for sep in ("/", "\\", os.sep, os.altsep or "/")):
        return "it holds a path separator"
    if "\0" in name:
        return "it holds a NUL byte"
    return None


def join_inside(folder: str | Path, name: str) -> Path:
    """``folder / name``, refusing (ValueError, with the reason) a name that is not a plain file name
    or whose resolved path (symlinks followed) leaves ``folder``."""
    problem = file_name_problem(name)
    if problem:
        raise ValueError(problem)
    folder = Path(folder)
    target = folder / name
    resolved = Path(os.path.realpath(target))
    if resolved.parent != Path(os.path.realpath(folder)):
        raise ValueError(f"it resolves to {resolved}, outside {folder}")
    return target
