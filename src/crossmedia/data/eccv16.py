"""The eccv16 h5 format of SumMe, TVSum, OVP and YouTube (Zhang et al., "Video summarization with
long short-term memory", ECCV 2016), as every summarisation codebase since reads it.

One file per dataset, ``eccv16_dataset_{summe,tvsum,ovp,youtube}_google_pool5.h5``; one group per
video (``video_1``, ``video_2``, ...) holding:

==================  ==================  =====================================================
field               shape               meaning
==================  ==================  =====================================================
``features``        (n_steps, D)        one feature per sub-sampled frame (GoogLeNet pool5: D=1024)
``gtscore``         (n_steps,)          mean annotated importance per step, in [0, 1]
``gtsummary``       (n_steps,)          0/1 reference keyshot summary per step
``user_summary``    (n_users, n_frames) each annotator's 0/1 keyshot summary, per frame
``change_points``   (n_seg, 2)          shots as inclusive ``[start, end]`` frame ranges
``n_frame_per_seg`` (n_seg,)            ``end - start + 1`` of each shot
``n_frames``        scalar              frames in the video
``picks``           (n_steps,)          frame index of each step (every 15th frame: 2 fps)
``n_steps``         scalar              ``len(features)``
``video_name``      scalar (optional)   the source video's name
==================  ==================  =====================================================

:func:`read_video` checks all of it and every error names the file, the video and the field:
a missing field, lengths that disagree (picks vs features, user_summary width vs n_frames) and
shots that do not tile ``0 .. n_frames-1`` exactly once. :func:`write_video` writes the same
layout (the built-in datasets use it) and :class:`Eccv16Dataset` serves videos to a DataLoader.
A file h5py cannot open (truncated, damaged, not HDF5) is an :class:`Eccv16FormatError` naming it.
:mod:`crossmedia.data.eccv16_releases` checks and copies a downloaded file into ``data/``.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["FIELDS", "Eccv16FormatError", "VideoRecord", "eccv16_filename", "make_key", "parse_key", "list_videos",
           "read_video",
           "write_video", "open_eccv16", "eccv16_files_complete", "Eccv16Dataset"]

FIELDS: tuple[str, ...] = ("features", "gtscore", "gtsummary", "user_summary", "change_points", "n_frame_per_seg",
                           "n_frames", "picks", "n_steps")


class Eccv16FormatError(ValueError):
    """An eccv16 h5 file breaks the format; the message names the file, the video and the field."""


@dataclass(eq=False)
class VideoRecord:
    """One video of an eccv16 file (shapes in the module docstring)."""

    key: str  # the video group, e.g. "video_1"
    features: np.ndarray  # (n_steps, D) float32
    gtscore: np.ndarray  # (n_steps,) float32
    gtsummary: np.ndarray  # (n_steps,) float32
    user_summary: np.ndarray | None  # (n_users, n_frames) float32; None only where not required
    change_points: np.ndarray  # (n_seg, 2) int64, inclusive frame ranges
    n_frame_per_seg: np.ndarray  # (n_seg,) int64
    n_frames: int
    picks: np.ndarray  # (n_steps,) int64
    video_name: str | None = None

    @property
    def n_steps(self) -> int:
        return int(self.features.shape[0])

    def as_tensors(self) -> dict[str, Any]:
        """The fields as torch tensors (ints stay ints), the form :class:`Eccv16Dataset` yields."""
        out: dict[str, Any] = {"key": self.key, "n_frames": self.n_frames, "n_steps": self.n_steps}
        if self.video_name is not None:
            out["video_name"] = self.video_name
        for name in ("features", "gtscore", "gtsummary", "change_points", "n_frame_per_seg", "picks"):
            out[name] = torch.from_numpy(getattr(self, name))
        if self.user_summary is not None:
            out["user_summary"] = torch.from_numpy(self.user_summary)
        return out


# helpers

def eccv16_filename(name: str) -> str:
    """``eccv16_dataset_<name>_google_pool5.h5``, the published file name of dataset ``name``."""
    return f"eccv16_dataset_{name}_google_pool5.h5"


def make_key(dataset: str | Path, video: str) -> str:
    """``<h5 stem>/<video>``, our split-file key, for an h5 file path (or stem) and a video group."""
    return f"{Path(dataset).name.removesuffix('.h5')}/{video}"


def parse_key(key: str) -> tuple[str | None, str]:
    """(h5 stem or None, video group) of a split-file key in any published form.

    ``eccv16_dataset_summe_google_pool5/video_1`` (ours), ``../datasets/eccv16_dataset_summe_google_pool5.h5/video_1``
    (DSNet) and a bare ``video_1`` (pytorch-vsumm-reinforce, one dataset per file: stem None).
    """
    parts = [p for p in str(key).replace("\\", "/").split("/") if p]
    if not parts:
        raise ValueError(f"empty video key {key!r}")
    return (None, parts[0]) if len(parts) == 1 else (parts[-2].removesuffix(".h5"), parts[-1])


@contextmanager
def open_eccv16(path: str | Path) -> Iterator[h5py.File]:
    """Open an eccv16 file for reading; a missing, damaged or non-HDF5 file is an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"eccv16 file {path} does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise Eccv16FormatError(
            f"{path}: not a readable HDF5 file ({error}); an eccv16 file is HDF5 with one group per video: "
            f"this one is truncated, damaged or not HDF5 at all, so download it again") from error
    with handle:
        yield handle


