"""Pose clips in the PoseTrack / COCO-17 keypoint JSON layout: one track of one video per clip.

PoseTrack 2018 (Andriluka et al., "PoseTrack: A Benchmark for Human Pose Estimation and
Tracking", CVPR 2018, arXiv 1710.10000) ships one COCO-style JSON per video::

    {"images": [{"id": 10003420000, "file_name": "images/val/000342_mpii_test/000000.jpg",
                 "vid_id": "000342", "frame_id": 10003420000, "nframes": 100, "is_labeled": true, ...}, ...],
     "annotations": [{"image_id": 10003420000, "track_id": 0, "category_id": 1,
                      "keypoints": [x1, y1, v1, ..., x17, y17, v17], "bbox": [...], ...}, ...],
     "categories": [{"id": 1, "name": "person", "keypoints": [...17 names...], "skeleton": [...]}]}

``keypoints`` are 17 (x, y, v) triples in the COCO-17 order of
:data:`~crossmedia.data.keypoints.COCO17` (PoseTrack fills the ear slots with "head_bottom" and
"head_top" and never labels the ears; we read the slots as they are). One file may hold several
videos. The required fields are ``images[].id``, ``file_name``, ``vid_id`` (string or number),
``frame_id`` (a number ordering the frames of a video) and ``annotations[].image_id``,
``track_id``, ``keypoints``; ``category_id``, when present, must be 1 (person). Extra fields are
ignored.

An action label per video is optional, in either of two places: a top-level ``videos`` list of
``{"id": <vid_id>, "action": "wave", "split": "train"}`` (the YouTube-VIS style our built-in
``puppets`` writes; ``split`` is optional too), or an ``action`` field on a video's image entries
(the same value on all of them). Images' ``height`` and ``width``, when given, become the clip's
``size``.

:func:`read_posetrack` returns one :class:`PoseClip` per (video, ``track_id``): the video's
frames, sorted by ``frame_id``, from the first to the last frame the track is annotated in, and
its keypoints ``(T, 17, 3)``; frames in that span where the track has no annotation get
all-zero keypoints (visibility 0). Nothing is skipped silently: every malformed entry is a
:class:`PoseFormatError` naming the file, the entry index and the field.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossmedia.data.folder import read_json_object
from crossmedia.data.keypoints import NUM_JOINTS

__all__ = ["PoseFormatError", "PoseClip", "read_posetrack"]

_HINT = ("a PoseTrack / COCO keypoint file has images[] with 'id', 'file_name', 'vid_id', 'frame_id' and "
         "annotations[] with 'image_id', 'track_id' and 'keypoints' (17 x (x, y, v) = 51 numbers)")


class PoseFormatError(ValueError):
    """A keypoint annotation file is malformed; the message names the file, the entry and the field."""


@dataclass(frozen=True, eq=False)
class PoseClip:
    """One person's pose over the frames of one video.

    ``keypoints`` is a float32 array ``(T, 17, 3)`` of (x, y, visibility) in the pixels of the
    frames, COCO-17 order; visibility 0 means "not there" (x = y = 0), > 0 "there" (COCO: 1
    labelled but occluded, 2 visible). ``frames`` are the T frame paths in time order.
    ``track_id`` tells the people of a multi-person video apart (None when the format has one
    person per video); ``action``, ``split`` and ``size`` (H, W) are None when the source does
    not give them. Compared by identity (it holds an array).
    """

    video_id: str
    frames: tuple[Path, ...]
    keypoints: np.ndarray
    track_id: int | None = None
    action: str | None = None
    split: str | None = None
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.keypoints.shape != (len(self.frames), NUM_JOINTS, 3):
            raise ValueError(f"PoseClip {self.video_id!r}: keypoints {self.keypoints.shape} do not match "
                             f"{len(self.frames)} frames x {NUM_JOINTS} joints x 3")

    @property
    def num_frames(self) -> int:
        return len(self.frames)


# helpers


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"keypoint file {path} does not exist")
    return read_json_object(path, PoseFormatError, shape=f" at the top level ({_HINT})",
                            fix="the file is truncated or damaged: download, extract or write it again")


def _list(path: Path, data: dict[str, Any], field: str, required: bool = True) -> list[Any]:
    value = data.get(field)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise PoseFormatError(f"{path}: expected a list {field!r} at the top level; {_HINT}")
    return value


def _field(path: Path, where: str, entry: Any, field: str, kinds: tuple[type, ...]) -> Any:
    if not isinstance(entry, dict) or field not in entry:
        raise PoseFormatError(f"{path}: {where} has no {field!r} field; {_HINT}")
    value = entry[field]
    if not isinstance(value, kinds) or isinstance(value, bool):
        names = " or ".join(kind.__name__ for kind in kinds)
        raise PoseFormatError(f"{path}: {where} field {field!r} is {value!r}, not {names}; {_HINT}")
    return value


_NUMBER_TYPES = {int, float}


def _keypoints(path: Path, where: str, entry: dict[str, Any]) -> np.ndarray:
    values = _field(path, where, entry, "keypoints", (list,))
    # type() per value in C (map), not isinstance in Python: a 50k-frame file is read in a second,
    # not five; a bool is refused (its type is bool, not int) and so is a value float32 cannot hold
    numbers = len(values) == 3 * NUM_JOINTS and set(map(type, values)) <= _NUMBER_TYPES
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused below
        keypoints = np.asarray(values, dtype=np.float32).reshape(NUM_JOINTS, 3) if numbers else None
    if keypoints is None or not np.isfinite(keypoints).all():
        raise PoseFormatError(f"{path}: {where} field 'keypoints' must be {3 * NUM_JOINTS} finite numbers "
                              f"(17 x (x, y, v), COCO-17 order), got {len(values)} values; {_HINT}")
    if (keypoints[:, 2] < 0).any():
        raise PoseFormatError(f"{path}: {where} field 'keypoints' has a negative visibility; v is 0 (absent), "
                              f"1 or 2")
    keypoints[keypoints[:, 2] == 0] = 0.0  # absent: (0, 0, 0), whatever the file wrote
    return keypoints


def _video_labels(path: Path, data: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Video id -> its optional ``action`` and ``split`` from the top-level ``videos`` list."""
    labels: dict[str, dict[str, str]] = {}
    for index, entry in enumerate(_list(path, data, "videos", required=False)):
        video = str(_field(path, f"videos[{index}]", entry, "id", (str, int)))
        labels[video] = {field: _field(path, f"videos[{index}] (id {video})", entry, field, (str,))
                         for field in ("action", "split") if field in entry}
    return labels


