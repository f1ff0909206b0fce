"""Readers of the real pose layouts, on tiny files written in those formats: PoseTrack / COCO-17 keypoint
JSON and Penn Action (frames + per-clip .mat labels), and the penn-action preparer."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from crossmedia.data.keypoints import COCO17
from crossmedia.data.penn_action import PENN_JOINTS, PENN_TO_COCO, read_penn_action
from crossmedia.data.posetrack import PoseClip, PoseFormatError, read_posetrack
from crossmedia.data.registry import ensure, list_datasets, prepare


@pytest.fixture(autouse=True)
def _private_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_DATA", str(tmp_path / "data"))


# PoseTrack


def _pose(seed: int, absent: tuple[int, ...] = ()) -> list[float]:
    rng = np.random.default_rng(seed)
    kp = np.column_stack([rng.uniform(0, 60, 17).round(2), rng.uniform(0, 40, 17).round(2), np.ones(17)])
    kp[list(absent)] = 0.0
    return kp.ravel().tolist()


def _posetrack(path: Path, *, images=None, annotations=None, **top) -> Path:
    """Video '000342' with frames 0..3 (frame_id 10003420000 + f; listed out of order) and two tracks:
    track 0 in frames 0, 1, 3 (absent in 2), track 7 in frames 2, 3. Image ids are PoseTrack-style."""
    if images is None:
        images = [{"id": 10003420000 + f, "file_name": f"images/val/000342_mpii_test/{f:06d}.jpg",
                   "vid_id": "000342", "frame_id": 10003420000 + f, "nframes": 4, "is_labeled": True}
                  for f in (2, 0, 3, 1)]
    if annotations is None:
        annotations = [{"image_id": 10003420000 + f, "track_id": 0, "category_id": 1, "bbox": [0, 0, 1, 1],
                        "keypoints": _pose(f, absent=(3, 4))} for f in (0, 1, 3)]
        annotations += [{"image_id": 10003420000 + f, "track_id": 7, "category_id": 1, "keypoints": _pose(10 + f)}
                        for f in (2, 3)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17)}], **top}))
    return path


def test_posetrack_clips_per_track_with_absent_frames(tmp_path):
    path = _posetrack(tmp_path / "ann" / "000342_mpii_test.json")
    clips = read_posetrack(path, frame_root=tmp_path)
    assert [(c.video_id, c.track_id, c.num_frames) for c in clips] == [("000342", 0, 4), ("000342", 7, 2)]
    first = clips[0]
    assert first.frames[0] == tmp_path / "images/val/000342_mpii_test/000000.jpg"
    assert [p.name for p in first.frames] == ["000000.jpg", "000001.jpg", "000002.jpg", "000003.jpg"]
    assert first.keypoints.shape == (4, 17, 3) and first.keypoints.dtype == np.float32
    np.testing.assert_allclose(first.keypoints[1].ravel(), np.array(_pose(1, absent=(3, 4)), np.float32))
    assert (first.keypoints[2] == 0).all()  # track 0 absent from frame 2: visibility 0 everywhere
    assert (first.keypoints[:, 3:5, 2] == 0).all() and (first.keypoints[[0, 1, 3], 5:, 2] == 1).all()
    assert [p.name for p in clips[1].frames] == ["000002.jpg", "000003.jpg"]  # the track's own span
    assert first.action is None and first.split is None and first.size is None


def test_posetrack_action_labels_and_folders(tmp_path):
    _posetrack(tmp_path / "ann" / "a.json", videos=[{"id": "000342", "action": "wave", "split": "val"}])
    images = [{"id": f, "file_name": f"v9/{f}.png", "vid_id": 9, "frame_id": f, "action": "clap", "height": 48,
               "width": 64} for f in range(2)]
    annotations = [{"image_id": f, "track_id": 0, "keypoints": _pose(f)} for f in range(2)]
    _posetrack(tmp_path / "ann" / "b.json", images=images, annotations=annotations)
    clips = read_posetrack(tmp_path / "ann")  # a folder: every *.json, in name order
    assert [(c.video_id, c.action, c.split) for c in clips] == [("000342", "wave", "val"), ("000342", "wave", "val"),
                                                                 ("9", "clap", None)]
    assert clips[2].size == (48, 64) and clips[0].size is None
    assert clips[2].frames[1] == tmp_path / "ann" / "v9" / "1.png"  # frame_root defaults to the JSON's folder


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][1].update(keypoints=[1.0] * 50), r"annotations\[1\] field 'keypoints' must be 51"),
    (lambda d: d["annotations"][1].update(keypoints=[True] + [1.0] * 50), r"annotations\[1\] field 'keypoints' must"),
    (lambda d: d["annotations"][1].update(keypoints=["3"] + [1.0] * 50), r"annotations\[1\] field 'keypoints' must"),
    (lambda d: d["annotations"][1].update(keypoints=[1e300] + [1.0] * 50), r"annotations\[1\] field 'keypoints' must"),
    (lambda d: d["annotations"][1].update(keypoints=[None] + [1.0] * 50), r"annotations\[1\] field 'keypoints' must"),
    (lambda d: d["annotations"][2].update(image_id=5), r"annotations\[2\] field 'image_id' is 5, which is not"),
    (lambda d: d["annotations"][0].pop("track_id"), r"annotations\[0\] has no 'track_id' field"),
    (lambda d: d["images"][3].pop("vid_id"), r"images\[3\] \(id 10003420001\) has no 'vid_id' field"),
    (lambda d: d["images"][0].update(frame_id="2"), r"images\[0\] \(id 10003420002\) field 'frame_id' is '2'"),
    (lambda d: d["annotations"][4].update(category_id=2), r"annotations\[4\] field 'category_id' is 2"),
    (lambda d: d["annotations"][4].update(image_id=10003420003, track_id=0), r"annotations\[4\] is a second"),
    (lambda d: d.pop("annotations"), r"expected a list 'annotations'"),
])
def test_posetrack_errors_name_file_entry_and_field(tmp_path, change, message):
    path = _posetrack(tmp_path / "x.json")
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(PoseFormatError, match=message) as error:
        read_posetrack(path)
    assert str(path) in str(error.value)


def test_pose_clip_checks_its_shape():
    with pytest.raises(ValueError, match="do not match 2 frames"):
        PoseClip("v", (Path("a"), Path("b")), np.zeros((3, 17, 3), np.float32))


# Penn Action


def _penn_clip(root: Path, video: str, *, nframes: int = 3, train: int = 1, action: str = "squats",
               frames: int | None = None, drop: str | None = None, **override) -> None:
    rng = np.random.default_rng(int(video))
    label = {"action": action, "pose": "front", "x": rng.uniform(0, 60, (nframes, 13)),
             "y": rng.uniform(0, 40, (nframes, 13)), "visibility": (rng.uniform(size=(nframes, 13)) > 0.3),
             "train": train, "nframes": nframes, "dimensions": np.array([48, 64, nframes]),
             "bbox": np.zeros((nframes, 4))}
    label.update(override)
    if drop:
        label.pop(drop)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    savemat(root / "labels" / f"{video}.mat", label)
    folder = root / "frames" / video
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(nframes if frames is None else frames):
        (folder / f"{i + 1:06d}.jpg").write_bytes(b"\xff\xd8\xff")  # never decoded by the reader


def _penn(root: Path) -> Path:
    _penn_clip(root, "0001", nframes=3, train=1, action="squats")
    _penn_clip(root, "0002", nframes=4, train=-1, action="tennis_serve")
    return root


def test_penn_action_reads_clips_mapped_to_coco17(tmp_path):
    root = _penn(tmp_path / "Penn_Action")
    clips = read_penn_action(root)
    assert [(c.video_id, c.split, c.action, c.num_frames, c.size) for c in clips] == [
        ("0001", "train", "squats", 3, (48, 64)), ("0002", "test", "tennis_serve", 4, (48, 64))]
    assert clips[0].frames[0] == root / "frames" / "0001" / "000001.jpg"
    from scipy.io import loadmat
    mat = loadmat(root / "labels" / "0002.mat")
    kp = clips[1].keypoints
    assert kp.shape == (4, 17, 3) and kp.dtype == np.float32
    np.testing.assert_allclose(kp[:, 0, 0], mat["x"][:, 0].astype(np.float32))  # head -> nose
    np.testing.assert_allclose(kp[:, COCO17.index("right_ankle"), 1], mat["y"][:, 12].astype(np.float32))
    np.testing.assert_array_equal(kp[:, COCO17.index("left_wrist"), 2], 1 + mat["visibility"][:, 5])
    assert (kp[:, 1:5] == 0).all()  # eyes and ears: not annotated, visibility 0
    assert all(COCO17[PENN_TO_COCO[i]] == name for i, name in enumerate(PENN_JOINTS) if i)


@pytest.mark.parametrize("clip, message", [
    (dict(drop="visibility"), r"0003\.mat: no variable 'visibility'"),
    (dict(x=np.zeros((2, 13))), r"0003\.mat: variable 'x' has shape \(2, 13\), expected \(nframes, 13\) = \(3, 13\)"),
    (dict(y=np.zeros((3, 14))), r"0003\.mat: variable 'y' has shape \(3, 14\)"),
    (dict(frames=2), r"0003\.mat: variable 'nframes' is 3, but .*0003 holds 2 frames"),
    (dict(train=0), r"0003\.mat: variable 'train' is 0"),
    (dict(dimensions=np.array([48, 64, 5])), r"0003\.mat: variable 'dimensions' is \[48, 64, 5\]"),
])
def test_penn_action_errors_name_file_and_field(tmp_path, clip, message):
    root = _penn(tmp_path / "Penn_Action")
    _penn_clip(root, "0003", **clip)
    with pytest.raises(PoseFormatError, match=message):
        read_penn_action(root)


def test_penn_action_missing_or_orphan_frame_folders(tmp_path):
    root = _penn(tmp_path / "Penn_Action")
    (root / "frames" / "0004").mkdir()
    with pytest.raises(PoseFormatError, match=r"frame folder .*0004 has no label file"):
        read_penn_action(root)
    (root / "frames" / "0004").rmdir()
    for frame in (root / "frames" / "0002").iterdir():
        frame.unlink()
    (root / "frames" / "0002").rmdir()
    with pytest.raises(PoseFormatError, match=r"0002\.mat: its frame folder .*0002 does not exist"):
        read_penn_action(root)


def test_penn_action_prepare_links_the_download(tmp_path):
    assert not list_datasets()["penn-action"].builtin
    root = _penn(tmp_path / "Penn_Action")
    with pytest.raises(ValueError, match="--source DIR"):
        prepare("penn-action")
    prepared = prepare("penn-action", source=root, progress=False)
    meta = json.loads((prepared / "meta.json").read_text())
    assert meta["counts"] == {"train": 1, "test": 1} and meta["num_frames"] == 7
    assert meta["actions"] == {"squats": 1, "tennis_serve": 1}
    assert ensure("penn-action") == prepared
    clips = read_penn_action(prepared)
    assert [c.video_id for c in clips] == ["0001", "0002"] and clips[1].keypoints.shape == (4, 17, 3)
    with pytest.raises(FileNotFoundError, match="has no frames/"):
        prepare("penn-action", root=tmp_path / "other", source=root / "labels", progress=False)
