"""A dataset folder under ``data/``: its ``meta.json`` is written last and marks it complete.

Every generator and preparer follows one protocol, :class:`DatasetFolder`:

1. the folder is *ready* when its ``meta.json`` holds the expected values (name, seed, generator
   version, source ...) and the format's own check of the files passes; a ready folder is kept;
2. otherwise ``meta.json`` is deleted *first*, so that an interrupted run never looks complete,
   the files are written, and ``meta.json`` is written *last*, atomically.

Nothing here knows a format; the formats pass their check of the files (``complete``).

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

__all__ = ["DatasetFolderError", "DatasetFolder", "read_meta", "write_meta", "recorded_seed", "link_source",
           "folder_lock"]

META = "meta.json"


class DatasetFolderError(ValueError):
    """A dataset folder's ``meta.json`` is unreadable; the message names the file and the fix."""


# helpers


def _always(root: Path, meta: dict[str, Any]) -> bool:
    return True


def read_meta(root: str | Path) -> dict[str, Any] | None:
    """The dataset folder's ``meta.json`` as a dict, or None when there is none."""
    meta_file = Path(root) / META
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DatasetFolderError(f"{meta_file}: not valid JSON ({error}); delete it to re-prepare") from error
    if not isinstance(meta, dict):
        raise DatasetFolderError(f"{meta_file}: expected a JSON object, got {type(meta).__name__}; "
                                 f"delete it to re-prepare")
    return meta


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
        write it as ``meta.json`` when the body succeeds (never after an error)."""
        (self.root / META).unlink(missing_ok=True)  # an interrupted run must not look complete
        self.root.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {}
        yield meta
        wrong = [key for key, value in self.expected.items() if meta.get(key) != value]
        if wrong:  # a programming error: the folder would never count as ready
            raise ValueError(f"{self.root / META}: the new meta lacks the expected values of {', '.join(wrong)}")
        write_meta(self.root, meta)
