"""The DeepHash list format: image (or clip) paths with multi-hot labels.

A dataset folder holds three list files, ``train.txt``, ``query.txt`` and ``database.txt``
(DeepHash-pytorch calls the query split ``test.txt``), plus our ``meta.json``. Each line is one
item::

    images/00042.png 0 1 0 0 1 0 0 0

the path first (relative to the dataset folder, or absolute), then one ``0``/``1`` per class. A
path may name an image file (PNG/JPG, read with PIL as RGB) or a folder of frames ``000.png,
001.png, ...`` holding one video clip. Paths must not contain whitespace.

Rules checked by :func:`read_list` (every error names the list file, the line and the field):

- a file without a single item is an error (blank lines are ignored, nothing else is);
- every line starts with a path; a first column that is a bare number (and names no file) means
  the path is missing;
- every line has as many label columns as ``num_classes`` (when given) or as the first line;
- every label is ``0`` or ``1``;
- an item with no positive label (all zeros) is refused unless ``allow_unlabeled=True``:
  hashing metrics count a database item as relevant when it shares a label with the query, so an
  unlabeled item can never be relevant and usually marks a broken list;
- every referenced file or frame folder exists (``check_files=False`` skips this).

Nothing here unpickles anything.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from crossmedia.data.folder import read_meta
from crossmedia.data.registry import register_folder_format

__all__ = ["DeepHashListDataset", "DeepHashListError", "SPLITS", "few_per_class", "frame_files",
           "hand_made_lists", "list_file_for", "lists_complete", "read_list", "stratified_split",
           "write_list", "write_single_label_lists", "write_split_lists"]

SPLITS: tuple[str, ...] = ("train", "query", "database")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_BINARY = {"0", "1"}


class DeepHashListError(ValueError):
    """A list file (or an item it names) is malformed; the message names file, line and field."""


# helpers


def list_file_for(root: Path, split: str) -> Path:
    """The list file of ``split`` (``train`` | ``query`` | ``database``) in dataset folder ``root``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return Path(root) / f"{split}.txt"


