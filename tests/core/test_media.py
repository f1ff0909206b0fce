"""Samples as files: a GIF and an MP4 written from frames read back with the frames, sizes and timing asked for."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from crossmedia.core.media import write_gif, write_mp4
from crossmedia.data.video import read_video


def _ramp(n: int, height: int, width: int) -> np.ndarray:
    """Frames (n, H, W, 3) whose grey level rises 20 per frame: frame i reads back as level 20 i."""
    return np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None] * 20, height * width * 3).reshape(
        n, height, width, 3)


def test_gif_keeps_at_most_max_frames_evenly_spaced_and_shrunk(tmp_path):
    path = write_gif(_ramp(12, 40, 100), tmp_path / "ramp.gif", max_frames=4, max_side=50, frame_ms=120)
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.size == (50, 20) and gif.info["duration"] == 120
        levels = []
        for i in range(gif.n_frames):
            gif.seek(i)
            levels.append(int(np.asarray(gif.convert("L")).mean().round()))
    assert levels == [0, 80, 140, 220]  # frames 0, 4, 7, 11 of 12 (linspace rounded)


def test_mp4_round_trips_every_frame_at_its_rate(tmp_path):
    frames = _ramp(10, 33, 41)  # odd sizes: padded to even ones for yuv420p
    path = write_mp4(frames, tmp_path / "ramp.mp4", fps=5)
    video = read_video(path, fps=5, max_short_side=1000)
    assert video.n_frames == 10 and video.native_fps == pytest.approx(5) and video.frames.shape == (10, 34, 42, 3)
    levels = video.frames[:, :33, :41].astype(float).mean(axis=(1, 2, 3))  # (10,)
    np.testing.assert_allclose(levels, np.arange(10) * 20, atol=3)  # lossy, but each frame's grey level survives


def test_bad_frames_are_refused_with_their_shape(tmp_path):
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8.*\(4, 4, 3\)"):
        write_gif(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.gif")
    with pytest.raises(ValueError, match="float32"):
        write_mp4(np.zeros((2, 4, 4, 3), np.float32), tmp_path / "x.mp4")
