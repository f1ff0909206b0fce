"""ImageFolder: one sub-folder per class, the layout of ImageNet and most users' own datasets.

    root/
      cat/  0001.jpg  0002.png ...
      dog/  a.jpeg ...

Classes are the sub-folder names in sorted order (class id = position), as torchvision's
``ImageFolder`` does. Unlike it, nothing is skipped silently: a class folder without images, a
file that is not an image (hidden files such as ``.DS_Store`` aside) or an image that does not
decode raises an error naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["IMAGE_SUFFIXES", "ImageFolderError", "read_image_folder", "load_image_array"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageFolderError(ValueError):
    """An ImageFolder is malformed; the message names the folder or file and the fix."""


def read_image_folder(root: str | Path) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Image files (sorted within each class), their class ids (N,) int64 and the class names."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ImageFolder {root} does not exist")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise ImageFolderError(f"{root} holds no class folders: an ImageFolder has one sub-folder per class "
                               f"(root/CLASS/IMAGE.png)")
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    if loose:
        raise ImageFolderError(f"{root / loose[0]}: a file beside the class folders; images belong in "
                               f"root/CLASS/ (move or delete it)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if not p.name.startswith("."))
        if not files:
            raise ImageFolderError(f"class folder {root / name} has no images")
        for path in files:
            if path.is_dir() or path.suffix.lower() not in IMAGE_SUFFIXES:
                raise ImageFolderError(f"{path}: not an image file (expected {', '.join(IMAGE_SUFFIXES)}); "
                                       f"move or delete it")
            paths.append(path)
            labels.append(label)
    return paths, np.asarray(labels, dtype=np.int64), classes


def load_image_array(path: str | Path, size: int) -> np.ndarray:
    """The image at ``path`` as RGB uint8 (size, size, 3), resized with antialiasing; errors name the file."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ImageFolderError(f"{path}: not a readable image ({error.__class__.__name__}: {error})") from None
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(image)
