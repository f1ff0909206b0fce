"""Run folders: each run gets its own, a live run holds a lock, a resume finds the latest.

    runs/NAME        the first run called NAME (``--run_name``, default: the card's name)
    runs/NAME-2, -3  later runs of the same name, while the earlier folders hold a run
    DIR              ``--trainer.default_root_dir DIR``: used as given

A folder holds a run when it has a ``config.yaml`` or ``checkpoints/last.ckpt``, or when a live
process holds its lock. The lock is ``DIR/.lock`` under ``fcntl.flock``: the kernel drops it
when its process dies (a kill -9 included), so a crashed run never leaves a stale lock, and over
NFS it is a POSIX lock that other hosts see. The file says which process (pid@host) holds it,
for the message of a refused run. Without ``fcntl`` (Windows) there is no lock and only the
``config.yaml`` rule holds.

Only the process that starts a run (global rank 0) claims a folder; the processes a DDP launcher
starts read it from ``CROSSMEDIA_RUN_DIR``, which the claiming process sets.
"""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["RunFolderError", "claim_run_dir", "latest_run_dir", "ENV"]

ENV = "CROSSMEDIA_RUN_DIR"
_LOCK = ".lock"
_held: list = []  # open lock files of this process: the locks live as long as it does


class RunFolderError(RuntimeError):
    """A run folder that holds another run, or is in use by a live one."""


def _is_launched_rank() -> bool:
    """True in a process that a launcher (Lightning's DDP, torchrun, SLURM, another node) started
    for a rank other than global 0: it must use the folder rank 0 chose, not claim one."""
    return any(os.environ.get(key, "0") != "0" for key in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


def _holds_run(folder: Path) -> bool:
    return (folder / "config.yaml").is_file() or (folder / "checkpoints" / "last.ckpt").is_file()


def _lock(folder: Path):
    """The folder's lock as an open file, or None when a live process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / _LOCK, "a+")
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}@{socket.gethostname()}\n")
    handle.flush()
    return handle


def _holder(folder: Path) -> str:
    try:
        return (folder / _LOCK).read_text().strip() or "another process"
    except OSError:
        return "another process"


def _numbered(runs: Path, name: str) -> list[Path]:
    """``runs/NAME``, ``runs/NAME-2``, … that exist, in the order they were taken."""
    pattern = re.compile(rf"{re.escape(name)}(?:-(\d+))?")
    found = []
    for folder in runs.iterdir() if runs.is_dir() else []:
        match = pattern.fullmatch(folder.name)
        if match and folder.is_dir():
            found.append((int(match.group(1) or 1), folder))
    return [folder for _, folder in sorted(found)]


def latest_run_dir(runs: Path, name: str) -> Path | None:
    """The latest of ``runs/NAME``, ``runs/NAME-2``, … that has ``checkpoints/last.ckpt``."""
    with_checkpoint = [f for f in _numbered(runs, name) if (f / "checkpoints" / "last.ckpt").is_file()]
    return with_checkpoint[-1] if with_checkpoint else None


def claim_run_dir(*, runs: Path, name: str, root: str | Path | None, resume: bool) -> Path:
    """The folder this run writes into, locked for this process.

    ``root`` (``--trainer.default_root_dir``) is used as given, but a fresh run into a folder that
    holds a run is refused, and so is any run while another live one holds the folder. Without
    ``root`` the run takes ``runs/NAME``, else the next free ``runs/NAME-<n>``; ``resume``
    (``--ckpt_path last``) takes the latest folder of that name with a ``last.ckpt``.
    """
    if os.environ.get(ENV) and _is_launched_rank():
        return Path(os.environ[ENV])
    if root is not None or resume:
        folder = Path(root) if root is not None else latest_run_dir(runs, name)
        if folder is not None:
            return _claim_given(folder, resume=resume)
    if _is_launched_rank():  # another node's rank: nothing to claim, rank 0 writes the run
        return runs / name
    for n in range(1, 10_000):
        folder = runs / (name if n == 1 else f"{name}-{n}")
        if folder.is_dir() and _holds_run(folder):
            continue
        handle = _lock(folder)
        if handle is None:
            continue
        if _holds_run(folder):  # a run finished between the look and the lock
            handle.close()
            continue
        return _keep(folder, handle)
    raise RunFolderError(f"{runs}: no free folder for run {name!r} up to {name}-9999")


def _claim_given(folder: Path, *, resume: bool) -> Path:
    if _is_launched_rank():
        return folder
    if not resume and (folder / "config.yaml").is_file():
        raise RunFolderError(f"{folder} already holds a run (its config.yaml): resume it with --ckpt_path last, "
                             "or choose another --trainer.default_root_dir")
    handle = _lock(folder)
    if handle is None:
        raise RunFolderError(f"{folder} is in use by a live run ({_holder(folder)}): wait for it to end, "
                             "or choose another --run_name or --trainer.default_root_dir")
    return _keep(folder, handle)


def _keep(folder: Path, handle) -> Path:
    _held.append(handle)
    os.environ[ENV] = str(folder)  # inherited by the processes a DDP launcher starts
    return folder
