"""CIFAR-10 and CIFAR-100 (the binary versions), read without unpickling anything.

Downloads from https://www.cs.toronto.edu/~kriz/cifar.html, each a run of fixed-size records of
label byte(s) then 32x32 pixels as R, G and B planes (3,072 bytes):

* CIFAR-10: the folder ``cifar-10-batches-bin``: ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
  ``test_batch.bin``, 3,073-byte records (one label byte, 0..9); prepared into the DeepHash list
  layout with DeepHash-pytorch's protocol (:func:`prepare_cifar10`).
* CIFAR-100: the folder ``cifar-100-binary``: ``train.bin`` and ``test.bin``, 3,074-byte records
  (the coarse label byte 0..19, the fine label byte 0..99); prepared with the usual classification
  split (:func:`prepare_cifar100`).

The *python* versions (pickled batches) are refused: nothing here unpickles anything.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from crossmedia.data.deephash import lists_complete, write_single_label_lists, write_split_lists
from crossmedia.data.folder import DatasetFolder
from crossmedia.data.registry import register_dataset

__all__ = ["CIFAR10_CLASS_NAMES", "CifarBinary", "CIFAR10", "CIFAR100", "read_cifar_binary", "read_cifar10_binary",
           "prepare_cifar10", "cifar10_ready", "prepare_cifar100", "cifar100_ready"]

CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_PIXELS = 3 * 32 * 32  # CHW bytes of one record


@dataclass(frozen=True)
class CifarBinary:
    """One binary CIFAR version: its files, label bytes (with their class counts and name files)."""

    name: str
    folder: str  # the extracted folder's name
    files: tuple[str, ...]
    labels: tuple[str, ...]  # what each label byte is ("label"; "coarse", "fine")
    num_classes: tuple[int, ...]  # per label byte
    name_files: tuple[str, ...]  # per label byte: a text file of class names, one a line
    pickled: tuple[str, ...]  # names that betray the python version

    @property
    def record(self) -> int:
        return len(self.labels) + _PIXELS

    @property
    def layout(self) -> str:
        return f"the extracted {self.folder} folder ({', '.join(self.files)})"


CIFAR10 = CifarBinary("CIFAR-10", "cifar-10-batches-bin",
                      tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",),
                      ("label",), (10,), ("batches.meta.txt",),
                      ("data_batch_1", "batches.meta", "cifar-10-batches-py"))
CIFAR100 = CifarBinary("CIFAR-100", "cifar-100-binary", ("train.bin", "test.bin"), ("coarse", "fine"), (20, 100),
                       ("coarse_label_names.txt", "fine_label_names.txt"), ("train", "meta", "cifar-100-python"))
_BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


# helpers


def _binary_folder(source: Path, version: CifarBinary) -> Path:
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{version.name} source folder {source} does not exist")
    if (source / version.folder).is_dir():
        source = source / version.folder
    pickled = [source / name for name in version.pickled]
    if not (source / version.files[0]).exists() and any(p.exists() for p in pickled):
        raise ValueError(
            f"{source} holds the {version.name} *python* version (pickled batches); crossmedia never unpickles "
            f"data files. Download the binary version from {_BINARY_URL} ({version.name} binary version), "
            f"extract it and pass the {version.folder} folder as --source")
    missing = [name for name in version.files if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{source} is not a {version.name} binary folder: missing {', '.join(missing)} "
                                f"(expected {', '.join(version.files)})")
    return source


def _class_names(folder: Path, name_file: str, count: int) -> tuple[str, ...]:
    names_file = folder / name_file
    if names_file.is_file():
        listed = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
        if len(listed) == count:
            return listed
    return CIFAR10_CLASS_NAMES if count == 10 else tuple(str(i) for i in range(count))


# functions


def read_cifar_binary(source: Path, version: CifarBinary = CIFAR10
                      ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], tuple[tuple[str, ...], ...]]:
    """Images (N, 32, 32, 3) uint8, labels (N, L) int64 (one column per label byte), the record
    count of each file (rows follow ``version.files``) and the class names of each label byte."""
    folder = _binary_folder(source, version)
    images, labels, sizes = [], [], []
    width = len(version.labels)
    for name in version.files:
        raw = np.fromfile(folder / name, dtype=np.uint8)
        if raw.size == 0 or raw.size % version.record:
            raise ValueError(f"{folder / name}: {raw.size} bytes is not a whole number of {version.record}-byte "
                             f"records ({width} label byte{'s' * (width > 1)} + {_PIXELS} pixel bytes); "
                             f"the file is truncated or not {version.name} binary")
        records = raw.reshape(-1, version.record)  # (n, L + 3072)
        for column, (kind, count) in enumerate(zip(version.labels, version.num_classes)):
            bad = np.flatnonzero(records[:, column] >= count)
            if bad.size:
                raise ValueError(f"{folder / name}: record {bad[0]} has {kind} label byte {records[bad[0], column]}, "
                                 f"expected 0..{count - 1}; the file is not {version.name} binary")
        labels.append(records[:, :width].astype(np.int64))  # (n, L)
        images.append(records[:, width:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # (n, 32, 32, 3)
        sizes.append(len(records))
    names = tuple(_class_names(folder, f, c) for f, c in zip(version.name_files, version.num_classes))
    return np.concatenate(images), np.concatenate(labels), sizes, names


def read_cifar10_binary(source: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images (N, 32, 32, 3) uint8, labels (N,) and class names from a CIFAR-10 binary folder.

    Rows follow ``data_batch_1.bin`` .. ``data_batch_5.bin`` then ``test_batch.bin``.
    """
    images, labels, _, (names,) = read_cifar_binary(source, CIFAR10)
    return images, labels[:, 0], names


