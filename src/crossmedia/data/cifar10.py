"""CIFAR-10 (the binary version) read into the DeepHash list layout with DeepHash-pytorch's protocol.

The download is the folder ``cifar-10-batches-bin`` of https://www.cs.toronto.edu/~kriz/cifar.html:
``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``, each a run of 3,073-byte
records (one label byte, then 32x32 pixels as R, G and B planes). The *python* version (pickled
batches) is refused: nothing here unpickles anything.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from crossmedia.data.deephash import lists_complete, write_single_label_lists
from crossmedia.data.folder import DatasetFolder
from crossmedia.data.registry import register_dataset

__all__ = ["CIFAR10_CLASS_NAMES", "read_cifar10_binary", "prepare_cifar10", "cifar10_ready"]

CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
_RECORD = 1 + 3 * 32 * 32  # label byte + CHW pixels
_BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-10 binary version)"
_LAYOUT = "the extracted cifar-10-batches-bin folder (data_batch_1.bin .. test_batch.bin)"


# helpers


def _binary_folder(source: Path) -> Path:
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"CIFAR-10 source folder {source} does not exist")
    if (source / "cifar-10-batches-bin").is_dir():
        source = source / "cifar-10-batches-bin"
    pickled = [source / "data_batch_1", source / "batches.meta", source / "cifar-10-batches-py"]
    if not (source / "data_batch_1.bin").exists() and any(p.exists() for p in pickled):
        raise ValueError(
            f"{source} holds the CIFAR-10 *python* version (pickled batches); crossmedia never unpickles "
            f"data files. Download the binary version from {_BINARY_URL}, extract it and pass "
            f"the cifar-10-batches-bin folder as --source")
    missing = [name for name in _FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{source} is not a CIFAR-10 binary folder: missing {', '.join(missing)} "
                                f"(expected {', '.join(_FILES)})")
    return source


# functions


def read_cifar10_binary(source: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images (N, 32, 32, 3) uint8, labels (N,) and class names from a CIFAR-10 binary folder.

    Rows follow ``data_batch_1.bin`` .. ``data_batch_5.bin`` then ``test_batch.bin``.
    """
    folder = _binary_folder(source)
    images, labels = [], []
    for name in _FILES:
        raw = np.fromfile(folder / name, dtype=np.uint8)
        if raw.size == 0 or raw.size % _RECORD:
            raise ValueError(f"{folder / name}: {raw.size} bytes is not a whole number of {_RECORD}-byte "
                             f"records (1 label byte + 3072 pixel bytes); the file is truncated or not CIFAR-10 binary")
        records = raw.reshape(-1, _RECORD)  # (n, 3073)
        bad = np.flatnonzero(records[:, 0] >= len(CIFAR10_CLASS_NAMES))
        if bad.size:
            raise ValueError(f"{folder / name}: record {bad[0]} has label byte {records[bad[0], 0]}, "
                             f"expected 0..9; the file is not CIFAR-10 binary")
        labels.append(records[:, 0].astype(np.int64))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # (n, 32, 32, 3)
    names_file = folder / "batches.meta.txt"
    class_names = CIFAR10_CLASS_NAMES
    if names_file.is_file():
        listed = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
        class_names = listed if len(listed) == len(CIFAR10_CLASS_NAMES) else class_names
    return np.concatenate(images), np.concatenate(labels), class_names


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
        (root / "images").mkdir(exist_ok=True)
        paths = [f"images/{index:05d}.png" for index in range(len(images))]
        for index in tqdm(range(len(images)), desc="cifar10: writing PNGs", disable=not progress):
            Image.fromarray(images[index]).save(root / paths[index])
        counts = write_single_label_lists(root, paths=paths, classes=labels, num_classes=len(class_names),
                                          query_per_class=query_per_class, train_per_class=train_per_class, seed=seed)
        meta.update({"name": "cifar10", "kind": "image", "num_classes": len(class_names),
                     "class_names": list(class_names), "seed": seed, **protocol,
                     "counts": counts,
                     "source": str(Path(source).resolve())})
    return root


def cifar10_ready(root: Path) -> bool:
    """``root`` holds a complete CIFAR-10 folder written by :func:`prepare_cifar10` (any seed or protocol size)."""
    return DatasetFolder(root, {"name": "cifar10"}, complete=lists_complete).ready()


@register_dataset("cifar10", kind="image", builtin=False, num_classes=10, ready=cifar10_ready, source_layout=_LAYOUT,
                  summary="CIFAR-10, DeepHash-pytorch cifar10-1 protocol: query 1,000 / train 5,000 / database 59,000")
def _prepare_cifar10(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
    return prepare_cifar10(root, source=source, seed=seed, progress=progress)
