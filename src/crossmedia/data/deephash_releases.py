"""The DeepHash-pytorch / HashNet releases of NUS-WIDE, MS-COCO and ImageNet-100, checked into our layout.

A release is a folder with ``train.txt``, ``test.txt`` and ``database.txt`` in the DeepHash list
format (:mod:`crossmedia.data.deephash`) and the images they name, relative to that folder.
Preparing one validates every line and every image, then writes our three lists
(``test.txt`` becomes ``query.txt``) pointing into the download; images are not copied.
"""
from __future__ import annotations

import os
from pathlib import Path

from crossmedia.data.deephash import list_file_for, lists_complete, read_list, write_list
from crossmedia.data.folder import DatasetFolder, link_source
from crossmedia.data.karpathy import caption_release_in
from crossmedia.data.registry import Preparer, Ready, register_dataset

__all__ = ["prepare_deephash_release"]

_RELEASE_LISTS = {"train": "train.txt", "query": "test.txt", "database": "database.txt"}
_RELEASE_LAYOUT = ("a folder with train.txt, test.txt, database.txt (DeepHash-pytorch lists) and the images, "
                   "the paths in the lists relative to that folder")


def prepare_deephash_release(root: Path, *, source: Path, name: str, num_classes: int, progress: bool = True) -> Path:
    """Check a DeepHash-pytorch release and write our lists for it (``test.txt`` becomes ``query.txt``).

    Every line is validated and every image must exist. Images are not copied: ``root/images`` is
    a symbolic link to ``source`` and the lists say ``images/<path>`` (where a link cannot be made,
    the lists hold absolute paths into ``source`` instead).
    """
    root, source = Path(root), Path(source).resolve()
    if not source.is_dir():
        raise FileNotFoundError(f"{name} source folder {source} does not exist")
    missing = [f for f in _RELEASE_LISTS.values() if not (source / f).is_file()]
    if missing:
        captions = caption_release_in(source)
        hint = (f" ({source} holds a Karpathy caption split file: for captioning, run "
                f"`crossmedia data prepare {captions} --source {source}`)") if captions else ""
        raise FileNotFoundError(f"{source} is missing {', '.join(missing)}; expected {_RELEASE_LAYOUT}{hint}")
    folder = DatasetFolder(root, {"name": name, "source": str(source)}, complete=lists_complete)
    if folder.ready():
        return root
    lists = {split: read_list(source / f, root=source, num_classes=num_classes, progress=progress)
             for split, f in _RELEASE_LISTS.items()}
    with folder.rewriting() as meta:
        prefix = link_source(root / "images", source)
        for split, items in lists.items():
            write_list(list_file_for(root, split),
                       [(path if os.path.isabs(path) else prefix + path, labels) for path, labels in items])
        meta.update({"name": name, "kind": "image", "num_classes": num_classes, "class_names": None,
                     "counts": {split: len(items) for split, items in lists.items()}, "source": str(source)})
    return root


def _release(name: str, num_classes: int) -> tuple[Preparer, Ready]:
    def preparer(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
        return prepare_deephash_release(root, source=source, name=name, num_classes=num_classes, progress=progress)

    def ready(root: Path) -> bool:
        return DatasetFolder(root, {"name": name}, complete=lists_complete).ready()

    return preparer, ready


for _name, _classes, _what in (("nuswide", 21, "NUS-WIDE, 21 most frequent concepts"),
                               ("coco", 80, "MS-COCO 2014, 80 categories"),
                               ("imagenet100", 100, "ImageNet-100 (HashNet subset)")):
    _preparer, _ready = _release(_name, _classes)
    register_dataset(_name, kind="image", builtin=False, num_classes=_classes, source_layout=_RELEASE_LAYOUT,
                     ready=_ready, summary=f"{_what}, multi-hot, DeepHash-pytorch lists")(_preparer)
