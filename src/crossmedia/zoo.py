"""The model zoo: list, inspect, load, evaluate and export pretrained entries.

    >>> from crossmedia import zoo
    >>> zoo.list_models(task="hashing")
    >>> model = zoo.load("csq")          # LightningModule in eval mode, weights verified

Weights are looked up in this order: ``weights=``, ``$CROSSMEDIA_HOME/checkpoints``, the checkout's
``checkpoints/`` (or the installed copy), then the card's ``url`` downloaded into
``$CROSSMEDIA_HOME/cache`` (``file://`` works). The sha256 is checked before anything is parsed,
only safetensors are read, and only classes inside ``crossmedia`` are built from a card.
"""
from __future__ import annotations

import fnmatch
import importlib
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crossmedia.core import paths
from crossmedia.core.cards import ALLOWED_PREFIX, Card, CardError, find_cards, get_card, read_card
from crossmedia.core.checkpoint_io import WeightsError, load_weights, sha256_file

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = [
    "ZooEntry", "list_models", "card", "load", "build", "import_class", "resolve_weights",
    "default_model", "CardError", "WeightsError", "read_card",
]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    task: str
    summary: str
    headline: str

    def __str__(self) -> str:
        return f"{self.name:<16} {self.task:<14} {self.headline:<32} {self.summary}"


def list_models(task: str | None = None, pattern: str | None = None) -> list[ZooEntry]:
    """Zoo entries (name, task, one-line summary, headline metric), sorted by name."""
    entries = []
    for name, path in sorted(find_cards().items()):
        if pattern and not fnmatch.fnmatch(name, pattern):
            continue
        c = read_card(path)
        if task and c.task != task:
            continue
        entries.append(ZooEntry(c.name, c.task, c.summary, c.headline))
    return entries


def card(name: str) -> Card:
    """The full card of ``name`` (config, weights, measured metrics, commands)."""
    return get_card(name)


def default_model(task: str) -> str:
    """The entry ``make train TASK=…`` trains when no MODEL is given (``default: true``)."""
    cards = [read_card(p) for p in find_cards().values()]
    tasks = sorted({c.task for c in cards})
    if task not in tasks:
        raise CardError(f"unknown task {task!r}; tasks with zoo entries: {', '.join(tasks)}")
    defaults = [c.name for c in cards if c.task == task and c.default]
    return defaults[0] if defaults else sorted(c.name for c in cards if c.task == task)[0]


def import_class(class_path: str, *, source: str = "card") -> type:
    """Import ``class_path``, refusing anything outside the crossmedia package."""
    if not class_path.startswith(ALLOWED_PREFIX):
        raise CardError(f"{source}: refusing to build {class_path!r}: only '{ALLOWED_PREFIX}…' classes may be built.")
    module_name, _, attr = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise CardError(f"{source}: cannot import {class_path!r}: {err}") from None


def build(c: Card, part: str = "model"):
    """Instantiate the card's model (or ``part="data"``) from its init_args, without weights."""
    return import_class(c.class_path(part), source=str(c.path))(**c.init_args(part))


def _download(url: str, target: Path, sha256: str) -> Path:
    from tqdm.auto import tqdm

    from crossmedia.core.checkpoint_io import verify_sha256

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url) as response, open(partial, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {target.name}") as bar:
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))
    verify_sha256(partial, sha256)
    shutil.move(partial, target)
    return target


def resolve_weights(c: Card, weights: str | Path | None = None) -> Path:
    """Find the card's weights file; the error lists every place that was searched."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"weights file given for {c.name!r} does not exist: {path}")
        return path
    searched = []
    for folder in paths.checkpoint_dirs():
        candidate = folder / c.weights["file"]
        searched.append(str(candidate))
        if candidate.is_file():
            return candidate
    cached = paths.cache_dir() / c.weights["file"]
    if cached.is_file() and sha256_file(cached) == c.weights["sha256"]:
        return cached
    searched.append(str(cached))
    if c.weights.get("url"):
        return _download(c.weights["url"], cached, c.weights["sha256"])
    raise WeightsError(
        f"weights {c.weights['file']!r} for {c.name!r} not found. Searched:\n  "
        + "\n  ".join(searched)
        + "\nPass weights=PATH, put the file in $CROSSMEDIA_HOME/checkpoints, or add a url to the card."
    )


def load(name: str | Card, device: str = "cpu", weights: str | Path | None = None) -> "pl.LightningModule":
    """Build ``name`` (or a :class:`Card`) from its card, load verified safetensors weights
    (``strict=True``) and return it in eval mode on ``device``."""
    c = name if isinstance(name, Card) else get_card(name)
    path = resolve_weights(c, weights)
    state = load_weights(path, sha256=c.weights["sha256"])
    model = build(c)
    model.load_state_dict(state, strict=True)
    model.zoo_card = c
    return model.eval().to(device)
