"""PoseVideoDataModule on a tiny puppets copy: shapes, splits, deterministic evaluation pairs, scaling."""
from __future__ import annotations

import json

import pytest
import torch

from crossmedia.tasks.posevideo.data import PoseVideoDataModule, eval_pairs


def _dm(root, **kw):
    dm = PoseVideoDataModule(dataset="puppets", root=str(root), frames=8, batch_size=4, eval_batch_size=64, **kw)
    dm.setup()
    return dm


def test_clips_mode_reads_every_clip_with_its_action(tiny_puppets):
    dm = _dm(tiny_puppets, mode="clips")
    videos = json.loads((tiny_puppets / "annotations.json").read_text())["videos"]
    assert {k: len(v) for k, v in dm.datasets.items()} == {s: sum(v["split"] == s for v in videos)
                                                           for s in ("train", "val", "test")}
    batch = next(iter(dm.test_dataloader()))
    assert set(batch) == {"keypoints", "action", "index"}
    assert batch["keypoints"].shape == (len(dm.datasets["test"]), 8, 17, 3)
    first = dm.clips["test"][0]
    assert dm.actions[int(batch["action"][0])] == first.action
    assert torch.allclose(batch["keypoints"][0], torch.from_numpy(first.keypoints[:8]))


def test_frames_mode_pairs_match_their_keypoints_and_are_fixed_in_evaluation(tiny_puppets):
    dm = _dm(tiny_puppets, mode="frames", eval_pairs=3)
    test = dm.datasets["test"]
    assert len(test) == 3 * len(dm.clips["test"])
    one, two = next(iter(dm.test_dataloader())), next(iter(dm.test_dataloader()))
    assert torch.equal(one["target"], two["target"]) and torch.equal(one["target_frame"], two["target_frame"])
    assert one["target"].shape[1:] == (3, 64, 64) and -1 <= one["target"].min() and one["target"].max() <= 1
    for i in range(len(one["index"])):
        clip, t, s = int(one["index"][i]), int(one["target_frame"][i]), int(one["source_frame"][i])
        assert (s, t) == eval_pairs(8, clip, 3)[i % 3]
        assert torch.equal(one["target_keypoints"][i], one["keypoints"][i, t])
    # the decoded target frame is the PNG on disk
    from PIL import Image
    import numpy as np

    clip = dm.clips["test"][int(one["index"][4])]
    png = np.asarray(Image.open(clip.frames[int(one["target_frame"][4])]).convert("RGB"), dtype=np.float32)
    assert torch.allclose(one["target"][4], torch.from_numpy(png).permute(2, 0, 1) / 127.5 - 1, atol=1e-6)


def test_eval_pairs_cover_every_target_frame():
    targets = {t for clip in range(15) for _, t in eval_pairs(16, clip, 4)}
    assert targets == set(range(1, 16))


def test_resized_frames_scale_their_keypoints(tiny_puppets):
    full, half = _dm(tiny_puppets, mode="clips"), _dm(tiny_puppets, mode="clips", image_size=32)
    a, b = full.datasets["train"].keypoints, half.datasets["train"].keypoints
    present = a[..., 2] > 0
    assert torch.allclose(b[..., :2][present], ((a[..., :2] + 0.5) / 2 - 0.5)[present], atol=1e-5)
    assert torch.equal(b[..., 2], a[..., 2])


def test_too_long_clip_request_names_the_clip(tiny_puppets):
    dm = PoseVideoDataModule(dataset="puppets", root=str(tiny_puppets), frames=17)
    with pytest.raises(ValueError, match="fewer than frames=17"):
        dm.setup()


def test_a_users_pose_folder_with_a_json_of_any_name_is_read_in_place(tiny_puppets, tmp_path):
    """Issue 18: a PoseTrack-style JSON of one's own name beside its frames, no meta.json, under the
    default dataset name: read as it is (no built-in generated into it), the folder left untouched."""
    import shutil

    user = tmp_path / "my poses"
    shutil.copytree(tiny_puppets / "frames", user / "frames")
    shutil.copy(tiny_puppets / "annotations.json", user / "gym_session.json")
    before = sorted((p.relative_to(user).as_posix(), p.stat().st_mtime_ns) for p in user.rglob("*"))
    dm = _dm(user, mode="clips")
    assert sum(len(d) for d in dm.datasets.values()) == 27 and len(dm.actions) == 9
    assert sorted((p.relative_to(user).as_posix(), p.stat().st_mtime_ns) for p in user.rglob("*")) == before
    shutil.copy(user / "gym_session.json", user / "second.json")
    with pytest.raises(FileNotFoundError, match="gym_session.json, second.json"):
        _dm(user, mode="clips")
