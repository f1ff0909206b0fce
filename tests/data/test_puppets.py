"""Built-in ``puppets``: deterministic, PoseTrack/COCO layout, keypoints on the figure, masks = the drawn clothes,
actions distinguishable by their pose trajectories."""
from __future__ import annotations

import colorsys
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmedia.data.builtin.puppets import (PUPPET_ACTIONS, PUPPET_COLOURS, SHADE, _coco_keypoints, clip_split,
                                             draw_puppet_clip, make_puppets, puppets_complete, puppets_ready)
from crossmedia.data.keypoints import COCO17, COCO17_LIMBS, FLIP
from crossmedia.data.registry import list_datasets

NUM_CLIPS, FRAMES = 18, 8  # every action twice


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return make_puppets(tmp_path_factory.mktemp("puppets"), seed=0, progress=False, num_clips=NUM_CLIPS, frames=FRAMES)


@pytest.fixture(scope="module")
def doc(built) -> dict:
    return json.loads((built / "annotations.json").read_text())


def _load(built: Path, doc: dict, clip: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3), masks (T, H, W) and keypoints (T, 17, 3) of one clip, read from the files."""
    images = [im for im in doc["images"] if im["vid_id"] == clip]
    by_image = {a["image_id"]: a for a in doc["annotations"]}
    frames = np.stack([np.asarray(Image.open(built / im["file_name"]).convert("RGB")) for im in images])
    masks = np.stack([np.asarray(Image.open(built / im["mask_file"])) for im in images])
    keypoints = np.stack([np.reshape(by_image[im["id"]]["keypoints"], (17, 3)) for im in images])
    return frames, masks, keypoints


# the folder


def test_same_seed_gives_identical_bytes(built, tmp_path):
    again = make_puppets(tmp_path / "again", seed=0, progress=False, num_clips=NUM_CLIPS, frames=FRAMES)
    assert _tree_digest(again) == _tree_digest(built)
    other = make_puppets(tmp_path / "other", seed=1, progress=False, num_clips=4, frames=FRAMES)
    assert (other / "frames/00000/000.png").read_bytes() != (built / "frames/00000/000.png").read_bytes()
    assert (other / "annotations.json").read_bytes() != (built / "annotations.json").read_bytes()


def test_posetrack_coco_layout(built, doc):
    assert set(doc) == {"images", "annotations", "categories", "videos"}
    assert len(doc["images"]) == len(doc["annotations"]) == NUM_CLIPS * FRAMES
    ids = [im["id"] for im in doc["images"]]
    assert len(set(ids)) == len(ids)
    for im in doc["images"]:
        assert {"id", "file_name", "vid_id", "frame_id", "mask_file"} <= set(im)
        assert (built / im["file_name"]).is_file() and (built / im["mask_file"]).is_file()
        assert im["file_name"] == f"frames/{im['vid_id']:05d}/{im['frame_id']:03d}.png"
    for ann in doc["annotations"]:
        assert ann["track_id"] == 0 and ann["category_id"] == 1 and ann["image_id"] in set(ids)
        assert len(ann["keypoints"]) == 51
        v = ann["keypoints"][2::3]
        assert set(v) <= {0, 2} and ann["num_keypoints"] == sum(x > 0 for x in v)
        assert all(ann["keypoints"][3 * k:3 * k + 2] == [0, 0] for k in range(17) if v[k] == 0)  # COCO's (0, 0, 0)
    (category,) = doc["categories"]
    assert category["keypoints"] == list(COCO17) and category["name"] == "person"
    assert category["skeleton"] == [[a + 1, b + 1] for a, b in COCO17_LIMBS]  # 1-based, as COCO writes it
    assert [v["id"] for v in doc["videos"]] == list(range(NUM_CLIPS))
    for video in doc["videos"]:
        assert {"action", "split", "identity", "top_colour", "bottom_colour", "top_texture"} <= set(video)
        assert video["top_colour"] in PUPPET_COLOURS and video["top_colour"] != video["bottom_colour"]
    with Image.open(built / "frames/00000/000.png") as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    with Image.open(built / "masks/00000/000.png") as mask:
        assert mask.mode == "P"
    meta = json.loads((built / "meta.json").read_text())
    assert meta["kind"] == "pose" and meta["num_clips"] == NUM_CLIPS and meta["frames"] == FRAMES


def test_every_action_appears_and_splits_are_stratified(doc):
    assert sorted({v["action"] for v in doc["videos"]}) == sorted(PUPPET_ACTIONS)
    splits = [clip_split(i) for i in range(9 * 100)]  # the default layout: 100 clips per action
    for action in range(9):
        counts = {s: sum(1 for a, split in splits if a == action and split == s) for s in ("train", "val", "test")}
        assert counts == {"train": 80, "val": 10, "test": 10}
    assert {clip_split(i)[1] for i in range(27)} == {"train", "val", "test"}
    pools = {"train": range(240), "val": range(240, 270), "test": range(270, 300)}  # unseen people in val / test
    for i in range(27):
        info = draw_puppet_clip(i, frames=2, size=32).info
        assert info["identity"] in pools[info["split"]]


def test_ready_and_registered(built, tmp_path):
    assert puppets_ready(built) and puppets_complete(built, num_clips=NUM_CLIPS, frames=FRAMES)
    assert not puppets_complete(built, num_clips=NUM_CLIPS + 1, frames=FRAMES)
    assert not puppets_ready(tmp_path)
    info = list_datasets()["puppets"]
    assert info.builtin and info.num_classes == len(PUPPET_ACTIONS)


def test_joints_outside_the_frame_are_written_as_coco_invisible():
    joints = {name: np.array([[30.0, 30.0], [70.0, 30.0]]) for name in (
        "shoulder_l", "shoulder_r", "elbow_l", "elbow_r", "hip_l", "hip_r", "knee_l", "knee_r", "ankle_l", "ankle_r")}
    joints.update(wrist_l=np.array([[-0.6, 10.0], [63.4, 10.0]]), wrist_r=np.array([[10.0, 63.6], [10.0, -0.4]]),
                  head=np.array([[30.0, 10.0], [30.0, 10.0]]), neck=np.array([[30.0, 14.0], [30.0, 14.0]]))
    keypoints = _coco_keypoints(joints, np.array([3.0, 3.0]), 64)  # (2 frames, 17, 3)
    wrist_l, wrist_r, shoulder = COCO17.index("left_wrist"), COCO17.index("right_wrist"), COCO17.index("left_shoulder")
    assert keypoints[0, wrist_l].tolist() == [0, 0, 0] and keypoints[1, wrist_l].tolist() == [63.4, 10.0, 2]
    assert keypoints[0, wrist_r].tolist() == [0, 0, 0] and keypoints[1, wrist_r].tolist() == [10.0, -0.4, 2]
    assert keypoints[1, shoulder].tolist() == [0, 0, 0] and keypoints[0, shoulder, 2] == 2
    assert np.allclose(keypoints[0, COCO17.index("nose"), :2], [30.0, 10.6])  # 0.2 r below the head centre


# the content


def test_keypoints_lie_on_the_drawn_figure(built, doc):
    on, total = 0, 0
    for clip in range(NUM_CLIPS):
        _, masks, keypoints = _load(built, doc, clip)
        for t in range(FRAMES):
            for x, y, v in keypoints[t]:
                if v > 0:
                    total += 1
                    on += masks[t, int(round(y)), int(round(x))] != 0
    assert total > 0.97 * NUM_CLIPS * FRAMES * 17  # the figure stays (almost) inside the frame
    assert on / total > 0.98, f"only {on}/{total} visible keypoints on the figure"


def _hue(rgb: np.ndarray) -> np.ndarray:
    return np.array([colorsys.rgb_to_hsv(*(c / 255.0))[0] for c in rgb.reshape(-1, 3)])


def _distance_to_garment(frames: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Per pixel, the max-channel distance to the garment's colours: the segment from the texture shade
    (SHADE x colour) to the plain colour, which holds the texture and every mix of the two (a stripe's edge)."""
    shade = np.round(SHADE * colour)
    step = colour - shade
    lam = np.clip(((frames.astype(float) - shade) @ step) / (step @ step), 0.0, 1.0)
    return np.abs(frames - (shade + lam[..., None] * step)).max(-1)


