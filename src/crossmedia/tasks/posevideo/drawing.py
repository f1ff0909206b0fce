"""Pictures of poses and clips for people: COCO-17 skeletons, sample sheets, and video files.

Pose sequences are judged by eye as drawn skeletons (Yang et al., "Pose Guided Human Video
Generation", ECCV 2018, arXiv 1807.11152, show PSGAN's output the same way). Keypoints are
``(x, y, v)`` in the pixels of a ``size x size`` frame, pixel centres at integer coordinates (the
convention of :mod:`crossmedia.data.keypoints`); joints with ``v = 0`` (or a non-finite
coordinate) are absent: neither they nor a limb that ends at them is drawn.

    draw_skeleton(keypoints, size=64)                  # (17, 3) -> (64, 64, 3) uint8
    draw_skeleton(sequence, size=64, scale=4)          # (T, 17, 3) -> (T, 256, 256, 3) uint8
    draw_skeleton(sequence, background=frames)         # over (T, H, W, 3) uint8 frames
    clip_strip([skeletons, frames])                    # one row per clip, frames side by side (PNG sheet)
    save_video(video, "wave.mp4", fps=8)               # (T, 3, H, W) in [0, 1] or (T, H, W, 3) uint8; .mp4 / .gif

Colours: limbs and joints of the figure's left side in :data:`LEFT_COLOUR` (blue), right side in
:data:`RIGHT_COLOUR` (red), the rest (nose, the nose-eye, shoulder and hip bars) in
:data:`CENTRE_COLOUR` (green). Files are written by :mod:`crossmedia.core.media`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from crossmedia.core.media import write_gif, write_mp4
from crossmedia.data.keypoints import COCO17, COCO17_LIMBS

__all__ = ["LEFT_COLOUR", "RIGHT_COLOUR", "CENTRE_COLOUR", "VIDEO_SUFFIXES", "draw_skeleton", "clip_strip",
           "save_video", "video_frames", "limb_colours", "joint_colours"]

LEFT_COLOUR: tuple[int, int, int] = (40, 120, 255)
RIGHT_COLOUR: tuple[int, int, int] = (255, 60, 40)
CENTRE_COLOUR: tuple[int, int, int] = (40, 210, 70)
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".gif")


# helpers

def _side(joint: int) -> str:
    name = COCO17[joint]
    return "left" if name.startswith("left_") else "right" if name.startswith("right_") else "centre"


_COLOUR = {"left": LEFT_COLOUR, "right": RIGHT_COLOUR, "centre": CENTRE_COLOUR}


def joint_colours() -> list[tuple[int, int, int]]:
    """The RGB colour of each of the 17 COCO joints (by the side of the body it is on)."""
    return [_COLOUR[_side(j)] for j in range(len(COCO17))]


def limb_colours() -> list[tuple[int, int, int]]:
    """The RGB colour of each limb of :data:`COCO17_LIMBS`: a side's colour when both ends are on that side."""
    colours = []
    for a, b in COCO17_LIMBS:
        side = _side(a) if _side(a) == _side(b) else "centre"
        colours.append(_COLOUR[side])
    return colours


def _numpy(array) -> np.ndarray:
    """A tensor (any device) or array-like as a NumPy array."""
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy() if array.is_floating_point() else array.detach().cpu().numpy()
    return np.asarray(array)


