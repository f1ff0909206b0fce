"""A dataset folder under ``data/``: its ``meta.json`` is written last and marks it complete.

Every generator and preparer follows one protocol, :class:`DatasetFolder`:

1. the folder is *ready* when its ``meta.json`` holds the expected values (name, seed, generator
   version, source ...) and the format's own check of the files passes; a ready folder is kept;
2. otherwise ``meta.json`` is deleted *first*, so that an interrupted run never looks complete,
   the files are written, and ``meta.json`` is written *last*, atomically.

Nothing here knows a format; the formats pass their check of the files (``complete``).

A generator or preparer writes only into a folder that is empty, absent, or already its own
(its ``meta.json``, or the ``.crossmedia-writing`` mark an interrupted run leaves, names the same
dataset): :func:`check_ours` refuses any other folder, naming what is in it, before anything in
it is written, changed or deleted, so pointing ``root`` at a folder of one's own files never
overwrites them with a built-in.

Two processes that need the same folder at once (two runs started together, test workers)
must not both write it: :func:`folder_lock` serialises them, and the one that waited then finds
the folder ready. The lock is a ``fcntl.flock`` on a file under ``<home>/locks`` named after the
folder's resolved path (nothing is written next to the folder, which may be a user's); the
kernel drops it when its holder dies, so a killed run never leaves a stale lock.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None

__all__ = ["DatasetFolderError", "ForeignFolderError", "DatasetFolder", "read_meta", "write_meta", "recorded_seed",
           "link_source", "folder_lock", "check_ours"]

META = "meta.json"
WRITING = ".crossmedia-writing"  # names the dataset being written; removed when meta.json is


class DatasetFolderError(ValueError):
    """A dataset folder's ``meta.json`` is unreadable; the message names the file and the fix."""


class ForeignFolderError(DatasetFolderError):
    """A dataset would be written into a folder holding files it did not write; the message lists them."""


# helpers


def _always(root: Path, meta: dict[str, Any]) -> bool:
    return True


def read_json_object(path: str | Path, error: type[Exception] = ValueError, *, fix: str,
                     shape: str = "") -> dict[str, Any]:
    """The JSON object (a dict) in ``path``, for the readers of JSON formats.

    Raises FileNotFoundError when ``path`` is missing; ``error`` naming ``path`` when it is not UTF-8
    JSON (``fix``: what to do, e.g. extract it again) or not an object (``shape``: what the object
    holds, e.g. ``" with 'videos' and 'sentences' lists"``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {fix}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as cause:
        raise error(f"{path}: not valid JSON ({cause}); {fix}") from cause
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object{shape}, got {type(data).__name__}; {fix}")
    return data


def count_entries(folder: Path, keep: Callable[[os.DirEntry], bool]) -> int:
    """How many entries of ``folder`` ``keep`` accepts (one ``scandir``); -1 when ``folder`` is not a
    directory (equal to no count a meta.json records). What the built-in generators' completeness
    checks count."""
    if not folder.is_dir():
        return -1
    with os.scandir(folder) as entries:
        return sum(1 for entry in entries if keep(entry))


def read_meta(root: str | Path) -> dict[str, Any] | None:
    """The dataset folder's ``meta.json`` as a dict, or None when there is none."""
    meta_file = Path(root) / META
    if not meta_file.is_file():
        return None
    return read_json_object(meta_file, DatasetFolderError, fix="delete it to re-prepare")


