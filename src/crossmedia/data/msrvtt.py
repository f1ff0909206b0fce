"""MSR-VTT (Xu, Mei, Yao and Rui, "MSR-VTT: A Large Video Description Dataset for Bridging Video and
Language", CVPR 2016): 10,000 web video clips with 20 English captions each, and its annotation format.

The release's annotation files (``train_val_videodatainfo.json``, ``test_videodatainfo.json``, or a
single ``videodatainfo.json``) are one JSON object::

    {"info": {...},
     "videos": [{"video_id": "video0", "id": 0, "split": "train", "category": 9, "url": "...",
                 "start time": 137.72, "end time": 149.44}, ...],
     "sentences": [{"video_id": "video0", "caption": "a car is shown", "sen_id": 0}, ...]}

``split`` is ``train`` (6,513 videos), ``validate`` (497) or ``test`` (2,990); :func:`read_msrvtt`
reports ``validate`` as ``val``. The built-in ``puppet-captions``
(:mod:`crossmedia.data.builtin.puppet_captions`) is written in this format, with the clip's truth
under an extra ``puppet`` key of each video, which :attr:`VideoCaptions.extra` carries.

:func:`read_msrvtt` is strict: a file that is not JSON, lacks ``videos`` or ``sentences``, has a
video without ``video_id`` or with an unknown ``split`` or a non-integer ``category``, a repeated
video id, a sentence for a video id the file does not list, a caption that is not a non-empty
string, or a video without any sentence, raises :class:`MSRVTTFormatError` (a ``ValueError``) naming
the file, the entry and the field, and saying how to fix it.

Videos: ``<root>/videos/<video_id>.mp4`` (or ``.avi`` / ``.webm``), found by :func:`video_path` and
decoded with :func:`crossmedia.data.video.read_video` (PyAV).

Per-stream features, keyed by video id, are read with :class:`crossmedia.data.features.FeatureStore`,
which already reads both layouts video captioning code stores them in: an HDF5 file with one
``(T, D)`` dataset per video named by its id (``/video0``, ``/video1`` ...), and a folder of
``<video_id>.npy`` files, one ``(T, D)`` array each (the ST-XlanV reference code's layout).
``FeatureStore.open(path).get("video0")`` returns the float32 ``(T, D)`` array (``T`` frames or
segments of that stream; a ``(D,)`` vector comes back as ``(1, D)``), ``.dim`` is ``D`` and
``.check(video_ids)`` names the ids without features; its messages say "image id" for the key.

``crossmedia data prepare msrvtt --source DIR`` reads the release in ``DIR`` (the annotation files
above and the folders ``TrainValVideo/`` and ``TestVideo/``, or ``videos/``, of ``video<N>.mp4``),
checks every annotation and that every video file is there, then writes ``data/msrvtt/``: the
merged ``annotations.json``, ``videos/<video_id>.mp4`` linked to the download (copied where links
cannot be made) and ``meta.json`` last.
"""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from crossmedia.data.folder import DatasetFolder, read_json_object, read_meta
from crossmedia.data.registry import register_dataset, register_folder_format

__all__ = ["MSRVTTFormatError", "VideoCaptions", "SPLITS", "VIDEO_SUFFIXES", "read_msrvtt", "annotation_file",
           "video_path", "looks_like_msrvtt", "msrvtt_ready", "missing_videos", "prepare_msrvtt"]

SPLITS = {"train": "train", "validate": "val", "val": "val", "test": "test"}  # MSR-VTT's name -> ours
VIDEO_SUFFIXES = (".mp4", ".avi", ".webm")
JSON_NAME = "annotations.json"
_FORMAT = "msrvtt"
_RELEASE_FILES = (("train_val_videodatainfo.json", "test_videodatainfo.json"), ("videodatainfo.json",))
_VIDEO_DIRS = ("TrainValVideo", "TestVideo", "videos")
_LAYOUT = ("the MSR-VTT release: train_val_videodatainfo.json and test_videodatainfo.json (or one "
           "videodatainfo.json), and the videos video<N>.mp4 under TrainValVideo/ and TestVideo/ (or videos/)")
_SHOWN = 5