def _natural(key: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))


def _error(file: Any, key: str, message: str) -> Eccv16FormatError:
    return Eccv16FormatError(f"{file}: video {key!r}: {message}")


def _integer(value: np.ndarray, file: Any, key: str, field: str) -> np.ndarray:
    """``value`` as int64, refusing non-integral or non-finite numbers."""
    value = np.asarray(value)
    if value.dtype.kind in "iu":
        return value.astype(np.int64)
    if value.dtype.kind != "f" or not np.all(np.isfinite(value)) or np.any(value != np.round(value)):
        raise _error(file, key, f"field {field!r} must hold integers, got {value.dtype} values like "
                                f"{value.ravel()[:3]}")
    return value.astype(np.int64)


def _scalar(value: np.ndarray, file: Any, key: str, field: str) -> int:
    value = np.asarray(value)
    if value.size != 1:
        raise _error(file, key, f"field {field!r} must be a single number, got shape {value.shape}")
    return int(_integer(value.reshape(-1), file, key, field)[0])


def _text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)
        if value.dtype.kind == "S" and value.size > 1:  # a string stored as an array of characters
            return b"".join(value.tolist()).decode("utf-8")
        value = value[0] if value.size else ""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_field(group: h5py.Group, file: Any, key: str, field: str) -> Any:
    try:
        return group[field][()]
    except OSError as error:
        raise _error(file, key, f"field {field!r} cannot be read ({error}); the file is damaged: "
                                f"download it again") from error