def _write_pngs(root: Path, images: np.ndarray, name: str, progress: bool) -> list[str]:
    (root / "images").mkdir(exist_ok=True)
    paths = [f"images/{index:05d}.png" for index in range(len(images))]
    for index in tqdm(range(len(images)), desc=f"{name}: writing PNGs", disable=not progress):
        Image.fromarray(images[index]).save(root / paths[index])
    return paths


def prepare_cifar10(root: Path, *, source: Path, seed: int = 0, progress: bool = True,
                    query_per_class: int = 100, train_per_class: int = 500) -> Path:
    """CIFAR-10 with DeepHash-pytorch's ``cifar10-1`` protocol (query 1,000 / train 5,000 / database 59,000).

    As in DeepHash-pytorch, the 50,000 training and 10,000 test images are pooled; per class, a
    seeded permutation gives ``query_per_class`` queries and the next ``train_per_class`` training
    images; the database is every non-query image (the training images included). Images are
    written as ``images/NNNNN.png`` in pooled order (0..49,999 from the data batches, then test).
    """
    root = Path(root)
    protocol = {"protocol": "DeepHash-pytorch cifar10-1", "query_per_class": query_per_class,
                "train_per_class": train_per_class}
    folder = DatasetFolder(root, {"name": "cifar10", "seed": seed, **protocol}, complete=lists_complete)
    if folder.ready():
        return root
    images, labels, class_names = read_cifar10_binary(source)
    with folder.rewriting() as meta:
        paths = _write_pngs(root, images, "cifar10", progress)
        counts = write_single_label_lists(root, paths=paths, classes=labels, num_classes=len(class_names),
                                          query_per_class=query_per_class, train_per_class=train_per_class, seed=seed)
        meta.update({"name": "cifar10", "kind": "image", "num_classes": len(class_names),
                     "class_names": list(class_names), "seed": seed, **protocol,
                     "counts": counts,
                     "source": str(Path(source).resolve())})
    return root


def _prepared(name: str) -> Callable[[Path], bool]:
    """``ready(root)``: ``root`` holds a complete folder written by ``prepare_<name>`` (any seed or protocol size)."""
    def ready(root: Path) -> bool:
        return DatasetFolder(root, {"name": name}, complete=lists_complete).ready()
    return ready


cifar10_ready = _prepared("cifar10")


@register_dataset("cifar10", kind="image", builtin=False, num_classes=10, ready=cifar10_ready,
                  source_layout=CIFAR10.layout,
                  summary="CIFAR-10, DeepHash-pytorch cifar10-1 protocol: query 1,000 / train 5,000 / database 59,000")
def _prepare_cifar10(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
    return prepare_cifar10(root, source=source, seed=seed, progress=progress)


def prepare_cifar100(root: Path, *, source: Path, seed: int = 0, progress: bool = True,
                     val_per_class: int = 50) -> Path:
    """CIFAR-100 (fine labels, 100 classes) as a DeepHash list folder for classification.

    ``query`` is the official test set (10,000, the classify task's test split), ``database`` the
    official training set (50,000), ``train`` the training set less ``val_per_class`` images per
    class held out by a seeded permutation (45,000 + 5,000 validation images: the classify task's
    val split is database minus train). Images are ``images/NNNNN.png`` in file order (train.bin,
    then test.bin); ``coarse.txt`` holds each image's coarse label (0..19), one a line.
    """
    root = Path(root)
    protocol = {"protocol": "official train/test, train less val_per_class per class", "val_per_class": val_per_class}
    folder = DatasetFolder(root, {"name": "cifar100", "seed": seed, **protocol}, complete=lists_complete)
    if folder.ready():
        return root
    images, labels, (train_size, _), (coarse_names, fine_names) = read_cifar_binary(source, CIFAR100)
    fine = labels[:, 1]
    per_class = np.bincount(fine[:train_size], minlength=len(fine_names))
    if per_class.min() <= val_per_class:
        raise ValueError(f"{source}: class {per_class.argmin()} has {per_class.min()} training images; holding out "
                         f"{val_per_class} per class for validation needs more (the real train.bin has 500)")
    rng = np.random.default_rng(seed)
    held = np.concatenate([rng.permutation(np.flatnonzero(fine[:train_size] == c))[:val_per_class]
                           for c in range(len(fine_names))])
    splits = {"train": np.setdiff1d(np.arange(train_size), held), "database": np.arange(train_size),
              "query": np.arange(train_size, len(images))}
    with folder.rewriting() as meta:
        paths = _write_pngs(root, images, "cifar100", progress)
        one_hot = np.eye(len(fine_names), dtype=np.uint8)[fine]  # (N, 100)
        counts = write_split_lists(root, paths=paths, labels=one_hot, splits=splits)
        (root / "coarse.txt").write_text("".join(f"{c}\n" for c in labels[:, 0]), encoding="utf-8")
        meta.update({"name": "cifar100", "kind": "image", "num_classes": len(fine_names),
                     "class_names": list(fine_names), "coarse_class_names": list(coarse_names), "seed": seed,
                     **protocol, "counts": counts, "source": str(Path(source).resolve())})
    return root


cifar100_ready = _prepared("cifar100")


@register_dataset("cifar100", kind="image", builtin=False, num_classes=100, ready=cifar100_ready,
                  source_layout=CIFAR100.layout,
                  summary="CIFAR-100 (fine labels): train 45,000 / val 5,000 (database - train) / test 10,000 (query)")
def _prepare_cifar100(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
    return prepare_cifar100(root, source=source, seed=seed, progress=progress)
