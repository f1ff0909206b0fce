"""Penn Action (Zhang, Zhu and Derpanis, "From Actemes to Action: A Strongly-supervised Representation
for Detailed Action Understanding", ICCV 2013): 2,326 clips of 15 actions with 13 joints per frame.

The release, as its README describes it, under one folder::

    frames/<video id>/000001.jpg, 000002.jpg, ...     the frames of each clip (RGB, at most 640 x 480)
    labels/<video id>.mat                             one MATLAB file per clip

Each ``.mat`` file holds the variables ``action`` (a string, e.g. ``tennis_serve``), ``pose``
(coarse viewpoint), ``x``, ``y`` (``nframes`` x 13, pixels), ``visibility`` (``nframes`` x 13,
0/1), ``train`` (1 = training clip, -1 = test clip), ``bbox`` (``nframes`` x 4), ``dimensions``
(``[H W nframes]``) and ``nframes``. They are read with :func:`scipy.io.loadmat` (which
unpickles nothing).

The 13 joints, in order: head, left_shoulder, right_shoulder, left_elbow, right_elbow,
left_wrist, right_wrist, left_hip, right_hip, left_knee, right_knee, left_ankle, right_ankle.
They map to COCO-17 (:data:`~crossmedia.data.keypoints.COCO17`) as head -> nose and each limb
joint to its COCO namesake; the eyes and ears, which Penn Action does not annotate, are
visibility 0. Left/right: the README names the joints left_* / right_* without saying whose left
is meant; we take them, as COCO does, as the person's own left and right and copy them across
unchanged (no swap). Annotators' left/right are known to be unreliable for people seen from the
back in crowd-sourced labels; nothing here corrects that. Penn Action annotates every joint's
position, visible or not: ``visibility`` 1 becomes COCO v = 2 (visible) and 0 becomes v = 1
(labelled but occluded), so the position is kept and ``keypoints[..., 2] == 2`` selects the
visible joints.

:func:`read_penn_action` returns one :class:`~crossmedia.data.posetrack.PoseClip` per clip
(``split`` ``train`` or ``test`` from ``train``, ``action``, ``size`` = (H, W) from
``dimensions``). Every inconsistency is a :class:`~crossmedia.data.posetrack.PoseFormatError`
naming the file and the field: a missing variable, ``x``/``y``/``visibility`` not ``nframes`` x 13,
``train`` not ±1, a clip without its frame folder or with a different number of frames, a frame
folder without its ``.mat`` file.

``crossmedia data prepare penn-action --source DIR`` reads and checks the whole download, then
writes the dataset folder: links ``frames`` and ``labels`` to the download and a ``meta.json`` (with
the per-split and per-action counts); :func:`read_penn_action` reads that folder as it reads the
download.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from crossmedia.data.folder import DatasetFolder, link_source, read_meta
from crossmedia.data.keypoints import NUM_JOINTS
from crossmedia.data.posetrack import PoseClip, PoseFormatError
from crossmedia.data.registry import register_dataset

__all__ = ["PENN_JOINTS", "PENN_TO_COCO", "PENN_ACTIONS", "read_penn_action", "read_penn_mat", "prepare_penn_action"]

PENN_JOINTS: tuple[str, ...] = (
    "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# Penn joint i -> COCO-17 index: head -> nose (0), the 12 limb joints -> COCO 5..16 (same names, same order)
PENN_TO_COCO: tuple[int, ...] = (0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
PENN_ACTIONS: tuple[str, ...] = (
    "baseball_pitch", "baseball_swing", "bench_press", "bowling", "clean_and_jerk", "golf_swing", "jump_rope",
    "jumping_jacks", "pull_ups", "push_ups", "sit_ups", "squats", "strumming_guitar", "tennis_forehand",
    "tennis_serve",
)
_REQUIRED = ("action", "x", "y", "visibility", "train", "nframes")
_SPLITS = {1: "train", -1: "test"}
_LAYOUT = ("the Penn_Action folder of the release: frames/<video id>/000001.jpg ... and labels/<video id>.mat "
           "(MATLAB files with action, x, y, visibility, train, nframes, ...)")
_FORMAT = "penn-action"


# helpers


def _scalar(path: Path, mat: dict[str, Any], field: str) -> Any:
    value = np.asarray(mat[field]).squeeze()
    if value.ndim != 0:
        raise PoseFormatError(f"{path}: variable {field!r} should be one value, got an array of shape "
                              f"{np.asarray(mat[field]).shape}")
    return value.item()


def _dirs(root: Path) -> tuple[Path, Path]:
    """(frames, labels) of a download, or of a prepared folder (its links or the paths its meta.json records)."""
    meta = read_meta(root) if (root / "meta.json").is_file() else None
    if meta is not None and meta.get("format") == _FORMAT:
        return root / meta["frames"], root / meta["labels"]
    return root / "frames", root / "labels"


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file())


# functions


def read_penn_mat(path: str | Path) -> dict[str, Any]:
    """One clip's labels: ``action`` (str), ``split``, ``nframes``, ``size`` (H, W) or None, and
    ``keypoints`` (nframes, 17, 3) float32 in COCO-17 order (the module docstring's mapping)."""
    from scipy.io import loadmat  # scipy is a dependency; imported here to keep `import crossmedia.data` light

    path = Path(path)
    try:
        mat = loadmat(path)
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError ... on damaged files
        raise PoseFormatError(f"{path}: not a readable MATLAB file ({error}); extract it again from the "
                              f"Penn Action archive") from error
    missing = [field for field in _REQUIRED if field not in mat]
    if missing:
        raise PoseFormatError(f"{path}: no variable {', '.join(map(repr, missing))}; a Penn Action label file "
                              f"holds {', '.join(_REQUIRED)} (and pose, bbox, dimensions)")
    action = np.asarray(mat["action"]).squeeze()
    if action.dtype.kind != "U" or action.ndim != 0 or not str(action).strip():
        raise PoseFormatError(f"{path}: variable 'action' should be a string such as 'tennis_serve', got "
                              f"{mat['action']!r}")
    nframes = _scalar(path, mat, "nframes")
    if not float(nframes).is_integer() or nframes < 1:
        raise PoseFormatError(f"{path}: variable 'nframes' is {nframes!r}, not a positive whole number")
    nframes = int(nframes)
    arrays = {}
    for field in ("x", "y", "visibility"):
        array = np.asarray(mat[field], dtype=np.float64)
        if array.shape != (nframes, len(PENN_JOINTS)):
            raise PoseFormatError(f"{path}: variable {field!r} has shape {array.shape}, expected (nframes, 13) = "
                                  f"({nframes}, 13); nframes and the joint arrays disagree")
        if not np.isfinite(array).all():
            raise PoseFormatError(f"{path}: variable {field!r} holds NaN or infinite values")
        arrays[field] = array
    if not np.isin(arrays["visibility"], (0, 1)).all():
        raise PoseFormatError(f"{path}: variable 'visibility' should hold 0 or 1 only")
    train = _scalar(path, mat, "train")
    if train not in _SPLITS:
        raise PoseFormatError(f"{path}: variable 'train' is {train!r}; expected 1 (training clip) or -1 (test clip)")
    size = None
    if "dimensions" in mat:
        dims = np.asarray(mat["dimensions"]).ravel()
        if dims.shape != (3,) or int(dims[2]) != nframes:
            raise PoseFormatError(f"{path}: variable 'dimensions' is {dims.tolist()}, expected [H W nframes] with "
                                  f"nframes = {nframes}")
        size = (int(dims[0]), int(dims[1]))
    keypoints = np.zeros((nframes, NUM_JOINTS, 3), dtype=np.float32)
    keypoints[:, PENN_TO_COCO, 0] = arrays["x"]
    keypoints[:, PENN_TO_COCO, 1] = arrays["y"]
    keypoints[:, PENN_TO_COCO, 2] = 1.0 + arrays["visibility"]  # 1 occluded (position kept), 2 visible
    return {"action": str(action), "split": _SPLITS[train], "nframes": nframes, "size": size,
            "keypoints": keypoints}


def read_penn_action(root: str | Path, *, progress: bool = False) -> list[PoseClip]:
    """Every clip of a Penn Action download (or of its prepared folder), sorted by video id.

    Raises:
        FileNotFoundError: ``frames/`` or ``labels/`` is missing, or ``labels/`` holds no ``.mat``.
        PoseFormatError: any inconsistency listed in the module docstring, naming the file and field.
    """
    root = Path(root)
    frames_dir, labels_dir = _dirs(root)
    for folder in (frames_dir, labels_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{root} has no {folder.name}/ folder; expected {_LAYOUT}")
    labels = sorted(labels_dir.glob("*.mat"))
    if not labels:
        raise FileNotFoundError(f"{labels_dir} holds no .mat label file; expected {_LAYOUT}")
    clips = []
    for path in tqdm(labels, desc="penn-action labels", unit="clip", disable=not progress):
        label = read_penn_mat(path)
        folder = frames_dir / path.stem
        if not folder.is_dir():
            raise PoseFormatError(f"{path}: its frame folder {folder} does not exist; extract frames/{path.stem}/ "
                                  f"from the archive or remove the label file")
        frames = _frame_files(folder)
        if len(frames) != label["nframes"]:
            raise PoseFormatError(f"{path}: variable 'nframes' is {label['nframes']}, but {folder} holds "
                                  f"{len(frames)} frames; extract the folder again")
        clips.append(PoseClip(video_id=path.stem, frames=tuple(frames), keypoints=label["keypoints"],
                              action=label["action"], split=label["split"], size=label["size"]))
    labelled = {path.stem for path in labels}
    orphan = next((f for f in sorted(frames_dir.iterdir()) if f.is_dir() and f.name not in labelled), None)
    if orphan is not None:
        raise PoseFormatError(f"frame folder {orphan} has no label file {labels_dir / (orphan.name + '.mat')}; "
                              f"extract labels/ again or remove the folder")
    return clips


def penn_action_ready(root: Path, meta: dict[str, Any] | None = None) -> bool:
    """``root`` is a prepared Penn Action folder whose frame and label folders are still there."""
    meta = read_meta(root) if meta is None else meta
    return (meta is not None and meta.get("format") == _FORMAT and (root / meta.get("frames", "")).is_dir()
            and (root / meta.get("labels", "")).is_dir())


def prepare_penn_action(root: Path, *, source: Path, progress: bool = True) -> Path:
    """Check a Penn Action download (every label file, every frame folder's count) and write the dataset folder.

    Frames and labels are not copied: ``root/frames`` and ``root/labels`` link to the download
    (where a link cannot be made, ``meta.json`` records the download's absolute paths instead).
    """
    root, source = Path(root), Path(source).resolve()
    if not source.is_dir():
        raise FileNotFoundError(f"penn-action source folder {source} does not exist")
    missing = [name for name in ("frames", "labels") if not (source / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"{source} has no {' or '.join(m + '/' for m in missing)}; expected {_LAYOUT}")
    folder = DatasetFolder(root, {"name": "penn-action", "source": str(source)}, complete=penn_action_ready)
    if folder.ready():
        return root
    clips = read_penn_action(source, progress=progress)
    with folder.rewriting() as meta:
        frames = link_source(root / "frames", source / "frames").rstrip("/")
        labels = link_source(root / "labels", source / "labels").rstrip("/")
        splits = Counter(clip.split for clip in clips)
        meta.update({"name": "penn-action", "kind": "pose", "format": _FORMAT, "source": str(source),
                     "frames": frames, "labels": labels, "num_clips": len(clips),
                     "num_frames": sum(clip.num_frames for clip in clips),
                     "counts": {split: splits[split] for split in ("train", "test")},
                     "actions": dict(sorted(Counter(clip.action for clip in clips).items())),
                     "joints": "coco17"})
    return root


@register_dataset("penn-action", kind="pose", builtin=False, num_classes=len(PENN_ACTIONS), source_layout=_LAYOUT,
                  ready=lambda root: DatasetFolder(root, {"name": "penn-action"}, complete=penn_action_ready).ready(),
                  summary="Penn Action: 2,326 clips of 15 actions, 13 joints per frame read as COCO-17 keypoints")
def _prepare(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
    return prepare_penn_action(root, source=source, progress=progress)