def _read_file(path: Path, frame_root: Path) -> list[PoseClip]:
    data = _load(path)
    images = _list(path, data, "images")
    annotations = _list(path, data, "annotations")
    labels = _video_labels(path, data)
    actions = {video: label["action"] for video, label in labels.items() if "action" in label}
    sizes: dict[str, tuple[int, int]] = {}  # video -> (H, W) of its first image that gives them
    image_video: dict[int, tuple[str, int]] = {}  # image id -> (video, frame_id)
    videos: dict[str, dict[int, tuple[int, Path]]] = defaultdict(dict)  # video -> frame_id -> (image id, path)
    for index, entry in enumerate(images):
        where = f"images[{index}]"
        image_id = _field(path, where, entry, "id", (int,))
        where = f"images[{index}] (id {image_id})"
        file_name = _field(path, where, entry, "file_name", (str,))
        video = str(_field(path, where, entry, "vid_id", (str, int)))
        frame_id = _field(path, where, entry, "frame_id", (int,))
        if image_id in image_video:
            raise PoseFormatError(f"{path}: {where} repeats image id {image_id}; image ids must be unique")
        if frame_id in videos[video]:
            raise PoseFormatError(f"{path}: {where} repeats frame_id {frame_id} of video {video!r}; each frame "
                                  f"of a video has its own frame_id")
        if "action" in entry:
            action = _field(path, where, entry, "action", (str,))
            if actions.setdefault(video, action) != action:
                raise PoseFormatError(f"{path}: {where} field 'action' is {action!r}, but video {video!r} is "
                                      f"labelled {actions[video]!r} elsewhere; a video has one action")
        if isinstance(entry.get("height"), int) and isinstance(entry.get("width"), int):
            sizes.setdefault(video, (entry["height"], entry["width"]))
        image_video[image_id] = (video, frame_id)
        videos[video][frame_id] = (image_id, frame_root / file_name)
    tracks: dict[tuple[str, int], dict[int, np.ndarray]] = defaultdict(dict)  # (video, track) -> frame_id -> kp
    for index, entry in enumerate(annotations):
        where = f"annotations[{index}]"
        image_id = _field(path, where, entry, "image_id", (int,))
        if image_id not in image_video:
            raise PoseFormatError(f"{path}: {where} field 'image_id' is {image_id}, which is not an id in images[]; "
                                  f"add the image or remove the annotation")
        track = _field(path, where, entry, "track_id", (int,))
        if entry.get("category_id", 1) != 1:
            raise PoseFormatError(f"{path}: {where} field 'category_id' is {entry['category_id']!r}; keypoint "
                                  f"annotations are of category 1 (person)")
        video, frame_id = image_video[image_id]
        if frame_id in tracks[video, track]:
            raise PoseFormatError(f"{path}: {where} is a second annotation of track {track} in image {image_id}; "
                                  f"a track has one pose per frame")
        tracks[video, track][frame_id] = _keypoints(path, where, entry)
    clips = []
    for (video, track), poses in sorted(tracks.items()):
        first, last = min(poses), max(poses)
        span = [f for f in sorted(videos[video]) if first <= f <= last]
        keypoints = np.stack([poses.get(f, np.zeros((NUM_JOINTS, 3), np.float32)) for f in span])
        clips.append(PoseClip(video_id=video, frames=tuple(videos[video][f][1] for f in span), keypoints=keypoints,
                              track_id=track, action=actions.get(video), split=labels.get(video, {}).get("split"),
                              size=sizes.get(video)))
    return clips


# functions


def read_posetrack(json_path: str | Path, frame_root: str | Path | None = None) -> list[PoseClip]:
    """Every (video, track) of a PoseTrack / COCO-17 keypoint JSON, or of every ``*.json`` in a folder.

    Args:
        json_path: one annotation file, or a folder of them (PoseTrack's ``annotations/train/``),
            read in name order.
        frame_root: the folder ``file_name`` is relative to (PoseTrack: the dataset root, whose
            ``images/`` the names start with); by default the folder of each JSON file.

    Returns:
        One :class:`PoseClip` per (video, track), sorted by video id and track id within a file.
        The frames are not opened.

    Raises:
        FileNotFoundError: ``json_path`` does not exist or is a folder without ``*.json``.
        PoseFormatError: a malformed file or entry (the file, the entry index and the field named).
    """
    json_path = Path(json_path)
    if json_path.is_dir():
        files = sorted(json_path.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"{json_path} holds no *.json keypoint file")
    else:
        files = [json_path]
    clips: list[PoseClip] = []
    for path in files:
        clips.extend(_read_file(path, Path(frame_root) if frame_root is not None else path.parent))
    return clips