def _check(record: VideoRecord, file: Any, *, strict: bool, require_user_summary: bool) -> None:
    """Every cross-field rule of the format; raises :class:`Eccv16FormatError`."""
    key, n_frames = record.key, record.n_frames
    if record.features.ndim != 2 or record.n_steps == 0:
        raise _error(file, key, f"field 'features' must be (n_steps, D) with n_steps >= 1, got {record.features.shape}")
    if not np.all(np.isfinite(record.features)):
        raise _error(file, key, "field 'features' holds NaN or infinite values")
    if n_frames < 1:
        raise _error(file, key, f"field 'n_frames' must be >= 1, got {n_frames}")
    for field in ("picks", "gtscore", "gtsummary"):
        value = getattr(record, field)
        if value.shape != (record.n_steps,):
            raise _error(file, key, f"field {field!r} has shape {value.shape} but 'features' has "
                                    f"{record.n_steps} steps: one entry per step expected")
    picks = record.picks
    if picks[0] < 0 or picks[-1] >= n_frames or np.any(np.diff(picks) <= 0):
        raise _error(file, key, f"field 'picks' must be strictly increasing frame indices in [0, n_frames={n_frames}), "
                                f"got {picks[:3].tolist()} ... {picks[-3:].tolist()}")
    users = record.user_summary
    if users is None and require_user_summary:
        raise _error(file, key, "missing field 'user_summary'")
    if users is not None and (users.ndim != 2 or users.shape[0] == 0 or users.shape[1] != n_frames):
        raise _error(file, key, f"field 'user_summary' has shape {users.shape}, "
                                f"expected (n_users, n_frames={n_frames})")
    cps, nfps = record.change_points, record.n_frame_per_seg
    if cps.ndim != 2 or cps.shape[1] != 2 or len(cps) == 0:
        raise _error(file, key, f"field 'change_points' must be (n_seg, 2) [start, end] rows, got shape {cps.shape}")
    if nfps.shape != (len(cps),):
        raise _error(file, key, f"field 'n_frame_per_seg' has shape {nfps.shape} for {len(cps)} change_points rows")
    if np.any(cps[:, 1] < cps[:, 0]) or cps.min() < 0 or cps.max() >= n_frames:
        raise _error(file, key, f"field 'change_points': every [start, end] needs "
                                f"0 <= start <= end < n_frames={n_frames}")
    if not strict:
        return
    gaps = np.flatnonzero(cps[1:, 0] != cps[:-1, 1] + 1)
    if cps[0, 0] != 0 or cps[-1, 1] != n_frames - 1 or gaps.size:
        if gaps.size:
            where = f"row {gaps[0] + 1} starts at {cps[gaps[0] + 1, 0]} after an end at {cps[gaps[0], 1]}"
        else:
            where = f"they span {cps[0, 0]}..{cps[-1, 1]}"
        raise _error(file, key, f"field 'change_points' does not cover frames 0..{n_frames - 1} (n_frames) exactly "
                                f"once: {where}")
    bad = np.flatnonzero(nfps != cps[:, 1] - cps[:, 0] + 1)
    if bad.size:
        raise _error(file, key, f"field 'n_frame_per_seg'[{bad[0]}] = {nfps[bad[0]]} but change_points row {bad[0]} "
                                f"holds {cps[bad[0], 1] - cps[bad[0], 0] + 1} frames")


def eccv16_files_complete(root: Path, meta: dict[str, Any]) -> bool:
    """The h5 file a dataset folder's ``meta`` names (of the size it records, if any) and its split
    file are in ``root`` (the check of a :class:`crossmedia.data.folder.DatasetFolder`)."""
    target, splits_file = Path(root) / str(meta.get("file", "")), meta.get("splits_file")
    return (target.is_file() and meta.get("size", target.stat().st_size) == target.stat().st_size
            and splits_file is not None and (Path(root) / splits_file).is_file())


# reading and writing

def list_videos(h5file: str | Path | h5py.File) -> list[str]:
    """The video groups of an eccv16 file in natural order (video_1, video_2, ..., video_10)."""
    if isinstance(h5file, h5py.File):
        return sorted(h5file.keys(), key=_natural)
    with open_eccv16(h5file) as handle:
        return sorted(handle.keys(), key=_natural)


def read_video(h5file: str | Path | h5py.File, key: str, *, strict: bool = True,
               require_user_summary: bool = True) -> VideoRecord:
    """Read and check video group ``key`` of an eccv16 file (a path or an open ``h5py.File``).

    ``strict=False`` accepts shots that do not tile the video or disagree with
    ``n_frame_per_seg`` (the protocol then still runs, on ``n_frame_per_seg``, as the reference
    code does); ``require_user_summary=False`` accepts a video without annotations (training-only
    data) and leaves ``user_summary`` None.
    """
    if not isinstance(h5file, h5py.File):
        with open_eccv16(h5file) as handle:
            return read_video(handle, key, strict=strict, require_user_summary=require_user_summary)
    file = h5file.filename
    if key not in h5file:
        known = list_videos(h5file)
        raise KeyError(f"{file}: no video {key!r}; the file holds {len(known)} videos: {', '.join(known[:8])}"
                       f"{' ...' if len(known) > 8 else ''}")
    group = h5file[key]
    if not isinstance(group, h5py.Group):
        raise _error(file, key, "is a dataset, not a group of fields")
    optional = {"video_name"} | (set() if require_user_summary else {"user_summary"})
    missing = [f for f in FIELDS if f not in group and f not in optional]
    if missing:
        raise _error(file, key, f"missing field {missing[0]!r}" + (f" (and {', '.join(map(repr, missing[1:]))})"
                                                                   if len(missing) > 1 else "")
                     + f"; fields present: {', '.join(sorted(group.keys())) or 'none'}")
    raw = {f: _read_field(group, file, key, f) for f in FIELDS if f in group}
    record = VideoRecord(
        key=key,
        features=np.asarray(raw["features"], dtype=np.float32),
        gtscore=np.asarray(raw["gtscore"], dtype=np.float32).reshape(-1),
        gtsummary=np.asarray(raw["gtsummary"], dtype=np.float32).reshape(-1),
        user_summary=None if "user_summary" not in raw else np.asarray(raw["user_summary"], dtype=np.float32),
        change_points=_integer(raw["change_points"], file, key, "change_points"),
        n_frame_per_seg=_integer(raw["n_frame_per_seg"], file, key, "n_frame_per_seg").reshape(-1),
        n_frames=_scalar(raw["n_frames"], file, key, "n_frames"),
        picks=_integer(raw["picks"], file, key, "picks").reshape(-1),
        video_name=_text(group["video_name"][()]) if "video_name" in group else None,
    )
    n_steps = _scalar(raw["n_steps"], file, key, "n_steps")
    if n_steps != record.n_steps:
        raise _error(file, key, f"field 'n_steps' = {n_steps} but 'features' has {record.n_steps} rows")
    _check(record, file, strict=strict, require_user_summary=require_user_summary)
    return record


