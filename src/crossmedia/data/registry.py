"""The dataset registry: names, what they are, how to prepare them and whether they are ready.

The registry knows no format. Each format or built-in registers its datasets next to its reader
with :func:`register_dataset` (a preparer and its ``ready(root)`` check), and may register a
:func:`register_folder_format` check that recognises a usable folder of that format whatever its
name (a hand-made DeepHash list folder, say). The registering modules are imported by name, the
first time the registry is asked, so no format is imported to import the registry.

:func:`prepare` is the front door (``crossmedia data prepare``); :func:`ensure` the lazy one used
by DataModules. Real datasets are read from a folder the user downloaded; nothing is fetched.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crossmedia.core.paths import data_root
from crossmedia.data.folder import check_ours, folder_lock, read_meta, recorded_seed

__all__ = [
    "DatasetInfo",
    "UnknownDatasetError",
    "DatasetNotPreparedError",
    "register_dataset",
    "register_folder_format",
    "list_datasets",
    "prepare",
    "ensure",
]

Preparer = Callable[..., Path]  # (root, *, source, seed, progress) -> root
Ready = Callable[[Path], bool]  # root -> a complete, usable copy is there

_REGISTERING_MODULES = (  # imported by name the first time the registry is asked (no import cycle)
    "crossmedia.data.builtin.digits",
    "crossmedia.data.builtin.shapes",
    "crossmedia.data.builtin.clips",
    "crossmedia.data.builtin.scenes",
    "crossmedia.data.builtin.spoken_scenes",
    "crossmedia.data.builtin.videosumm",
    "crossmedia.data.builtin.puppets",
    "crossmedia.data.builtin.puppet_captions",
    "crossmedia.data.cifar10",
    "crossmedia.data.deephash",
    "crossmedia.data.deephash_releases",
    "crossmedia.data.karpathy",
    "crossmedia.data.cub",
    "crossmedia.data.eccv16_releases",
    "crossmedia.data.penn_action",
    "crossmedia.data.poseclips",
    "crossmedia.data.msrvtt",
)


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about a dataset before it is on disk."""

    name: str
    kind: str  # "image" | "video" | "caption"
    builtin: bool
    summary: str
    num_classes: int | None = None
    source_layout: str = ""  # for real datasets: what --source must point at


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    prepare: Preparer
    ready: Ready


class UnknownDatasetError(LookupError):
    """No dataset is registered under that name; the message names the closest ones."""


class DatasetNotPreparedError(FileNotFoundError):
    """A real dataset is not under data/ yet; the message says how to prepare it."""


_REGISTRY: dict[str, _Entry] = {}
_FOLDER_FORMATS: dict[str, Ready] = {}


# registration


def register_dataset(name: str, *, kind: str, builtin: bool, summary: str, ready: Ready,
                     num_classes: int | None = None, source_layout: str = "") -> Callable[[Preparer], Preparer]:
    """Decorator registering ``fn(root, *, source, seed, progress) -> Path`` as the preparer of ``name``.

    ``ready(root)`` says whether ``root`` already holds a complete copy (of a built-in: one of any
    seed, which :func:`ensure` keeps; of a real dataset: one prepared by ``fn``).
    """
    if kind not in ("image", "video", "caption", "pose"):
        raise ValueError(f"dataset {name!r}: kind must be 'image', 'video', 'caption' or 'pose', got {kind!r}")

    def decorator(fn: Preparer) -> Preparer:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = _Entry(DatasetInfo(name, kind, builtin, summary, num_classes, source_layout), fn, ready)
        return fn

    return decorator


def register_folder_format(name: str) -> Callable[[Ready], Ready]:
    """Decorator registering ``usable(root) -> bool``: ``root`` holds a complete folder of format
    ``name`` that :func:`ensure` may use as it is, whatever dataset name it is asked for."""

    def decorator(fn: Ready) -> Ready:
        _FOLDER_FORMATS[name] = fn
        return fn

    return decorator


# lookup


def _load_registrations() -> None:
    for module in _REGISTERING_MODULES:
        importlib.import_module(module)


def _unknown(name: str) -> UnknownDatasetError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    return UnknownDatasetError(f"unknown dataset {name!r}.{hint} Known datasets: {', '.join(sorted(_REGISTRY))} "
                               f"(`crossmedia data list` describes them)")


def _lookup(name: str) -> _Entry:
    _load_registrations()
    if name not in _REGISTRY:
        raise _unknown(name)
    return _REGISTRY[name]


# functions


def list_datasets() -> dict[str, DatasetInfo]:
    """Every registered dataset by name, sorted."""
    _load_registrations()
    return {name: _REGISTRY[name].info for name in sorted(_REGISTRY)}


def prepare(name: str, *, source: Path | None = None, root: Path | None = None, seed: int = 0,
            progress: bool = True) -> Path:
    """Prepare dataset ``name`` into ``root`` (default ``data_root()/name``) and return that folder.

    Built-in datasets are generated from ``seed`` and take no ``source``; real ones are read from
    the local download ``source``. A complete copy already in ``root`` is kept as it is. Preparing
    holds the folder's :func:`~crossmedia.data.folder.folder_lock`, so concurrent callers write it once.
    """
    entry = _lookup(name)
    root = Path(root) if root is not None else data_root() / name
    if entry.info.builtin and source is not None:
        raise ValueError(f"{name!r} is built in (generated from a seed); it takes no source folder")
    if not entry.info.builtin and source is None:
        raise ValueError(f"{name!r} is read from a local download: pass source=DIR "
                         f"(crossmedia data prepare {name} --source DIR), DIR being {entry.info.source_layout}")
    with folder_lock(root):  # a second process preparing the same folder waits, then finds it ready
        check_ours(root, name)  # never into a folder of the user's files (before any work)
        return entry.prepare(root, source=None if source is None else Path(source), seed=seed, progress=progress)


def ensure(name: str, root: Path | None = None, *, progress: bool = True) -> Path:
    """The dataset folder of ``name``, generating a built-in dataset the first time it is needed.

    In order: a folder the dataset's own ``ready`` accepts is used; so is a complete folder of a
    registered format that is not a stale copy of ``name`` itself (a hand-made DeepHash list
    folder, or another prepared dataset, under any name); a built-in is (re)generated with the
    seed its old ``meta.json`` records; a missing real dataset raises
    :class:`DatasetNotPreparedError`, an unknown name :class:`UnknownDatasetError`.
    """
    root = Path(root) if root is not None else data_root() / name
    _load_registrations()
    entry = _REGISTRY.get(name)
    if entry is not None and entry.ready(root):
        return root
    meta = read_meta(root)
    stale_copy = meta is not None and meta.get("name") == name
    if not stale_copy and any(usable(root) for usable in _FOLDER_FORMATS.values()):
        return root
    if entry is None:
        raise _unknown(name)
    if entry.info.builtin:
        return prepare(name, root=root, seed=recorded_seed(root, name), progress=progress)
    raise DatasetNotPreparedError(
        f"dataset {name!r} is not prepared under {root}. Download it yourself (crossmedia never "
        f"fetches data), then run: crossmedia data prepare {name} --source DIR   (DIR: {entry.info.source_layout})")