def test_masks_cover_exactly_the_drawn_clothes(built, doc):
    for clip, video in enumerate(doc["videos"]):
        frames, masks, _ = _load(built, doc, clip)
        for label, key in ((1, "top_rgb"), (2, "bottom_rgb")):
            colour = np.array(video[key], dtype=float)
            dist = _distance_to_garment(frames, colour)  # (T, H, W)
            inside = masks == label
            assert inside.sum() > 10
            # labelled pixels are the garment's colour (apart from anti-aliased edges) and of its hue
            assert (dist[inside] < 30).mean() > 0.7, (clip, label, (dist[inside] < 30).mean())
            hue_error = np.abs(_hue(frames[inside]) - _hue(colour[None]))
            hue_error = np.minimum(hue_error, 1 - hue_error)  # hue is circular, in [0, 1)
            assert np.median(hue_error) < 0.005 and np.percentile(hue_error, 90) < 0.05
            assert hue_error[dist[inside] < 8].max() < 0.03  # a hue within 11 degrees wherever the colour is pure
            # pixels of exactly the garment's colour are (all but a tiny fraction) labelled as the garment
            exact = dist < 6
            assert (exact & ~inside).sum() <= 0.005 * exact.sum(), (clip, label)  # 0 in every clip of seed 0


def _descriptor(keypoints: np.ndarray) -> np.ndarray:
    """Pose-trajectory features of a clip (T, 17, 3): per-joint mean and spread of the position relative to the hips,
    in units of the torso length, and the mean speed: phase- and place-invariant."""
    xy = keypoints[..., :2]
    hips = xy[:, [11, 12]].mean(1, keepdims=True)
    torso = np.linalg.norm(xy[:, [5, 6]].mean(1) - hips[:, 0], axis=-1).mean()
    rel = (xy - hips) / torso
    speed = np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean(0)
    return np.concatenate([rel.mean(0).ravel(), rel.std(0).ravel(), speed])