def write_video(h5file: str | Path | h5py.File, key: str, record: VideoRecord) -> None:
    """Write ``record`` as video group ``key`` (replacing one of that name), checked first."""
    if not isinstance(h5file, h5py.File):
        with h5py.File(Path(h5file), "a") as handle:
            write_video(handle, key, record)
        return
    _check(record, h5file.filename, strict=True, require_user_summary=record.user_summary is not None)
    if key in h5file:
        del h5file[key]
    group = h5file.create_group(key)
    group["features"] = record.features.astype(np.float32)
    group["gtscore"] = record.gtscore.astype(np.float32)
    group["gtsummary"] = record.gtsummary.astype(np.float32)
    if record.user_summary is not None:
        group["user_summary"] = record.user_summary.astype(np.float32)
    group["change_points"] = record.change_points.astype(np.int32)
    group["n_frame_per_seg"] = record.n_frame_per_seg.astype(np.int32)
    group["n_frames"] = np.int64(record.n_frames)
    group["picks"] = record.picks.astype(np.int32)
    group["n_steps"] = np.int64(record.n_steps)
    if record.video_name is not None:
        group["video_name"] = record.video_name


# classes

class Eccv16Dataset(Dataset):
    """Videos of one or more eccv16 files, each item a dict of tensors (:meth:`VideoRecord.as_tensors`).

    ``keys`` select the videos in split-file form (``<h5 stem>/<video>``, an h5 path plus
    ``/<video>``, or a bare ``<video>`` when there is one file); by default every video of every
    file. Everything is read and checked once, here: a bad file fails before training starts.
    """

    def __init__(self, files: str | Path | Sequence[str | Path], *, keys: Sequence[str] | None = None,
                 strict: bool = True, require_user_summary: bool = True) -> None:
        paths = [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]
        by_stem = {p.name.removesuffix(".h5"): p for p in paths}
        if len(by_stem) != len(paths):
            raise ValueError(f"two files share a name: {[str(p) for p in paths]}")
        if keys is None:
            keys = [f"{stem}/{video}" for stem, path in by_stem.items() for video in list_videos(path)]
        wanted: dict[str, list[tuple[str, str]]] = {}
        for key in keys:
            stem, video = parse_key(key)
            if stem is None:
                if len(by_stem) != 1:
                    raise ValueError(f"video key {key!r} names no file, and there are {len(by_stem)} files; "
                                     f"write it as <h5 stem>/{video}")
                stem = next(iter(by_stem))
            if stem not in by_stem:
                raise KeyError(f"video key {key!r} names dataset {stem!r}, which is not among the files "
                               f"{', '.join(str(p) for p in paths)}")
            wanted.setdefault(stem, []).append((key, video))
        loaded: dict[str, VideoRecord] = {}
        for stem, items in wanted.items():
            with open_eccv16(by_stem[stem]) as handle:
                for key, video in items:
                    loaded[key] = read_video(handle, video, strict=strict, require_user_summary=require_user_summary)
        self.keys: list[str] = list(keys)
        self.records: list[VideoRecord] = [loaded[key] for key in self.keys]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.records[index].as_tensors()
        item["key"] = self.keys[index]
        return item
