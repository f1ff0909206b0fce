"""Video decoding for every task that reads video files: sample frames at a fixed rate with PyAV.

:func:`read_video` keeps every ``round(native_fps / fps)``-th frame (2 fps by default), the way the
eccv16 SumMe/TVSum features were sampled: ``picks`` are the frame indices of the kept frames
(0, 15, 30, ... for a 30 fps video), exactly the eccv16 ``picks`` field. Video summarisation reads
its input videos with it; pose video and video captioning read theirs the same way.

A file that is not a video is refused with :class:`VideoReadError`, one line naming the file: one
that cannot be opened or decoded, that holds no video stream, or that decodes to fewer than
``min_frames`` frames (a still image such as a JPEG opens as a one-frame stream).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["VideoReadError", "SampledVideo", "read_video", "frame_rate", "sampling_step"]


class VideoReadError(ValueError):
    """A video file that cannot be opened or decoded, holds no video stream, or is a still image."""


@dataclass
class SampledVideo:
    """The frames of a video sampled at ``fps``, in the eccv16 conventions.

    ``frames`` (N, H, W, 3) uint8 RGB, downscaled; ``picks`` (N,) int64 frame index of each sampled
    frame; ``n_frames`` the number of frames decoded; ``native_fps`` the stream's frame rate;
    ``step`` the sampling interval in frames (``picks = arange(N) * step``).
    """

    frames: np.ndarray
    picks: np.ndarray
    n_frames: int
    native_fps: float
    step: int


# helpers

def _scaled_size(width: int, height: int, max_short_side: int) -> tuple[int, int]:
    scale = min(1.0, max_short_side / min(width, height))  # only ever shrink
    return max(1, round(width * scale)), max(1, round(height * scale))


# functions

def frame_rate(stream, path: str | Path) -> float:
    """The frame rate of a PyAV video ``stream`` of the file ``path``: average, else guessed, else base rate."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and float(rate) > 0:
            return float(rate)
    raise VideoReadError(f"{path}: the video stream does not say its frame rate")


def sampling_step(native_fps: float, fps: float) -> int:
    """Frames between two kept frames when sampling a ``native_fps`` video at ``fps``: ``round(native / fps)``, >= 1."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return max(1, round(native_fps / fps))


def read_video(path: str | Path, *, fps: float = 2.0, max_short_side: int = 224, min_frames: int = 2) -> SampledVideo:
    """Decode ``path`` with PyAV and keep every ``round(native_fps / fps)``-th frame.

    Every frame is decoded (so ``n_frames`` is exact) but only the kept ones are converted to RGB,
    downscaled on the fly so that their short side is at most ``max_short_side`` pixels; memory is
    bounded by the sampled frames. Raises ``FileNotFoundError`` for a missing file and
    :class:`VideoReadError` (naming the file) when it cannot be opened or decoded, holds no video
    stream, or decodes to fewer than ``min_frames`` frames (a still image is not a video).
    """
    import av  # PyAV: imported here so that importing this module stays cheap

    path = Path(path)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not path.is_file():
        raise FileNotFoundError(f"no such video file: {path}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as err:
        raise VideoReadError(f"{path}: cannot open as a video file ({err})") from None
    with container:
        if not container.streams.video:
            raise VideoReadError(f"{path}: the file holds no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        native_fps = frame_rate(stream, path)
        step = sampling_step(native_fps, fps)
        frames, picks, n_frames = [], [], 0
        try:
            for frame in container.decode(stream):
                if n_frames % step == 0:
                    width, height = _scaled_size(frame.width, frame.height, max_short_side)
                    frames.append(frame.to_ndarray(width=width, height=height, format="rgb24",
                                                   interpolation="AREA"))  # (H, W, 3)
                    picks.append(n_frames)
                n_frames += 1
        except av.FFmpegError as err:
            raise VideoReadError(f"{path}: decoding failed after {n_frames} frames ({err})") from None
    if not frames:
        raise VideoReadError(f"{path}: the video stream holds no decodable frame")
    if n_frames < min_frames:
        raise VideoReadError(f"{path}: decodes to {n_frames} frame{'s' * (n_frames != 1)}: a still image is not a "
                             f"video; give a video file (MP4, AVI, WebM, ...) of at least {min_frames} frames")
    return SampledVideo(frames=np.stack(frames), picks=np.asarray(picks, dtype=np.int64), n_frames=n_frames,
                        native_fps=native_fps, step=step)  # frames (N, H, W, 3)
