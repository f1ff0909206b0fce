"""Samples as files: frames (N, H, W, 3) uint8 RGB written as an animated GIF or an MP4 video.

Any task's sample callback can hand its frames here (a summary's keyshots, generated pose
videos, text-to-image grids over training) and log the file it gets back; people without W&B
find the same files in the run folder. PIL and PyAV are imported when a file is written.

    write_gif(frames, run / "samples" / "summary.gif")               # at most 60 frames, 192 px
    write_mp4(frames, run / "samples" / "dance.mp4", fps=8)          # every frame, H.264 or MPEG-4
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["write_gif", "write_mp4"]


# helpers

def _as_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"frames must be a non-empty (N, H, W, 3) uint8 RGB array, got shape {frames.shape} "
                         f"and dtype {frames.dtype}")
    return frames


def _video_codec(av) -> str:
    """H.264 where this FFmpeg build can encode it, else MPEG-4 part 2 (always built in)."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:  # noqa: BLE001 - PyAV raises different errors for a missing encoder across versions
        return "mpeg4"


# functions

def write_gif(frames, path: str | Path, *, max_frames: int = 60, max_side: int = 192, frame_ms: int = 250) -> Path:
    """Write ``frames`` (N, H, W, 3) uint8 as a looping GIF at ``path``; returns the path.

    At most ``max_frames`` frames, evenly spaced, each shrunk to at most ``max_side`` pixels on its
    longest side and quantised to 128 colours; each shows for ``frame_ms`` milliseconds.
    """
    from PIL import Image

    frames = _as_frames(frames)
    if len(frames) > max_frames:
        frames = frames[np.linspace(0, len(frames) - 1, max_frames).round().astype(np.int64)]  # (max_frames, H, W, 3)
    images = []
    for frame in frames:
        image = Image.fromarray(frame)
        image.thumbnail((max_side, max_side))
        images.append(image.quantize(colors=128, method=Image.Quantize.MEDIANCUT))
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return path


def write_mp4(frames, path: str | Path, *, fps: float = 8.0) -> Path:
    """Write every frame of ``frames`` (N, H, W, 3) uint8 as an MP4 video at ``fps``; returns the path.

    H.264 when FFmpeg has it, else MPEG-4; yuv420p, so odd widths and heights are padded by one
    black pixel (the encoders need even sizes).
    """
    import av

    frames = _as_frames(frames)
    height, width = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
    if (height, width) != frames.shape[1:3]:
        frames = np.pad(frames, ((0, 0), (0, height - frames.shape[1]), (0, width - frames.shape[2]), (0, 0)))
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(_video_codec(av), rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():  # flush the encoder
            container.mux(packet)
    return path
