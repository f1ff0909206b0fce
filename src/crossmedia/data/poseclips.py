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
from crossmedia.data.registry import register_folder_format

__all__ = ["SPLITS", "looks_like_pose_json", "pose_json", "read_pose_folder", "clip_splits", "even_frames"]

SPLITS = ("train", "val", "test")


def looks_like_pose_json(path: Path) -> bool:
    """A cheap sign (the first 64 kB) that ``path`` is a PoseTrack / COCO keypoint JSON: it names
    ``keypoints``, or video frames (``vid_id`` / ``frame_id``, which PoseTrack's images list first)."""
    if path.name == "meta.json" or path.suffix != ".json":
        return False
    with path.open(encoding="utf-8", errors="replace") as handle:
        head = handle.read(1 << 16)
    return '"keypoints"' in head or '"frame_id"' in head or '"vid_id"' in head


def pose_json(root: Path) -> Path:
    """The keypoint JSON of a pose folder: the one ``meta.json`` names in ``file``, else
    ``annotations.json``, else the one ``*.json`` of a user's folder (any name) that holds
    ``keypoints``; several candidates or none raise, naming what is there."""
    meta = read_meta(root) or {}
    if meta.get("file") or (root / "annotations.json").is_file():
        return root / str(meta.get("file", "annotations.json"))
    found = [path for path in sorted(Path(root).glob("*.json")) if looks_like_pose_json(path)]
    if len(found) != 1:
        named = ", ".join(path.name for path in found) or "none"
        raise FileNotFoundError(f"{root}: expected one PoseTrack / COCO-17 keypoint JSON (images[], annotations[] "
                                f"with keypoints, an action per video), found {named}; keep one, or name it "
                                f"annotations.json")
    return found[0]


@register_folder_format("posetrack")
def users_pose_folder(root: Path) -> bool:
    """``root`` is a user's pose folder (no ``meta.json``, a keypoint JSON of any name), used as it is
    (with several, :func:`pose_json` says which it found when the folder is read)."""
    if read_meta(root) is not None or not Path(root).is_dir():
        return False
    return any(looks_like_pose_json(path) for path in Path(root).glob("*.json"))


def read_pose_folder(root: Path) -> tuple[list[PoseClip], list[str]]:
    """The clips of a pose folder (prepared, or a user's with one keypoint JSON of any name:
    :func:`pose_json`) and its action names (``meta.json``'s ``actions`` when it lists them, else
    the sorted set of the clips' actions)."""
    root = Path(root)
    meta = read_meta(root) or {}
    json_path = pose_json(root)
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