def write_meta(root: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write ``meta.json`` atomically (a partial file, then a rename); returns its path."""
    meta_file = Path(root) / META
    partial = meta_file.with_name(META + ".partial")
    partial.write_text(json.dumps(dict(meta), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, meta_file)
    return meta_file


def recorded_seed(root: str | Path, name: str) -> int:
    """The seed ``root``'s ``meta.json`` records for dataset ``name`` (0 when it records none or another dataset)."""
    meta = read_meta(root)
    return int(meta["seed"]) if meta and meta.get("name") == name and "seed" in meta else 0


def check_ours(root: str | Path, name: str) -> None:
    """Raise :class:`ForeignFolderError` unless dataset ``name`` may write into ``root``.

    It may when ``root`` does not exist or is empty, or when its ``meta.json`` or its
    ``.crossmedia-writing`` mark (left by an interrupted run) names ``name``: a copy of the same
    dataset, complete, stale or half written. Anything else (a user's files, another dataset) is
    refused, naming a few of the entries and what ``meta.json`` says, before anything is touched.
    """
    root = Path(root)
    if not root.exists():
        return
    if not root.is_dir():
        raise ForeignFolderError(f"{root} is a file, not a folder: dataset {name!r} cannot be written there; "
                                 f"choose another root")
    entries = sorted(path.name for path in root.iterdir())
    if not entries:
        return
    marker = root / WRITING
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == name:
        return
    try:
        meta = read_meta(root)
    except DatasetFolderError:
        meta = None
    if meta is not None and meta.get("name") == name:
        return
    holds = f"dataset {meta.get('name')!r} (its meta.json)" if meta and meta.get("name") else "files crossmedia did not write"
    shown = ", ".join(entries[:5]) + (f" ... ({len(entries)} entries)" if len(entries) > 5 else "")
    raise ForeignFolderError(
        f"{root} holds {holds}: {shown}. Refusing to write dataset {name!r} into it (nothing there was changed). "
        f"If these are your own data, point the data module at them under the name of their format (see "
        f"`crossmedia data list`); to generate or prepare {name!r}, choose an empty or new folder, or leave root "
        f"unset (data/{name}).")


@contextmanager
def folder_lock(root: str | Path) -> Iterator[Path]:
    """Hold the process-wide lock of dataset folder ``root`` (blocking) while the body runs; yields the lock file.

    Separate ``open`` calls take separate ``flock`` locks, so two threads of one process
    exclude each other too; a body must not take the lock of the same folder again.
    """
    from crossmedia.core.paths import home

    key = hashlib.sha256(str(Path(root).expanduser().resolve()).encode()).hexdigest()[:24]
    lock_file = home() / "locks" / f"{Path(root).name or 'root'}-{key}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield lock_file
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def link_source(link: Path, source: Path) -> str:
    """Point ``link`` (e.g. ``root/images``) at the download ``source`` instead of copying it.

    Returns the prefix the folder's file lists need: ``"<link name>/"`` when the symbolic link
    exists or could be made, else ``"<source>/"`` (absolute paths into the download).
    """
    source = Path(source).resolve()
    if link.is_symlink() and link.resolve() == source:
        return link.name + "/"
    if link.is_symlink():
        link.unlink()
    if not link.exists():
        try:
            link.symlink_to(source, target_is_directory=True)
            return link.name + "/"
        except OSError:
            pass
    return source.as_posix() + "/"


# classes


@dataclass(frozen=True)
class DatasetFolder:
    """The folder ``root`` of one dataset, as a generator or preparer is about to (re)write it.

    ``expected`` are the values its ``meta.json`` must hold for the folder to count as this
    dataset (e.g. ``name``, ``seed``, ``generator_version``); ``complete(root, meta)`` is the
    format's check that the files are all there (e.g. list files with the counts ``meta`` records).

    Use::

        folder = DatasetFolder(root, {"name": "digits", "seed": seed}, complete=lists_complete)
        if folder.ready():
            return root
        with folder.rewriting() as meta:  # meta.json deleted, root created
            ...  # write the files
            meta.update(name="digits", seed=seed, counts=...)  # written last, on success only
    """

    root: Path
    expected: Mapping[str, Any]
    complete: Callable[[Path, dict[str, Any]], bool] = field(default=_always)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def ready(self) -> bool:
        """True when ``meta.json`` holds every expected value and the files are complete."""
        meta = read_meta(self.root)
        return (meta is not None and all(meta.get(key) == value for key, value in self.expected.items())
                and self.complete(self.root, meta))

    @contextmanager
    def rewriting(self) -> Iterator[dict[str, Any]]:
        """Delete ``meta.json``, create the folder, yield the dict the body fills with the new meta;
        write it as ``meta.json`` when the body succeeds (never after an error). A folder that
        holds something this dataset did not write is refused first (:func:`check_ours`)."""
        name = str(self.expected.get("name", ""))
        check_ours(self.root, name)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / WRITING).write_text(name + "\n", encoding="utf-8")  # ours, even if interrupted
        (self.root / META).unlink(missing_ok=True)  # an interrupted run must not look complete
        meta: dict[str, Any] = {}
        yield meta
        wrong = [key for key, value in self.expected.items() if meta.get(key) != value]
        if wrong:  # a programming error: the folder would never count as ready
            raise ValueError(f"{self.root / META}: the new meta lacks the expected values of {', '.join(wrong)}")
        write_meta(self.root, meta)
        (self.root / WRITING).unlink(missing_ok=True)
