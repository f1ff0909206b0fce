"""The registry machinery behind ``crossmedia.zoo``: build a card's classes, find, fetch and verify
its weights, load the module.

``crossmedia.zoo`` is the public front door over this module; core (evaluate, export, the zoo CLI)
imports this one and never the front door. A card is untrusted input, like the weights it names:

* only classes inside ``crossmedia`` that subclass ``LightningModule`` (``config.model``) or
  ``LightningDataModule`` (``config.data``) are built, never a function or any other class;
* ``weights.file`` is a plain file name, joined inside each folder searched and refused if the
  joined path (symlinks followed) leaves that folder;
* the zoo's own files (found in the checkpoint folders or downloaded) are sha256-verified before
  a byte is parsed; a file the user passes with ``weights=`` must match the card's sha256 too,
  unless ``own_weights=True`` says it is the user's own fine-tune of the architecture. Either way
  only safetensors are read (never unpickled) and loaded with ``strict=True``.
"""
from __future__ import annotations

import fnmatch
import importlib
import inspect
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crossmedia.core import paths
from crossmedia.core.cards import ALLOWED_PREFIX, Card, CardError, check_file_name, find_cards, get_card, read_card
from crossmedia.core.checkpoint_io import WeightsError, load_weights, sha256_file, verify_sha256

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["ZooEntry", "list_models", "card", "import_class", "build", "resolve_weights", "load", "default_model"]

_BASES = {"model": "LightningModule", "data": "LightningDataModule"}


@dataclass(frozen=True)
class ZooEntry:
    """One line of ``zoo.list_models()``: what a card says, read from its YAML alone."""

    name: str
    task: str
    summary: str
    headline: str
    class_path: str = ""

    @property
    def inference(self) -> tuple[str, ...]:
        """The model's plain inference methods (e.g. ``("caption",)``). Imports the model class
        (torch, Lightning), so ``list_models`` itself stays a read of YAML files."""
        from crossmedia.core.task import TaskModule, contract_errors

        cls = import_class(self.class_path, source=self.name)
        if not issubclass(cls, TaskModule):
            raise CardError(f"{self.name}: {'; '.join(contract_errors(cls))}")
        return tuple(cls.inference)

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
        entries.append(ZooEntry(c.name, c.task, c.summary, c.headline, c.class_path()))
    return entries


def card(name: str) -> Card:
    """The full card of ``name`` (config, weights, measured metrics, commands)."""
    return get_card(name)


def import_class(class_path: str, *, part: str = "model", source: object = "card") -> type:
    """Import the ``config.<part>.class_path`` of a card (``source`` names it in errors), refusing
    anything outside crossmedia and anything that is not a ``pytorch_lightning.<base>`` subclass
    (``LightningModule`` for ``part="model"``, ``LightningDataModule`` for ``part="data"``)."""
    field = f"config.{part}.class_path"
    if not isinstance(class_path, str) or not class_path.startswith(ALLOWED_PREFIX):
        raise CardError(f"{source}: {field}: refusing to build {class_path!r}: only '{ALLOWED_PREFIX}…' "
                        "classes may be built.")
    module_name, _, attr = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise CardError(f"{source}: {field}: cannot import {class_path!r}: {err}") from None
    import pytorch_lightning as pl

    base = getattr(pl, _BASES[part])
    if not (isinstance(found, type) and issubclass(found, base)):
        what = "a function" if inspect.isroutine(found) else "a class" if isinstance(found, type) else \
            f"a {type(found).__name__}"
        raise CardError(f"{source}: {field}: refusing to build {class_path!r}: it is {what}, not a subclass of "
                        f"pytorch_lightning.{base.__name__}; a card builds only LightningModule (model) and "
                        "LightningDataModule (data) classes.")
    return found


def build(c: Card, part: str = "model"):
    """Instantiate the card's model (or ``part="data"``) from its init_args, without weights."""
    return import_class(c.class_path(part), part=part, source=c.path)(**c.init_args(part))


