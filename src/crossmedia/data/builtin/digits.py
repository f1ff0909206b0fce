"""Built-in ``digits``: real handwritten digits for deep hashing, no download needed.

The 1,797 8x8 images bundled with scikit-learn (``sklearn.datasets.load_digits``, the UCI
optical-recognition set), written as 8-bit grayscale PNGs (pixel values 0..16 scaled to 0..255,
still 8x8: resizing belongs to the transforms) with one-hot labels, split with the DeepHash
CIFAR-10 protocol shape: 30 queries per class (300), 100 training images per class from the
rest (1,000), database = every non-query image (1,497).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from crossmedia.data.deephash import lists_complete, write_single_label_lists
from crossmedia.data.folder import DatasetFolder
from crossmedia.data.registry import register_dataset

__all__ = ["make_digits", "digit_pixels", "DIGITS_CLASS_NAMES"]

DIGITS_CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
_QUERY_PER_CLASS = 30
_TRAIN_PER_CLASS = 100
_GENERATOR_VERSION = 1


def digit_pixels(images: np.ndarray) -> np.ndarray:
    """scikit-learn digit intensities (0..16, float) as the uint8 (0..255) pixels we store."""
    return np.round(np.asarray(images, dtype=np.float64) * 255.0 / 16.0).astype(np.uint8)


def _folder(root: Path, **settings: int) -> DatasetFolder:
    """``root`` as a ``digits`` folder of this generator version (and of ``settings``: the seed)."""
    return DatasetFolder(root, {"name": "digits", **settings, "generator_version": _GENERATOR_VERSION},
                         complete=lists_complete)


def make_digits(root: Path, *, seed: int = 0, progress: bool = True) -> Path:
    """Write the ``digits`` dataset into ``root`` (skipped when a complete copy with ``seed`` exists)."""
    from sklearn.datasets import load_digits

    root = Path(root)
    folder = _folder(root, seed=seed)
    if folder.ready():
        return root
    with folder.rewriting() as meta:
        bunch = load_digits()
        pixels = digit_pixels(bunch.images)  # (1797, 8, 8) uint8
        targets = np.asarray(bunch.target)

        image_dir = root / "images"
        image_dir.mkdir(parents=True, exist_ok=True)
        paths = [f"images/{index:04d}.png" for index in range(len(pixels))]
        for index in tqdm(range(len(pixels)), desc="digits: writing PNGs", disable=not progress):
            Image.fromarray(pixels[index]).save(root / paths[index])  # 2-D uint8 -> mode "L"

        counts = write_single_label_lists(root, paths=paths, classes=targets, num_classes=len(DIGITS_CLASS_NAMES),
                                          query_per_class=_QUERY_PER_CLASS, train_per_class=_TRAIN_PER_CLASS, seed=seed)
        meta.update({
            "name": "digits",
            "kind": "image",
            "num_classes": len(DIGITS_CLASS_NAMES),
            "class_names": list(DIGITS_CLASS_NAMES),
            "seed": seed,
            "generator_version": _GENERATOR_VERSION,
            "source": "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)",
            "counts": counts,
        })
    return root


@register_dataset("digits", kind="image", builtin=True, num_classes=len(DIGITS_CLASS_NAMES),
                  ready=lambda root: _folder(root).ready(),  # any seed
                  summary="1,797 real 8x8 handwritten digits (scikit-learn), 10 classes, one-hot")
def _prepare_digits(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    return make_digits(root, seed=seed, progress=progress)
