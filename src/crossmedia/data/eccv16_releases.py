"""The eccv16 releases of SumMe, TVSum, OVP and YouTube, checked and copied into ``data/``.

The download is ``eccv16_dataset_<name>_google_pool5.h5`` (the pytorch-vsumm-reinforce / DSNet
release, format in :mod:`crossmedia.data.eccv16`). Preparing reads and checks every video before
anything is written, then copies the file next to a split file.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from tqdm import tqdm

from crossmedia.data.eccv16 import (Eccv16FormatError, eccv16_filename, eccv16_files_complete, list_videos, make_key,
                                    open_eccv16, parse_key, read_video)
from crossmedia.data.folder import DatasetFolder, read_meta
from crossmedia.data.registry import Preparer, Ready, register_dataset, register_folder_format
from crossmedia.data.splits import Split, make_splits, read_splits, write_splits

__all__ = ["prepare_eccv16", "eccv16_folder"]


@register_folder_format("eccv16")
def eccv16_folder(root: Path) -> bool:
    """``root`` holds eccv16 files: hand-made (h5 files, no ``meta.json``) or prepared, used as they are."""
    meta = read_meta(root)
    if meta is None:
        return any(Path(root).glob("*.h5"))
    return meta.get("format") == "eccv16" and eccv16_files_complete(root, meta)


def prepare_eccv16(root: str | Path, *, source: str | Path, name: str, seed: int = 0, splits: str | Path | None = None,
                   progress: bool = True) -> Path:
    """Check a downloaded ``eccv16_dataset_<name>_google_pool5.h5`` and copy it into ``root``.

    ``source`` is the file itself or the folder holding it. Every video is read and checked
    (:func:`read_video`; user summaries are required for SumMe and TVSum, whose test protocol
    needs them) before anything is written; a file h5py cannot open is an
    :class:`Eccv16FormatError` naming it. Next to the copy goes ``<stem>_splits.json``: the
    published split file ``splits`` (JSON or YAML, checked against the videos, keys rewritten as
    ``<stem>/<video>``) when given, else 5 canonical 80/20 splits drawn from ``seed``.
    ``root/meta.json`` records the file, its size, the videos and the split file. A complete copy
    of the same source with the same splits is kept as it is.
    """
    root, source = Path(root), Path(source)
    filename = eccv16_filename(name)
    path = source if source.is_file() else source / filename
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no {filename} in {source}; download the eccv16 h5 files "
                                f"(pytorch-vsumm-reinforce / DSNet release) and pass the folder holding them")
    target = root / filename
    splits_path = target.with_name(f"{target.stem}_splits.json")
    splits_source = None if splits is None else str(Path(splits).resolve())
    folder = DatasetFolder(root, {"name": name, "size": path.stat().st_size, "source": str(path.resolve()),
                                  "seed": seed, "splits_source": splits_source}, complete=eccv16_files_complete)
    if folder.ready():
        return root
    require = name in ("summe", "tvsum")
    with open_eccv16(path) as handle:
        videos = list_videos(handle)
        if not videos:
            raise Eccv16FormatError(f"{path}: the file holds no video groups")
        for video in tqdm(videos, desc=f"{name}: checking videos", disable=not progress):
            read_video(handle, video, require_user_summary=require)
    keys = [make_key(target, video) for video in videos]
    if splits is None:
        chosen = make_splits(keys, setting="canonical", seed=seed)
    else:  # a published file (bare or path-prefixed keys) in our key form
        ours = {parse_key(k)[1]: k for k in keys}
        chosen = [Split(tuple(ours[parse_key(k)[1]] for k in split.train_keys),
                        tuple(ours[parse_key(k)[1]] for k in split.test_keys))
                  for split in read_splits(splits, known_keys=keys)]
    with folder.rewriting() as meta:
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(path, partial)
        os.replace(partial, target)
        write_splits(splits_path, chosen)
        meta.update({**folder.expected, "kind": "video", "format": "eccv16", "file": filename,
                     "num_videos": len(videos), "videos": videos, "splits_file": splits_path.name})
    return root


def _release(name: str) -> tuple[Preparer, Ready]:
    def preparer(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
        return prepare_eccv16(root, source=source, name=name, seed=seed, progress=progress)

    def ready(root: Path) -> bool:
        return DatasetFolder(root, {"name": name, "format": "eccv16"}, complete=eccv16_files_complete).ready()

    return preparer, ready


for _name, _what in (("summe", "SumMe, 25 videos"), ("tvsum", "TVSum, 50 videos"), ("ovp", "OVP, 50 videos"),
                     ("youtube", "YouTube, 39 videos")):
    _preparer, _ready = _release(_name)
    register_dataset(_name, kind="video", builtin=False, ready=_ready,
                     summary=f"{_what}, eccv16 h5 with GoogLeNet pool5 features",
                     source_layout=f"the folder holding {eccv16_filename(_name)} (the eccv16 release)")(_preparer)
