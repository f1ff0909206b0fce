"""Caption dataset folders in every layout the caption data modules (caption, t2i, retrieval) read in place.

* a prepared folder (``meta.json`` of format ``karpathy``) or a user's folder with one Karpathy split
  file of any name, or COCO caption annotation files of any names
  (:func:`crossmedia.data.karpathy.read_caption_folder`);
* a folder in Reed et al.'s text-to-image layout: ``trainvalclasses.txt``, ``testclasses.txt``,
  ``text_c10/<class>/<name>.txt`` and the images (CUB-200-2011, Oxford-102;
  :func:`crossmedia.data.cub.read_cub_text`), recognised by those names when there is no ``meta.json``.

Nothing is written into a user's folder; a built-in dataset is generated only into its own folder.
(This module sits above :mod:`~crossmedia.data.karpathy` and :mod:`~crossmedia.data.cub`, which
reads karpathy's records, so that neither imports the other back.)
"""
from __future__ import annotations

from pathlib import Path

from crossmedia.data import karpathy
from crossmedia.data.cub import looks_like_cub_text, read_cub_text
from crossmedia.data.folder import read_meta
from crossmedia.data.karpathy import CaptionedImage

__all__ = ["read_caption_folder", "ensure_caption_folder"]


def _reed_folder(root: Path) -> bool:
    return read_meta(root) is None and looks_like_cub_text(root)


def read_caption_folder(root: str | Path) -> list[CaptionedImage]:
    """The captioned images of a caption folder in any layout of the module docstring."""
    if _reed_folder(Path(root)):
        return read_cub_text(root)
    return karpathy.read_caption_folder(root)


def ensure_caption_folder(root: str | Path, dataset: str) -> Path:
    """``root`` when it holds a caption folder in any layout of the module docstring (a user's is read in
    place, never written to); otherwise the registry prepares ``dataset`` there
    (:func:`crossmedia.data.karpathy.ensure_caption_folder`)."""
    if _reed_folder(Path(root)):
        return Path(root)
    return karpathy.ensure_caption_folder(root, dataset)
