"""Built-in ``clips``: a generated video dataset for deep video hashing.

Each clip is 8 frames of 32x32 RGB, one folder of PNGs ``000.png .. 007.png``, showing one object
of random colour on a static noisy background. The 10 classes are ``{circle, square} x {left,
right, up, down, grow}``: the shape and the way it moves. Start positions are drawn so that a
left-moving clip is, frame set for frame set, as likely as a right-moving one played backwards:
``left`` vs ``right`` and ``up`` vs ``down`` can only be told apart by the frame order.
800 clips (80 per class): 10 queries per class (100), 40 training clips per class from the rest
(400), database = every non-query clip (700).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from crossmedia.data.deephash import lists_complete, write_single_label_lists
from crossmedia.data.folder import DatasetFolder
from crossmedia.data.registry import register_dataset

__all__ = ["make_clips", "draw_clip", "CLIPS_CLASS_NAMES", "CLIP_FRAMES"]

_SHAPE_KINDS = ("circle", "square")
_MOTIONS = ("left", "right", "up", "down", "grow")
CLIPS_CLASS_NAMES: tuple[str, ...] = tuple(f"{s}-{m}" for s in _SHAPE_KINDS for m in _MOTIONS)
CLIP_FRAMES = 8

_FRAME_SIZE = 32
_CLIPS_PER_CLASS = 80
_QUERY_PER_CLASS = 10
_TRAIN_PER_CLASS = 40
_PALETTE = ((220, 50, 50), (50, 90, 220), (40, 170, 60), (230, 200, 40), (200, 60, 200), (240, 240, 240))
_GENERATOR_VERSION = 1


def _object_boxes(motion: str, rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    """The object's bounding box in each frame, (x0, y0, x1, y1)."""
    size, steps = _FRAME_SIZE, CLIP_FRAMES - 1
    if motion == "grow":
        cx, cy = rng.uniform(11, size - 11, size=2)
        start, end = rng.uniform(4, 7), rng.uniform(15, 20)
        extents = [start + (end - start) * t / steps for t in range(CLIP_FRAMES)]
        return [(cx - e / 2, cy - e / 2, cx + e / 2, cy + e / 2) for e in extents]
    extent = rng.uniform(7, 11)
    distance = rng.uniform(10, 15)
    low = rng.uniform(1, size - 1 - extent - distance)  # the path's low end along the motion axis
    across = rng.uniform(1, size - 1 - extent)
    along = [low + distance * t / steps for t in range(CLIP_FRAMES)]  # increasing: right / down
    if motion in ("left", "up"):
        along = along[::-1]
    if motion in ("left", "right"):
        return [(a, across, a + extent, across + extent) for a in along]
    return [(across, a, across + extent, a + extent) for a in along]


def draw_clip(class_index: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of class ``class_index`` as uint8 frames (T, 32, 32, 3), drawn from ``rng``."""
    kind, motion = CLIPS_CLASS_NAMES[class_index].split("-")
    size = _FRAME_SIZE
    grey = rng.integers(60, 150)
    background = np.clip(grey + rng.normal(0.0, 12.0, size=(size, size, 3)), 0, 255)
    colour = np.array(_PALETTE[rng.integers(len(_PALETTE))]) + rng.integers(-25, 26, size=3)
    colour = tuple(int(v) for v in np.clip(colour, 0, 255))
    frames = []
    for box in _object_boxes(motion, rng):
        frame = Image.fromarray(background.round().astype(np.uint8))
        draw = ImageDraw.Draw(frame)
        box = tuple(round(v) for v in box)
        if kind == "circle":
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
        flicker = rng.normal(0.0, 5.0, size=(size, size, 3))  # per-frame sensor noise
        frames.append(np.clip(np.asarray(frame, dtype=np.float64) + flicker, 0, 255).round())
    return np.stack(frames).astype(np.uint8)  # (T, H, W, 3)


def _folder(root: Path, **settings: int) -> DatasetFolder:
    """``root`` as a ``clips`` folder of this generator version (and of ``settings``: the seed)."""
    return DatasetFolder(root, {"name": "clips", **settings, "generator_version": _GENERATOR_VERSION},
                         complete=lists_complete)


def make_clips(root: Path, *, seed: int = 0, progress: bool = True) -> Path:
    """Write the ``clips`` dataset into ``root`` (skipped when a complete copy with ``seed`` exists)."""
    root = Path(root)
    folder = _folder(root, seed=seed)
    if folder.ready():
        return root
    with folder.rewriting() as meta:
        num_classes = len(CLIPS_CLASS_NAMES)
        rng = np.random.default_rng(seed)
        classes = rng.permutation(np.repeat(np.arange(num_classes), _CLIPS_PER_CLASS))
        paths = []
        for index in tqdm(range(len(classes)), desc="clips: drawing frames", disable=not progress):
            clip_dir = root / "clips" / f"{index:04d}"
            clip_dir.mkdir(parents=True, exist_ok=True)
            for t, frame in enumerate(draw_clip(int(classes[index]), rng)):
                Image.fromarray(frame).save(clip_dir / f"{t:03d}.png")
            paths.append(f"clips/{index:04d}")

        counts = write_single_label_lists(root, paths=paths, classes=classes, num_classes=num_classes,
                                          query_per_class=_QUERY_PER_CLASS, train_per_class=_TRAIN_PER_CLASS, seed=seed)
        meta.update({
            "name": "clips",
            "kind": "video",
            "num_classes": num_classes,
            "class_names": list(CLIPS_CLASS_NAMES),
            "frames_per_clip": CLIP_FRAMES,
            "seed": seed,
            "generator_version": _GENERATOR_VERSION,
            "source": "generated by crossmedia.data.builtin.clips",
            "counts": counts,
        })
    return root


@register_dataset("clips", kind="video", builtin=True, num_classes=len(CLIPS_CLASS_NAMES),
                  ready=lambda root: _folder(root).ready(),  # any seed
                  summary="800 generated 8-frame 32x32 clips, 10 classes = shape x motion")
def _prepare_clips(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    return make_clips(root, seed=seed, progress=progress)