def _draw_one(keypoints: np.ndarray, canvas: np.ndarray, scale: int) -> np.ndarray:
    """Draw one pose (17, 3) on an upscaled canvas (H*scale, W*scale, 3) uint8; returns the canvas."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    x, y, v = keypoints[:, 0], keypoints[:, 1], keypoints[:, 2]
    visible = (v > 0) & np.isfinite(x) & np.isfinite(y) & np.isfinite(v)
    # pixel centre j of the keypoint frame is the centre of the scale x scale block j of the canvas
    px, py = (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5
    width, radius = max(1, int(scale)), max(1, int(1.5 * scale))
    for (a, b), colour in zip(COCO17_LIMBS, limb_colours()):
        if visible[a] and visible[b]:
            draw.line([(float(px[a]), float(py[a])), (float(px[b]), float(py[b]))], fill=colour, width=width)
    for j, colour in enumerate(joint_colours()):
        if visible[j]:
            cx, cy = float(px[j]), float(py[j])
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    return np.asarray(image)


# functions

def draw_skeleton(keypoints, size: int | Sequence[int] = 64, *, background=None, scale: int = 1) -> np.ndarray:
    """Draw COCO-17 keypoints ``(17, 3)`` or a sequence ``(T, 17, 3)`` as skeletons; uint8 RGB out.

    Args:
        keypoints: (x, y, v) per joint (NumPy or torch, any device) in the pixels of the frame.
        size: the frame, an int (square) or (H, W); ignored when ``background`` gives it.
        background: None (black), or uint8 RGB frames to draw on: (H, W, 3) for every pose or
            (T, H, W, 3), one per pose of the sequence.
        scale: integer upscaling of the picture (nearest-neighbour background, lines ``scale`` px
            wide, joints of radius ``1.5 scale``) for pictures people can read.

    Returns:
        (H * scale, W * scale, 3) for one pose, (T, H * scale, W * scale, 3) for a sequence, uint8.
    """
    points = _numpy(keypoints).astype(np.float64)
    if points.ndim not in (2, 3) or points.shape[-2:] != (len(COCO17), 3):
        raise ValueError(f"draw_skeleton: keypoints must be (17, 3) or (T, 17, 3) as (x, y, v), got shape "
                         f"{points.shape}")
    single = points.ndim == 2
    points = points[None] if single else points  # (T, 17, 3)
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"draw_skeleton: scale must be an integer >= 1, got {scale}")
    if background is None:
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if height < 1 or width < 1:
            raise ValueError(f"draw_skeleton: size must be positive, got {size!r}")
        frames = np.zeros((len(points), height, width, 3), np.uint8)
    else:
        frames = _numpy(background)
        if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
            raise ValueError(f"draw_skeleton: background must be uint8 RGB (H, W, 3) or (T, H, W, 3), got shape "
                             f"{frames.shape} and dtype {frames.dtype}")
        if frames.ndim == 4 and len(frames) != len(points):
            raise ValueError(f"draw_skeleton: background has {len(frames)} frames for {len(points)} poses")
        frames = np.broadcast_to(frames, (len(points), *frames.shape[-3:]))
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)  # (T, H*s, W*s, 3)
    out = np.stack([_draw_one(p, np.ascontiguousarray(f), scale) for p, f in zip(points, frames)])
    return out[0] if single else out


def clip_strip(rows: Sequence, *, gap: int = 2, fill: int | Sequence[int] = 255,
               max_frames: int | None = None) -> np.ndarray:
    """A sheet (H', W', 3) uint8 of clips: one row per clip ``(T, H, W, 3)`` uint8, its frames side by side.

    Rows may differ in length (shorter rows end early, the rest is ``fill``) but not in frame size.
    ``max_frames`` keeps that many evenly spaced frames of each row; ``gap`` pixels of ``fill``
    separate frames and rows.
    """
    clips = [_numpy(r) for r in rows]
    if not clips:
        raise ValueError("clip_strip: no rows to draw")
    for i, clip in enumerate(clips):
        if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3 or not len(clip):
            raise ValueError(f"clip_strip: row {i} must be a non-empty (T, H, W, 3) uint8 array, got shape "
                             f"{clip.shape} and dtype {clip.dtype}")
        if clip.shape[1:3] != clips[0].shape[1:3]:
            raise ValueError(f"clip_strip: row {i} has {clip.shape[1]}x{clip.shape[2]} frames, row 0 has "
                             f"{clips[0].shape[1]}x{clips[0].shape[2]}; resize them to one size")
    if max_frames is not None:
        clips = [c[np.linspace(0, len(c) - 1, max_frames).round().astype(np.int64)] if len(c) > max_frames else c
                 for c in clips]
    height, width = clips[0].shape[1:3]
    columns = max(len(c) for c in clips)
    sheet = np.empty((len(clips) * (height + gap) - gap, columns * (width + gap) - gap, 3), np.uint8)
    sheet[:] = np.asarray(fill, np.uint8)
    for r, clip in enumerate(clips):
        top = r * (height + gap)
        for c, frame in enumerate(clip):
            left = c * (width + gap)
            sheet[top:top + height, left:left + width] = frame
    return sheet


def video_frames(frames) -> np.ndarray:
    """(T, 3, H, W) floats in [0, 1] (tensor or array) or (T, H, W, 3) uint8 as (T, H, W, 3) uint8."""
    array = _numpy(frames)
    if array.ndim == 4 and array.dtype == np.uint8 and array.shape[-1] == 3:
        return array
    if array.ndim == 4 and array.shape[1] == 3 and np.issubdtype(array.dtype, np.floating):
        return (np.clip(np.nan_to_num(array.transpose(0, 2, 3, 1)), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    raise ValueError(f"video frames must be (T, 3, H, W) floats in [0, 1] or (T, H, W, 3) uint8, got shape "
                     f"{array.shape} and dtype {array.dtype}")


def save_video(frames, path: str | Path, fps: float = 8) -> Path:
    """Write a clip as ``.mp4`` (PyAV, every frame at ``fps``) or ``.gif`` (every frame, full size); returns the path.

    ``frames``: (T, 3, H, W) floats in [0, 1] (a generated video) or (T, H, W, 3) uint8. The folder
    of ``path`` is created when missing.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"cannot write video {path}: unknown suffix {path.suffix!r}; use one of "
                         f"{', '.join(VIDEO_SUFFIXES)}")
    if not fps > 0:
        raise ValueError(f"cannot write video {path}: fps must be > 0, got {fps}")
    array = video_frames(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        return write_mp4(array, path, fps=fps)
    return write_gif(array, path, max_frames=len(array), max_side=max(array.shape[1:3]),
                     frame_ms=max(10, round(1000 / fps)))