def default_model(task: str) -> str:
    """The entry ``make train TASK=…`` trains when no MODEL is given (``default: true``)."""
    cards = [read_card(p) for p in find_cards().values()]
    tasks = sorted({c.task for c in cards})
    if task not in tasks:
        raise CardError(f"unknown task {task!r}; tasks with zoo entries: {', '.join(tasks)}")
    defaults = [c.name for c in cards if c.task == task and c.default]
    return defaults[0] if defaults else sorted(c.name for c in cards if c.task == task)[0]


def _weights_in(c: Card, folder: Path) -> Path:
    """``folder / weights.file``: a card whose name has a folder part is refused (CardError), and so is
    a file there that links outside ``folder`` (WeightsError: the download would write through it)."""
    check_file_name(c.path, "weights.file", c.weights["file"], str(folder))
    try:
        return paths.join_inside(folder, c.weights["file"])
    except ValueError as err:
        raise WeightsError(f"{folder / c.weights['file']} (weights of {c.name!r}) is a link: {err}; "
                           "replace the link by the file itself") from None


def _download(c: Card, folder: Path) -> Path:
    """Fetch the card's ``url`` into ``folder`` (a unique partial file, verified, then renamed)."""
    from tqdm.auto import tqdm

    target = _weights_in(c, folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    try:
        with urllib.request.urlopen(c.weights["url"]) as response, os.fdopen(fd, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {target.name}") as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
        verify_sha256(partial, c.weights["sha256"])
        os.replace(partial, target)  # replaces a link at target, never follows it
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
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
        candidate = _weights_in(c, folder)
        searched.append(str(candidate))
        if candidate.is_file():
            return candidate
    cached = _weights_in(c, paths.cache_dir())
    if cached.is_file() and sha256_file(cached) == c.weights["sha256"]:
        return cached
    searched.append(str(cached))
    if c.weights.get("url"):
        return _download(c, paths.cache_dir())
    raise WeightsError(
        f"weights {c.weights['file']!r} for {c.name!r} not found. Searched:\n  "
        + "\n  ".join(searched)
        + "\nPass weights=PATH, put the file in $CROSSMEDIA_HOME/checkpoints, or add a url to the card."
    )


def _read_given(c: Card, path: Path, own_weights: bool) -> dict:
    """A ``weights=`` file: the zoo's own (sha256 matches the card) or, with ``own_weights``, the
    user's fine-tune of the architecture. Either way safetensors only."""
    expected = c.weights["sha256"].lower()
    found = sha256_file(path)
    if found != expected and not own_weights:
        raise WeightsError(
            f"{path} is not the zoo's {c.name} file (sha256 {found}; {c.path} expects {expected}). To load your "
            f"own fine-tuned weights into the {c.name} architecture pass own_weights=True (CLI: --own-weights); "
            "they are read as safetensors only and must fit the architecture exactly.")
    return load_weights(path)


def load(name: str | Card, device: str = "cpu", weights: str | Path | None = None, *,
         own_weights: bool = False) -> "pl.LightningModule":
    """Build ``name`` (or a :class:`Card`) from its card, load verified safetensors weights
    (``strict=True``) and return it in eval mode on ``device``.

    ``weights=PATH`` loads that file instead of the zoo's; its sha256 must match the card unless
    ``own_weights=True`` (your own fine-tune of this architecture, still safetensors only).
    """
    c = name if isinstance(name, Card) else get_card(name)
    path = resolve_weights(c, weights)
    if weights is None:
        state = load_weights(path, sha256=c.weights["sha256"])
    else:
        state = _read_given(c, path, own_weights)
    model = build(c)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(line.strip() for line in str(err).splitlines()[1:3])
        raise WeightsError(f"{path} does not fit the {c.name} architecture ({c.class_path()}): {detail}") from None
    model.zoo_card = c
    return model.eval().to(device)
