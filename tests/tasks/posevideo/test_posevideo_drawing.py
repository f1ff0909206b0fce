"""Drawn skeletons put their colours on the limbs and nowhere near absent joints; sample sheets
tile clips; save_video writes mp4 / GIF files that read back with every frame at its size."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from crossmedia.tasks.posevideo.drawing import (CENTRE_COLOUR, LEFT_COLOUR, RIGHT_COLOUR, clip_strip, draw_skeleton,
                                                save_video)

BLACK = (0, 0, 0)


def _arm_pose() -> np.ndarray:
    """Left shoulder (5) at (10, 10), left elbow (7) at (10, 40), left wrist (9) at (50, 40) but invisible;
    right shoulder (6) at (40, 10) visible; everything else absent at (0, 0)."""
    kp = np.zeros((17, 3), np.float32)
    kp[5], kp[7], kp[9], kp[6] = (10, 10, 2), (10, 40, 1), (50, 40, 0), (40, 10, 2)
    return kp


def test_limbs_between_visible_joints_are_drawn_in_their_side_colour():
    image = draw_skeleton(_arm_pose(), size=64)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert tuple(image[25, 10]) == LEFT_COLOUR  # middle of the left upper arm (5 -> 7)
    assert tuple(image[10, 25]) == CENTRE_COLOUR  # middle of the shoulder bar (5 -> 6)
    assert tuple(image[10, 40]) == RIGHT_COLOUR  # the right shoulder's dot
    assert tuple(image[40, 10]) == LEFT_COLOUR  # the left elbow's dot (v = 1 counts as present)


def test_invisible_joints_and_their_limbs_are_not_drawn():
    image = draw_skeleton(_arm_pose(), size=64)
    assert tuple(image[40, 50]) == BLACK  # the invisible wrist
    assert tuple(image[40, 30]) == BLACK  # halfway along the forearm 7 -> 9
    assert tuple(image[0, 0]) == BLACK  # absent joints written as (0, 0, 0) are not a joint at the corner
    lit = image.any(-1)
    assert lit.sum() > 60  # the upper arm, the shoulder bar and three dots are there
    assert not lit[36:45, 13:].any()  # not one forearm pixel right of the elbow's dot (x <= 11)
    nan_pose = _arm_pose()
    nan_pose[6, :2] = np.nan  # a non-finite joint is absent too, not a crash
    assert tuple(draw_skeleton(nan_pose, size=64)[10, 40]) == BLACK


def test_sequence_background_and_scale():
    sequence = torch.from_numpy(np.stack([_arm_pose(), _arm_pose()]))  # (2, 17, 3) tensor
    sequence[1, :, 0] += 5  # frame 1 moves 5 px right
    background = np.full((2, 64, 64, 3), 77, np.uint8)
    frames = draw_skeleton(sequence, background=background, scale=4)
    assert frames.shape == (2, 256, 256, 3)
    # pixel (y=25, x=10) of the 64 px frame is the 4x4 block at rows 100..103, columns 40..43
    assert tuple(frames[0, 101, 41]) == LEFT_COLOUR and tuple(frames[1, 101, 41]) == (77, 77, 77)
    assert tuple(frames[1, 101, 61]) == LEFT_COLOUR  # x = 15 in frame 1
    assert tuple(frames[0, 161, 201]) == (77, 77, 77)  # the invisible wrist (50, 40): background shows
    assert (background == 77).all()  # drawing never writes into the caller's frames


def test_bad_inputs_are_refused_with_their_shape():
    with pytest.raises(ValueError, match=r"\(17, 3\) or \(T, 17, 3\).*\(13, 3\)"):
        draw_skeleton(np.zeros((13, 3)))
    with pytest.raises(ValueError, match="3 frames for 2 poses"):
        draw_skeleton(np.zeros((2, 17, 3)), background=np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="row 1 has 8x8 frames, row 0 has 4x4"):
        clip_strip([np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 8, 8, 3), np.uint8)])


def test_clip_strip_tiles_rows_of_frames_with_gaps():
    a = np.stack([np.full((4, 6, 3), 10 * (i + 1), np.uint8) for i in range(3)])  # 3 frames of 4x6, levels 10, 20, 30
    b = np.full((2, 4, 6, 3), 200, np.uint8)  # a shorter row
    sheet = clip_strip([a, b], gap=2, fill=255)
    assert sheet.shape == (2 * 4 + 2, 3 * 6 + 2 * 2, 3)
    assert sheet[0, 0, 0] == 10 and sheet[0, 8, 0] == 20 and sheet[0, 16, 0] == 30  # frame c starts at 8 c
    assert sheet[6, 0, 0] == 200 and sheet[6, 8, 0] == 200 and sheet[6, 16, 0] == 255  # row 1 ends after 2 frames
    assert (sheet[4:6] == 255).all() and (sheet[:, 6:8] == 255).all()  # gaps
    assert clip_strip([a], max_frames=2, gap=0).shape == (4, 12, 3)  # frames 0 and 2 kept


def _ramp_video(t: int = 6, height: int = 32, width: int = 48) -> torch.Tensor:
    """(T, 3, H, W) in [0, 1] whose grey level rises by 0.1 per frame."""
    return (torch.arange(t, dtype=torch.float32) * 0.1 + 0.2)[:, None, None, None].expand(t, 3, height, width)


def test_mp4_is_playable_with_every_frame_at_its_size(tmp_path):
    path = save_video(_ramp_video(), tmp_path / "out" / "clip.mp4", fps=8)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = float(stream.average_rate)
    assert len(frames) == 6 and frames[0].shape == (32, 48, 3) and rate == pytest.approx(8)
    levels = np.array([f.astype(float).mean() for f in frames])
    np.testing.assert_allclose(levels, (np.arange(6) * 0.1 + 0.2) * 255, atol=4)


def test_gif_keeps_every_frame_and_size(tmp_path):
    frames = (_ramp_video(20, 16, 24).permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()  # (20, 16, 24, 3)
    path = save_video(frames, tmp_path / "clip.gif", fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 20 and gif.size == (24, 16) and gif.info["duration"] == 100


def test_unknown_suffix_names_the_path_and_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"clip\.avi.*\.mp4, \.gif"):
        save_video(_ramp_video(), tmp_path / "clip.avi")
    assert not (tmp_path / "clip.avi").exists()
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\).*\(6, 32, 48\)"):
        save_video(np.zeros((6, 32, 48)), tmp_path / "clip.gif")
