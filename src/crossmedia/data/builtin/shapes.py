"""Built-in ``shapes``: a generated multi-label image dataset for deep hashing.

Each 32x32 RGB image shows 1-3 objects on a noisy grey background. The 8 classes are coloured
shapes, ``{red, blue} x {circle, square, triangle, cross}``; an image's multi-hot label marks every
class present (the objects of one image are distinct classes, so 2/3 of the images carry several
labels, as in NUS-WIDE or COCO). Objects sit in distinct quadrants so none hides another.
3,000 images: 300 queries, 1,500 training images from the rest, database = every non-query image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from crossmedia.data.deephash import lists_complete, write_split_lists
from crossmedia.data.folder import DatasetFolder
from crossmedia.data.registry import register_dataset

__all__ = ["make_shapes", "draw_shapes_image", "SHAPES_CLASS_NAMES"]

_SHAPE_KINDS = ("circle", "square", "triangle", "cross")
_COLOURS = {"red": (215, 45, 45), "blue": (45, 75, 215)}
SHAPES_CLASS_NAMES: tuple[str, ...] = tuple(f"{c}-{s}" for c in _COLOURS for s in _SHAPE_KINDS)

_IMAGE_SIZE = 32
_NUM_IMAGES = 3000
_NUM_QUERY = 300
_NUM_TRAIN = 1500
_GENERATOR_VERSION = 1


def _draw_object(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int],
                 colour: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    elif kind == "triangle":
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)
    elif kind == "cross":
        arm = max(2, (x1 - x0 + 1) // 3)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle((cx - arm // 2, y0, cx - arm // 2 + arm - 1, y1), fill=colour)
        draw.rectangle((x0, cy - arm // 2, x1, cy - arm // 2 + arm - 1), fill=colour)
    else:
        raise ValueError(f"unknown shape kind {kind!r}")


def draw_shapes_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One image (uint8 (32, 32, 3)) and its multi-hot label (uint8 (8,)), drawn from ``rng``."""
    size, half = _IMAGE_SIZE, _IMAGE_SIZE // 2
    grey = int(rng.integers(70, 181))
    background = np.clip(grey + rng.integers(-10, 11, size=3), 0, 255).astype(np.uint8)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(image)

    num_objects = int(rng.integers(1, 4))
    classes = rng.choice(len(SHAPES_CLASS_NAMES), size=num_objects, replace=False)
    quadrants = rng.choice(4, size=num_objects, replace=False)
    label = np.zeros(len(SHAPES_CLASS_NAMES), dtype=np.uint8)
    for cls, quadrant in zip(classes, quadrants):
        colour_name, kind = SHAPES_CLASS_NAMES[cls].split("-")
        extent = int(rng.integers(8, 14))  # object side in pixels, fits a 16x16 quadrant
        x0 = (quadrant % 2) * half + int(rng.integers(1, half - extent + 1))
        y0 = (quadrant // 2) * half + int(rng.integers(1, half - extent + 1))
        jitter = rng.integers(-30, 31, size=3)
        colour = tuple(int(v) for v in np.clip(np.array(_COLOURS[colour_name]) + jitter, 0, 255))
        _draw_object(draw, kind, (x0, y0, x0 + extent - 1, y0 + extent - 1), colour)
        label[cls] = 1

    noise = rng.normal(0.0, 14.0, size=(size, size, 3))
    pixels = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).round().astype(np.uint8)
    return pixels, label


def _folder(root: Path, **settings: int) -> DatasetFolder:
    """``root`` as a ``shapes`` folder of this generator version (and of ``settings``: the seed)."""
    return DatasetFolder(root, {"name": "shapes", **settings, "generator_version": _GENERATOR_VERSION},
                         complete=lists_complete)


def make_shapes(root: Path, *, seed: int = 0, progress: bool = True) -> Path:
    """Write the ``shapes`` dataset into ``root`` (skipped when a complete copy with ``seed`` exists)."""
    root = Path(root)
    folder = _folder(root, seed=seed)
    if folder.ready():
        return root
    with folder.rewriting() as meta:
        (root / "images").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        paths, labels = [], []
        for index in tqdm(range(_NUM_IMAGES), desc="shapes: drawing PNGs", disable=not progress):
            pixels, label = draw_shapes_image(rng)
            paths.append(f"images/{index:04d}.png")
            Image.fromarray(pixels).save(root / paths[-1])
            labels.append(label)

        order = np.random.default_rng([seed, 1]).permutation(_NUM_IMAGES)
        splits = {
            "query": np.sort(order[:_NUM_QUERY]),
            "train": np.sort(order[_NUM_QUERY:_NUM_QUERY + _NUM_TRAIN]),
            "database": np.sort(order[_NUM_QUERY:]),
        }
        counts = write_split_lists(root, paths=paths, labels=labels, splits=splits)
        meta.update({
            "name": "shapes",
            "kind": "image",
            "num_classes": len(SHAPES_CLASS_NAMES),
            "class_names": list(SHAPES_CLASS_NAMES),
            "seed": seed,
            "generator_version": _GENERATOR_VERSION,
            "source": "generated by crossmedia.data.builtin.shapes",
            "counts": counts,
        })
    return root


@register_dataset("shapes", kind="image", builtin=True, num_classes=len(SHAPES_CLASS_NAMES),
                  ready=lambda root: _folder(root).ready(),  # any seed
                  summary="3,000 generated 32x32 images with 1-3 coloured shapes, 8 classes, multi-label")
def _prepare_shapes(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    return make_shapes(root, seed=seed, progress=progress)
