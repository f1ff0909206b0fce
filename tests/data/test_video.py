"""Video decoding: sampling at 2 fps in the eccv16 conventions, and files that are not videos refused by name."""
from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from crossmedia.core.media import write_mp4
from crossmedia.data.video import VideoReadError, read_video, sampling_step

RATE, SIZE = 30, 48


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    """4 s at 30 fps: red for the first 2 s, then blue."""
    frames = np.zeros((4 * RATE, SIZE, SIZE, 3), np.uint8)  # (120, H, W, 3)
    frames[:2 * RATE, ..., 0] = 220
    frames[2 * RATE:, ..., 2] = 220
    return write_mp4(frames, tmp_path_factory.mktemp("video") / "two_colours.mp4", fps=RATE)


def test_read_video_keeps_every_15th_frame(video_path):
    video = read_video(video_path, fps=2.0)
    assert video.n_frames == 120 and video.native_fps == pytest.approx(RATE) and video.step == 15
    np.testing.assert_array_equal(video.picks, np.arange(8) * 15)
    assert video.frames.shape == (8, SIZE, SIZE, 3) and video.frames.dtype == np.uint8
    dominant = video.frames.reshape(8, -1, 3).astype(float).mean(axis=1).argmax(axis=1)  # (8,) strongest channel
    np.testing.assert_array_equal(dominant, [0, 0, 0, 0, 2, 2, 2, 2])  # red until frame 60, then blue
    small = read_video(video_path, fps=1.0, max_short_side=24)
    assert small.frames.shape == (4, 24, 24, 3) and small.picks.tolist() == [0, 30, 60, 90]


def test_sampling_step_rounds_the_rate_ratio():
    assert [sampling_step(30, 2), sampling_step(25, 2), sampling_step(29.97, 2), sampling_step(1, 2)] == [15, 12, 15, 1]
    with pytest.raises(ValueError, match="fps must be > 0"):
        sampling_step(30, 0)


def test_a_still_image_is_not_a_video(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(photo)
    with pytest.raises(VideoReadError, match=r"photo\.jpg: decodes to 1 frame: a still image is not a video"):
        read_video(photo)
    assert read_video(photo, min_frames=1).n_frames == 1  # what PyAV makes of it: a one-frame stream


def test_unreadable_files_are_named(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video\n" * 100)
    with pytest.raises(VideoReadError, match="garbage.mp4"):
        read_video(garbage)
    audio = tmp_path / "tone.wav"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(VideoReadError, match=r"tone\.wav.*no video stream"):
        read_video(audio)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")