def _mirror(keypoints: np.ndarray) -> np.ndarray:
    out = keypoints.copy()
    out[..., 0] *= -1
    for a, b in FLIP:
        out[:, [a, b]] = out[:, [b, a]]
    return out


def test_actions_are_distinguishable_by_pose():
    per_action, feats, labels = 5, [], []
    for i in range(9 * per_action):
        clip = draw_puppet_clip(i, seed=3, frames=16, size=32)
        feats.append((_descriptor(clip.keypoints), _descriptor(_mirror(clip.keypoints))))
        labels.append(clip_split(i)[0])
    labels = np.array(labels)
    n = len(feats)
    dist = np.array([[min(np.linalg.norm(feats[i][0] - feats[j][0]), np.linalg.norm(feats[i][0] - feats[j][1]))
                      for j in range(n)] for i in range(n)])  # mirror-invariant
    np.fill_diagonal(dist, np.inf)
    nearest_correct = (labels[dist.argmin(1)] == labels).mean()
    assert nearest_correct > 0.8, nearest_correct
    for action in range(9):
        same, other = labels == action, labels != action
        intra = dist[np.ix_(same, same)][np.isfinite(dist[np.ix_(same, same)])].mean()
        inter = dist[np.ix_(same, other)].mean()
        assert intra < inter, (PUPPET_ACTIONS[action], intra, inter)
