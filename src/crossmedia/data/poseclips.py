"""Labelled pose clips of a prepared folder: the clips, their action names, their splits, their frames.

A folder in the PoseTrack-style layout read by :func:`crossmedia.data.posetrack.read_posetrack` (the
built-in ``puppets``, a prepared ``penn-action``, or any folder whose ``meta.json`` names such a
JSON in ``file``) holds clips of one person with an action label and, optionally, a split. What
every task reading such a folder needs lives here: the pose-video task reads keypoints and frame
pairs from it, the classify task whole clips of frames.
"""
from __future__ import annotations

from pathlib import Path

from crossmedia.data.folder import read_meta
from crossmedia.data.posetrack import PoseClip, read_posetrack

__all__ = ["SPLITS", "read_pose_folder", "clip_splits", "even_frames"]

SPLITS = ("train", "val", "test")


def read_pose_folder(root: Path) -> tuple[list[PoseClip], list[str]]:
    """The clips of a prepared pose folder and its action names (``meta.json``'s ``actions`` when it
    lists them, else the sorted set of the clips' actions)."""
    meta = read_meta(root) or {}
    json_path = root / str(meta.get("file", "annotations.json"))
    clips = read_posetrack(json_path, frame_root=root)
    unlabelled = [c.video_id for c in clips if c.action is None]
    if unlabelled:
        raise ValueError(f"{json_path}: {len(unlabelled)} video(s) have no action label (first: {unlabelled[0]!r}); "
                         "give each video an 'action' in the top-level 'videos' list or on its images")
    actions = list(meta.get("actions") or sorted({c.action for c in clips}))
    unknown = sorted({c.action for c in clips} - set(actions))
    if unknown:
        raise ValueError(f"{json_path}: actions {unknown} are not in meta.json's 'actions' list {actions}")
    return clips, actions


def clip_splits(clips: list[PoseClip], root: Path) -> dict[str, list[int]]:
    """Clip indices per split: the clips' own ``split`` fields (all of them, or none: then every
    10th clip from the 2nd is val and from the 3rd test, the rest train). No val clips: test stands in."""
    given = [c.split for c in clips]
    if all(s is None for s in given):
        given = ["val" if i % 10 == 1 else "test" if i % 10 == 2 else "train" for i in range(len(clips))]
    elif any(s is None for s in given):
        missing = next(c.video_id for c in clips if c.split is None)
        raise ValueError(f"{root}: some videos have a split and some do not (first without: {missing!r}); "
                         "give every video a 'split' or none")
    bad = sorted({s for s in given} - set(SPLITS))
    if bad:
        raise ValueError(f"{root}: unknown split(s) {bad}; expected {SPLITS}")
    out = {split: [i for i, s in enumerate(given) if s == split] for split in SPLITS}
    if not out["val"]:
        out["val"] = out["test"]
    for split in ("train", "test"):
        if not out[split]:
            raise ValueError(f"{root}: no '{split}' clips; a pose folder needs train and test videos")
    return out


def even_frames(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``num_frames`` from the first (16 -> 8: 0, 2, ..., 14)."""
    if not 1 <= count <= num_frames:
        raise ValueError(f"cannot take {count} frames of a {num_frames}-frame clip (1 to {num_frames})")
    return [t * num_frames // count for t in range(count)]