def frame_files(folder: Path) -> list[Path]:
    """The frames of a clip folder in name order (``000.png, 001.png, ...``)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def _looks_like_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_list(
    list_file: Path,
    *,
    root: Path | None = None,
    num_classes: int | None = None,
    allow_unlabeled: bool = False,
    check_files: bool = True,
    progress: bool = False,
) -> list[tuple[str, np.ndarray]]:
    """Read a DeepHash list file into ``[(path, labels), ...]`` with ``labels`` a uint8 (C,) array.

    ``root`` is the folder relative paths are resolved against when checking that files exist
    (default: the list file's folder); the returned paths are exactly as written in the file.
    Raises :class:`DeepHashListError` naming the file, the line and the field on any bad line.
    """
    list_file = Path(list_file)
    root = Path(root) if root is not None else list_file.parent
    if not list_file.is_file():
        raise FileNotFoundError(f"list file {list_file} does not exist")
    lines = list_file.read_text(encoding="utf-8").splitlines()
    items: list[tuple[str, np.ndarray]] = []
    width, width_from = num_classes, "num_classes"
    for number, line in enumerate(tqdm(lines, desc=f"checking {list_file.name}", disable=not progress), 1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{list_file}, line {number}"
        path, labels = tokens[0], tokens[1:]
        if _looks_like_number(path) and not (root / path).exists():
            raise DeepHashListError(
                f"{where}: the first column {path!r} is a number, not an image path; every line must "
                f"start with the item's path (relative to {root}), then its 0/1 labels")
        if not labels:
            raise DeepHashListError(
                f"{where}: {path!r} has no label columns; write one 0/1 per class after the path")
        if width is None:
            width, width_from = len(labels), f"line {number}"
        if len(labels) != width:
            raise DeepHashListError(
                f"{where}: {len(labels)} label columns, expected {width} (as on {width_from}); "
                f"each line needs exactly one 0/1 per class after the path")
        if not set(labels) <= _BINARY:
            column = next(i for i, token in enumerate(labels) if token not in _BINARY)
            raise DeepHashListError(
                f"{where}: label column {column + 1} (class {column}) is {labels[column]!r}, not 0 or 1; "
                f"labels are multi-hot: write 1 where the class is present and 0 where it is not")
        label_array = np.frombuffer("".join(labels).encode("ascii"), dtype=np.uint8) - ord("0")  # (C,)
        if not allow_unlabeled and not label_array.any():
            raise DeepHashListError(
                f"{where}: {path!r} has no positive label (all {width} columns are 0); remove the line "
                f"or pass allow_unlabeled=True if unlabeled items are intended")
        if check_files and not (root / path).exists():
            raise DeepHashListError(
                f"{where}: the item {path!r} does not exist (looked for {root / path}); fix the path "
                f"or put the file there")
        items.append((path, label_array))
    if not items:
        raise DeepHashListError(
            f"{list_file} is empty; expected one item per line: 'relative/path.png 0 1 0 ...'")
    return items


def write_list(list_file: Path, items: Iterable[tuple[str, Sequence[int] | np.ndarray]]) -> Path:
    """Write ``[(path, labels), ...]`` as a DeepHash list file (atomically); returns ``list_file``."""
    list_file = Path(list_file)
    lines = []
    for number, (path, labels) in enumerate(items, 1):
        path = str(path)
        if not path or any(ch.isspace() for ch in path):
            raise DeepHashListError(f"item {number}: path {path!r} is empty or contains whitespace")
        values = np.asarray(labels).reshape(-1)
        if values.size == 0 or not np.isin(values, (0, 1)).all():
            raise DeepHashListError(f"item {number} ({path}): labels must be a non-empty 0/1 vector")
        lines.append(path + " " + " ".join(str(int(v)) for v in values))
    if not lines:
        raise DeepHashListError(f"refusing to write an empty list file {list_file}")
    list_file.parent.mkdir(parents=True, exist_ok=True)
    partial = list_file.with_name(list_file.name + ".partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(partial, list_file)
    return list_file


def write_split_lists(root: Path, *, paths: list[str], labels: np.ndarray,
                      splits: dict[str, np.ndarray]) -> dict[str, int]:
    """Write the three list files of a dataset folder; returns the item count of each split.

    ``labels`` are multi-hot rows (N, C) aligned with ``paths``; ``splits`` maps each of
    :data:`SPLITS` to the row indices it holds.
    """
    for split in SPLITS:
        write_list(list_file_for(root, split), [(paths[i], labels[i]) for i in splits[split]])
    return {split: int(len(splits[split])) for split in SPLITS}


def write_single_label_lists(root: Path, *, paths: list[str], classes: np.ndarray, num_classes: int,
                             query_per_class: int, train_per_class: int, seed: int) -> dict[str, int]:
    """:func:`stratified_split` of single-label data (class ids ``classes``, shape (N,)) written as
    one-hot list files by :func:`write_split_lists`; returns the item count of each split."""
    one_hot = np.eye(num_classes, dtype=np.uint8)[np.asarray(classes)]  # (N, C)
    splits = stratified_split(classes, query_per_class=query_per_class, train_per_class=train_per_class, seed=seed)
    return write_split_lists(root, paths=paths, labels=one_hot, splits=splits)


def lists_complete(root: Path, meta: dict[str, Any]) -> bool:
    """The three list files of ``root`` hold the item counts ``meta`` records (a :class:`DatasetFolder` check)."""
    for split in SPLITS:
        list_file = list_file_for(root, split)
        if not list_file.is_file():
            return False
        with list_file.open(encoding="utf-8") as handle:
            count = sum(1 for line in handle if line.strip())
        if count != meta.get("counts", {}).get(split):
            return False
    return True


@register_folder_format("deephash")
def hand_made_lists(root: Path) -> bool:
    """``root`` holds the three list files and no ``meta.json``: a hand-made folder, used as it is."""
    return read_meta(root) is None and all(list_file_for(root, split).is_file() for split in SPLITS)


def stratified_split(
    labels: np.ndarray, *, query_per_class: int, train_per_class: int, seed: int
) -> dict[str, np.ndarray]:
    """The DeepHash-pytorch per-class protocol on single-label data (class ids, shape (N,)).

    For each class, in a seeded random order: the first ``query_per_class`` items are queries, the
    next ``train_per_class`` are training items; the database is every non-query item (training
    items included, as in DeepHash-pytorch's ``cifar10-1``). Returns sorted index arrays.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    query, train, database = [], [], []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < query_per_class + train_per_class:
            raise ValueError(
                f"class {cls} has {len(members)} items; the protocol needs {query_per_class} query + "
                f"{train_per_class} train items per class")
        members = rng.permutation(members)
        query.append(members[:query_per_class])
        train.append(members[query_per_class:query_per_class + train_per_class])
        database.append(members[query_per_class:])
    return {name: np.sort(np.concatenate(parts)) for name, parts in
            (("train", train), ("query", query), ("database", database))}


# classes


def few_per_class(classes: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` items of each class of single-label data (class ids (N,)),
    drawn in a seeded order: the fewer-images-per-class training sets of classify and hashing."""
    if per_class < 1:
        raise ValueError(f"train_per_class must be a positive number of images, got {per_class}")
    rng = np.random.default_rng(seed)
    picks = []
    for cls in np.unique(classes):
        members = np.flatnonzero(classes == cls)
        if len(members) < per_class:
            raise ValueError(f"class {cls} has {len(members)} training images; train_per_class={per_class} "
                             f"needs that many: lower it or add images")
        picks.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(picks))


class DeepHashListDataset(Dataset):
    """One split of a DeepHash dataset folder: items ``(x, labels)`` with float multi-hot labels.

    An image item gives ``transform(PIL RGB image)`` (default: a float (3, H, W) tensor in [0, 1]).
    A clip item (a folder of frames) gives ``transform(tv_tensors.Video)`` on the uint8 (T, 3, H, W)
    clip, so one random draw of an augmentation covers all frames (default: float (T, 3, H, W) in
    [0, 1]); ``clip_length`` frames are sampled uniformly over the clip (all frames when None).
    """

    def __init__(
        self,
        *,
        root: Path | str,
        split: str,
        transform: Callable[[Any], torch.Tensor] | None = None,
        clip_length: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.list_file = list_file_for(self.root, split)
        if not self.list_file.is_file():
            raise FileNotFoundError(
                f"{self.list_file} does not exist; prepare the dataset first "
                f"(crossmedia data prepare NAME) or point root at a folder with {', '.join(SPLITS)} lists")
        meta = read_meta(self.root) or {}
        self.items = read_list(self.list_file, root=self.root, num_classes=meta.get("num_classes"))
        self.labels = np.stack([labels for _, labels in self.items])  # (N, C) uint8
        self.transform = transform
        if clip_length is not None and clip_length < 1:
            raise ValueError(f"clip_length must be a positive number of frames, got {clip_length}")
        self.clip_length = clip_length

    @property
    def num_classes(self) -> int:
        """Number of label columns."""
        return self.labels.shape[1]

    def keep(self, indices: Sequence[int] | np.ndarray) -> None:
        """Keep only the items at ``indices`` (in that order), e.g. a few per class."""
        indices = np.asarray(indices, dtype=np.int64)
        self.items = [self.items[i] for i in indices]
        self.labels = self.labels[indices]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, labels = self.items[index]
        target = torch.from_numpy(labels.astype(np.float32))  # (C,)
        location = self.root / path
        x = self._load_clip(location) if location.is_dir() else self._load_image(location)
        if isinstance(x, torch.Tensor):
            x = x.as_subclass(torch.Tensor)  # tv_tensors -> plain tensor for collation
        return x, target

    def _load_image(self, location: Path) -> torch.Tensor:
        with Image.open(location) as image:
            image = image.convert("RGB")
        if self.transform is not None:
            return self.transform(image)
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255  # (3, H, W)

    def _load_clip(self, folder: Path) -> torch.Tensor:
        from torchvision import tv_tensors

        frames = frame_files(folder)
        if not frames:
            raise DeepHashListError(
                f"{self.list_file}: clip folder {folder} has no frames; expected 000.png, 001.png, ...")
        length = self.clip_length or len(frames)
        picks = np.linspace(0, len(frames) - 1, length).round().astype(int)  # uniform over the clip
        arrays = []
        for pick in picks:
            with Image.open(frames[pick]) as frame:
                arrays.append(np.asarray(frame.convert("RGB")))
        try:
            clip = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
        except ValueError as error:
            raise DeepHashListError(f"clip folder {folder}: frames differ in size ({error})") from error
        if self.transform is not None:
            return self.transform(tv_tensors.Video(clip))
        return clip.float() / 255