class MSRVTTFormatError(ValueError):
    """An MSR-VTT annotation file is malformed; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class VideoCaptions:
    """One video of an MSR-VTT annotation file: its id, split (``train`` / ``val`` / ``test``), captions
    (in file order), category (MSR-VTT's 0-19, the action id on ``puppet-captions``, None when absent) and
    ``extra`` (the ``puppet`` truth on built-in data, else empty)."""

    video_id: str
    split: str
    captions: tuple[str, ...]
    category: int | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


# helpers


def _load(path: Path) -> dict[str, Any]:
    """The JSON object of an annotation file, with ``videos`` and ``sentences`` lists."""
    if not path.is_file():
        raise FileNotFoundError(f"MSR-VTT annotation file {path} does not exist; expected {_LAYOUT}")
    doc = read_json_object(path, MSRVTTFormatError, shape=" with 'videos' and 'sentences' lists",
                           fix="the file is truncated or damaged: extract it again from the MSR-VTT release")
    for key in ("videos", "sentences"):
        if key not in doc:
            raise MSRVTTFormatError(f"{path}: no {key!r} list; an MSR-VTT annotation file holds 'videos' (video_id, "
                                    f"split, ...) and 'sentences' (video_id, caption); give it the missing list")
        if not isinstance(doc[key], list):
            raise MSRVTTFormatError(f"{path}: {key!r} is {type(doc[key]).__name__}, not a list of objects")
    return doc


def _parse(path: Path, doc: dict[str, Any]) -> list[VideoCaptions]:
    videos: dict[str, dict[str, Any]] = {}
    for i, video in enumerate(doc["videos"]):
        where = f"{path}: videos[{i}]"
        if not isinstance(video, dict):
            raise MSRVTTFormatError(f"{where} is {type(video).__name__}, not an object with video_id and split")
        video_id = video.get("video_id")
        if not isinstance(video_id, str) or not video_id:
            raise MSRVTTFormatError(f"{where}: field 'video_id' is {video_id!r}; give every video its id as a string "
                                    f"such as 'video0'")
        where = f"{path}: videos[{i}] ({video_id!r})"
        if video_id in videos:
            raise MSRVTTFormatError(f"{where}: field 'video_id' repeats an earlier video; each video must be listed "
                                    f"once")
        split = video.get("split")
        if split not in SPLITS:
            raise MSRVTTFormatError(f"{where}: field 'split' is {split!r}; expected 'train', 'validate' or 'test' "
                                    f"(MSR-VTT's split names; 'val' is read too)")
        category = video.get("category")
        if category is not None and (isinstance(category, bool) or not isinstance(category, int)):
            raise MSRVTTFormatError(f"{where}: field 'category' is {category!r}; expected an integer (MSR-VTT's "
                                    f"0-19) or no field")
        extra = video.get("puppet", {})
        if not isinstance(extra, dict):
            raise MSRVTTFormatError(f"{where}: field 'puppet' is {type(extra).__name__}; expected an object")
        videos[video_id] = {"split": SPLITS[split], "category": category, "extra": extra, "captions": []}
    if not videos:
        raise MSRVTTFormatError(f"{path}: 'videos' is empty; list at least one video")
    for i, sentence in enumerate(doc["sentences"]):
        where = f"{path}: sentences[{i}]"
        if not isinstance(sentence, dict):
            raise MSRVTTFormatError(f"{where} is {type(sentence).__name__}, not an object with video_id and caption")
        video_id = sentence.get("video_id")
        if video_id not in videos:
            raise MSRVTTFormatError(f"{where}: field 'video_id' is {video_id!r}, a video the file's 'videos' list "
                                    f"does not hold; add the video or remove the sentence")
        caption = sentence.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            raise MSRVTTFormatError(f"{where} ({video_id!r}): field 'caption' is {caption!r}; expected a non-empty "
                                    f"string")
        videos[video_id]["captions"].append(caption.strip())
    bare = [video_id for video_id, video in videos.items() if not video["captions"]]
    if bare:
        shown = ", ".join(map(repr, bare[:_SHOWN])) + (" ..." if len(bare) > _SHOWN else "")
        raise MSRVTTFormatError(f"{path}: {len(bare)} video(s) in 'videos' have no sentence in 'sentences' "
                                f"({shown}); add their captions or remove the videos")
    return [VideoCaptions(video_id, v["split"], tuple(v["captions"]), v["category"], v["extra"])
            for video_id, v in videos.items()]


def _sample(items: list) -> str:
    return ", ".join(map(str, items[:_SHOWN])) + (f" ... ({len(items)} in all)" if len(items) > _SHOWN else "")


# functions


def annotation_file(root: str | Path) -> Path:
    """The annotation JSON of an MSR-VTT folder: the one ``meta.json`` names in ``file``, else
    ``annotations.json``, else ``videodatainfo.json``; raises ``FileNotFoundError`` naming what it looked for."""
    root = Path(root)
    meta = read_meta(root) or {}
    candidates = [root / str(meta["file"])] if meta.get("file") else []
    candidates += [root / JSON_NAME, root / "videodatainfo.json"]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise FileNotFoundError(f"{root}: no MSR-VTT annotation file (looked for "
                                f"{', '.join(p.name for p in candidates)}); prepare the download with "
                                f"`crossmedia data prepare msrvtt --source DIR`, DIR being {_LAYOUT}")
    return found


def read_msrvtt(path: str | Path) -> list[VideoCaptions]:
    """Every video of an MSR-VTT annotation file (or of the folder holding it: :func:`annotation_file`), in
    file order, with its captions. Raises :class:`MSRVTTFormatError` for the malformed files of the module
    docstring and ``FileNotFoundError`` for a missing file."""
    path = Path(path)
    if path.is_dir():
        path = annotation_file(path)
    return _parse(path, _load(path))


def video_path(root: str | Path, video_id: str) -> Path:
    """``root/videos/<video_id>.mp4`` (or ``.avi``, ``.webm``): the first that exists; ``FileNotFoundError``
    names the paths searched."""
    folder = Path(root) / "videos"
    for suffix in VIDEO_SUFFIXES:
        path = folder / f"{video_id}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no video file for {video_id!r}: looked for {folder / video_id}"
                            f"{{{','.join(VIDEO_SUFFIXES)}}}; put the video there or prepare the dataset again")


def missing_videos(root: str | Path, records: list[VideoCaptions]) -> list[str]:
    """The ids of ``records`` with no video file under ``root/videos``."""
    folder = Path(root) / "videos"
    present = set()
    if folder.is_dir():
        with os.scandir(folder) as entries:
            present = {os.path.splitext(e.name)[0] for e in entries if e.name.endswith(VIDEO_SUFFIXES)}
    return [r.video_id for r in records if r.video_id not in present]


def looks_like_msrvtt(path: str | Path) -> bool:
    """A cheap sign (the first 64 kB) that ``path`` is an MSR-VTT annotation JSON: it names ``sentences``
    and ``video_id``."""
    path = Path(path)
    if path.suffix != ".json" or path.name == "meta.json" or not path.is_file():
        return False
    with path.open(encoding="utf-8", errors="replace") as handle:
        head = handle.read(1 << 16)
    return '"sentences"' in head and '"video_id"' in head


def msrvtt_ready(root: Path, meta: dict) -> bool:
    """``meta`` (of ``root``) describes a folder in MSR-VTT format whose annotation file and ``videos/`` are there."""
    return (meta.get("format") == _FORMAT and (Path(root) / str(meta.get("file", JSON_NAME))).is_file()
            and (Path(root) / "videos").is_dir())


@register_folder_format("msrvtt")
def msrvtt_folder(root: Path) -> bool:
    """``root`` holds a folder in MSR-VTT format (prepared: ``meta.json`` says so; or a user's, without
    ``meta.json``: an ``annotations.json`` or ``videodatainfo.json`` in that format beside ``videos/``),
    used as it is under any dataset name."""
    root = Path(root)
    meta = read_meta(root)
    if meta is not None:
        return msrvtt_ready(root, meta)
    return (root / "videos").is_dir() and any(looks_like_msrvtt(root / name)
                                              for name in (JSON_NAME, "videodatainfo.json"))


def _release_files(source: Path) -> list[Path]:
    for names in _RELEASE_FILES:
        present = [source / name for name in names if (source / name).is_file()]
        if len(present) == len(names):
            return present
        if present:
            missing = [name for name in names if not (source / name).is_file()]
            raise FileNotFoundError(f"{source} has {present[0].name} but not {', '.join(missing)}; extract the "
                                    f"missing annotation file from the MSR-VTT release beside it")
    raise FileNotFoundError(f"{source} holds no MSR-VTT annotation file (train_val_videodatainfo.json with "
                            f"test_videodatainfo.json, or videodatainfo.json); expected {_LAYOUT}")


def _place(link: Path, target: Path) -> None:
    """``link`` -> ``target`` as a symbolic link, a copy where links cannot be made."""
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        link.symlink_to(target)
    except OSError:
        shutil.copy2(target, link)


def prepare_msrvtt(root: Path, *, source: Path, progress: bool = True) -> Path:
    """Check an MSR-VTT download (every annotation, every video file) and write the dataset folder ``root``.

    Raises ``FileNotFoundError`` naming what is missing (an annotation file, a video folder, videos by id)
    and :class:`MSRVTTFormatError` for a malformed annotation file or a video listed in two files.
    """
    root, source = Path(root), Path(source).resolve()
    if not source.is_dir():
        raise FileNotFoundError(f"msrvtt source folder {source} does not exist; expected {_LAYOUT}")
    files = _release_files(source)
    folder = DatasetFolder(root, {"name": "msrvtt", "source": str(source)}, complete=msrvtt_ready)
    if folder.ready():
        return root
    docs = [_load(path) for path in files]
    owner: dict[str, Path] = {}
    for path, doc in zip(files, docs):
        for record in _parse(path, doc):
            if record.video_id in owner:
                raise MSRVTTFormatError(f"{path}: video {record.video_id!r} is also listed in {owner[record.video_id]};"
                                        f" each video must be in one annotation file")
            owner[record.video_id] = path
    video_dirs = [source / name for name in _VIDEO_DIRS if (source / name).is_dir()]
    if not video_dirs:
        raise FileNotFoundError(f"{source} has no TrainValVideo/, TestVideo/ or videos/ folder; expected {_LAYOUT}")
    found: dict[str, Path] = {}
    for directory in video_dirs:
        with os.scandir(directory) as entries:
            for entry in entries:
                stem, suffix = os.path.splitext(entry.name)
                if suffix.lower() in VIDEO_SUFFIXES and stem in owner:
                    found.setdefault(stem, Path(entry.path))
    missing = [video_id for video_id in owner if video_id not in found]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(owner)} MSR-VTT videos have no file in "
                                f"{', '.join(str(d) for d in video_dirs)}: {_sample(missing)}; extract them from "
                                f"the release (video<N>.mp4)")
    with folder.rewriting() as meta:
        shutil.rmtree(root / "videos", ignore_errors=True)
        (root / "videos").mkdir()
        for video_id in tqdm(owner, desc="msrvtt: linking videos", unit="video", disable=not progress):
            _place(root / "videos" / found[video_id].name, found[video_id])
        merged = {"info": docs[0].get("info", {}), "videos": [v for doc in docs for v in doc["videos"]],
                  "sentences": [s for doc in docs for s in doc["sentences"]]}
        partial = root / (JSON_NAME + ".partial")
        partial.write_text(json.dumps(merged, separators=(",", ":")) + "\n", encoding="utf-8")
        os.replace(partial, root / JSON_NAME)
        counts = Counter(SPLITS[v["split"]] for v in merged["videos"])
        meta.update({**folder.expected, "kind": "caption", "format": _FORMAT, "file": JSON_NAME, "videos": "videos",
                     "num_videos": len(owner), "num_sentences": len(merged["sentences"]),
                     "counts": {split: counts[split] for split in ("train", "val", "test")},
                     "annotation_files": [path.name for path in files]})
    return root


@register_dataset("msrvtt", kind="caption", builtin=False, source_layout=_LAYOUT,
                  ready=lambda root: DatasetFolder(root, {"name": "msrvtt"}, complete=msrvtt_ready).ready(),
                  summary="MSR-VTT: 10,000 web video clips (train 6,513 / validate 497 / test 2,990), 20 captions each")
def _prepare(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
    return prepare_msrvtt(root, source=source, progress=progress)
