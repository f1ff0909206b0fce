"""Dataset preparers: turn a built-in generator or a local download into our layout under data/.

Every dataset folder ends up in the DeepHash list layout (see :mod:`crossmedia.data.deephash`):
``train.txt``, ``query.txt``, ``database.txt`` and ``meta.json``. Preparers register themselves
with :func:`register_dataset`; :func:`prepare` is the front door, :func:`ensure` the lazy one used
by DataModules. Real datasets are read from a folder the user downloaded; nothing is fetched and
nothing is unpickled.
"""
from __future__ import annotations

import difflib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from crossmedia.core.paths import data_root
from crossmedia.data.builtin.clips import CLIPS_CLASS_NAMES, make_clips
from crossmedia.data.builtin.digits import DIGITS_CLASS_NAMES, make_digits
from crossmedia.data.builtin.shapes import SHAPES_CLASS_NAMES, make_shapes
from crossmedia.data.deephash import (SPLITS, is_complete, list_file_for, read_list, read_meta,
                                      stratified_split, write_list, write_meta)

__all__ = [
    "DatasetInfo",
    "UnknownDatasetError",
    "DatasetNotPreparedError",
    "register_dataset",
    "list_datasets",
    "prepare",
    "ensure",
    "read_cifar10_binary",
    "prepare_cifar10",
    "prepare_deephash_release",
    "prepare_karpathy_release",
]

Preparer = Callable[..., Path]  # (root, *, source, seed, progress) -> root


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about a dataset before it is on disk."""

    name: str
    kind: str  # "image" | "video" | "caption"
    builtin: bool
    summary: str
    num_classes: int | None = None
    source_layout: str = ""  # for real datasets: what --source must point at


class UnknownDatasetError(LookupError):
    """No dataset is registered under that name; the message lists the known ones."""


class DatasetNotPreparedError(FileNotFoundError):
    """A real dataset is not under data/ yet; the message says how to prepare it."""


_REGISTRY: dict[str, tuple[DatasetInfo, Preparer]] = {}


def register_dataset(name: str, *, kind: str, builtin: bool, summary: str, num_classes: int | None = None,
                     source_layout: str = "") -> Callable[[Preparer], Preparer]:
    """Decorator registering ``fn(root, *, source, seed, progress) -> Path`` as the preparer of ``name``."""
    if kind not in ("image", "video", "caption"):
        raise ValueError(f"dataset {name!r}: kind must be 'image', 'video' or 'caption', got {kind!r}")

    def decorator(fn: Preparer) -> Preparer:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = (DatasetInfo(name, kind, builtin, summary, num_classes, source_layout), fn)
        return fn

    return decorator


def list_datasets() -> dict[str, DatasetInfo]:
    """Every registered dataset by name, sorted."""
    return {name: _REGISTRY[name][0] for name in sorted(_REGISTRY)}


def _lookup(name: str) -> tuple[DatasetInfo, Preparer]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.4)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownDatasetError(f"unknown dataset {name!r}.{hint} Known datasets: {', '.join(sorted(_REGISTRY))}")


def prepare(name: str, *, source: Path | None = None, root: Path | None = None, seed: int = 0,
            progress: bool = True) -> Path:
    """Prepare dataset ``name`` into ``root`` (default ``data_root()/name``) and return that folder.

    Built-in datasets are generated from ``seed`` and take no ``source``; real ones are read from
    the local download ``source``. A complete copy already in ``root`` is kept as it is.
    """
    info, preparer = _lookup(name)
    root = Path(root) if root is not None else data_root() / name
    if info.builtin and source is not None:
        raise ValueError(f"{name!r} is built in (generated from a seed); it takes no source folder")
    if not info.builtin and source is None:
        raise ValueError(f"{name!r} is read from a local download: pass source=DIR "
                         f"(crossmedia data prepare {name} --source DIR), DIR being {info.source_layout}")
    return preparer(root, source=None if source is None else Path(source), seed=seed, progress=progress)


def ensure(name: str, root: Path | None = None, *, progress: bool = True) -> Path:
    """The dataset folder of ``name``, generating a built-in dataset the first time it is needed.

    A folder that already holds the three list files is used as it is (so any DeepHash-style folder
    works with an unregistered name); a missing real dataset raises :class:`DatasetNotPreparedError`.
    """
    root = Path(root) if root is not None else data_root() / name
    meta = read_meta(root)
    if meta is None and all(list_file_for(root, split).is_file() for split in SPLITS):
        return root  # a hand-made folder without meta.json
    info, _ = _lookup(name)
    if info.builtin:
        seed = meta["seed"] if meta and meta.get("name") == name and "seed" in meta else 0
        return prepare(name, root=root, seed=seed, progress=progress)
    if meta is not None and is_complete(root, name=name):
        return root
    if meta and meta.get("name") == name and karpathy_ready(root, meta):
        return root
    raise DatasetNotPreparedError(
        f"dataset {name!r} is not prepared under {root}. Download it yourself (crossmedia never "
        f"fetches data), then run: crossmedia data prepare {name} --source DIR   (DIR: {info.source_layout})")


# built-in datasets


@register_dataset("digits", kind="image", builtin=True, num_classes=len(DIGITS_CLASS_NAMES),
                  summary="1,797 real 8x8 handwritten digits (scikit-learn), 10 classes, one-hot")
def _prepare_digits(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    return make_digits(root, seed=seed, progress=progress)


@register_dataset("shapes", kind="image", builtin=True, num_classes=len(SHAPES_CLASS_NAMES),
                  summary="3,000 generated 32x32 images with 1-3 coloured shapes, 8 classes, multi-label")
def _prepare_shapes(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    return make_shapes(root, seed=seed, progress=progress)


@register_dataset("clips", kind="video", builtin=True, num_classes=len(CLIPS_CLASS_NAMES),
                  summary="800 generated 8-frame 32x32 clips, 10 classes = shape x motion")
def _prepare_clips(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    return make_clips(root, seed=seed, progress=progress)


# CIFAR-10 (binary version)

_CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR10_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
_CIFAR10_RECORD = 1 + 3 * 32 * 32  # label byte + CHW pixels
_CIFAR10_BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-10 binary version)"


def _cifar10_folder(source: Path) -> Path:
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"CIFAR-10 source folder {source} does not exist")
    if (source / "cifar-10-batches-bin").is_dir():
        source = source / "cifar-10-batches-bin"
    pickled = [source / "data_batch_1", source / "batches.meta", source / "cifar-10-batches-py"]
    if not (source / "data_batch_1.bin").exists() and any(p.exists() for p in pickled):
        raise ValueError(
            f"{source} holds the CIFAR-10 *python* version (pickled batches); crossmedia never unpickles "
            f"data files. Download the binary version from {_CIFAR10_BINARY_URL}, extract it and pass "
            f"the cifar-10-batches-bin folder as --source")
    missing = [name for name in _CIFAR10_FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{source} is not a CIFAR-10 binary folder: missing {', '.join(missing)} "
                                f"(expected {', '.join(_CIFAR10_FILES)})")
    return source


def read_cifar10_binary(source: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images (N, 32, 32, 3) uint8, labels (N,) and class names from a CIFAR-10 binary folder.

    Rows follow ``data_batch_1.bin`` .. ``data_batch_5.bin`` then ``test_batch.bin``.
    """
    folder = _cifar10_folder(source)
    images, labels = [], []
    for name in _CIFAR10_FILES:
        raw = np.fromfile(folder / name, dtype=np.uint8)
        if raw.size == 0 or raw.size % _CIFAR10_RECORD:
            raise ValueError(f"{folder / name}: {raw.size} bytes is not a whole number of {_CIFAR10_RECORD}-byte "
                             f"records (1 label byte + 3072 pixel bytes); the file is truncated or not CIFAR-10 binary")
        records = raw.reshape(-1, _CIFAR10_RECORD)
        bad = np.flatnonzero(records[:, 0] >= len(_CIFAR10_CLASS_NAMES))
        if bad.size:
            raise ValueError(f"{folder / name}: record {bad[0]} has label byte {records[bad[0], 0]}, "
                             f"expected 0..9; the file is not CIFAR-10 binary")
        labels.append(records[:, 0].astype(np.int64))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # (n, 32, 32, 3)
    names_file = folder / "batches.meta.txt"
    class_names = _CIFAR10_CLASS_NAMES
    if names_file.is_file():
        listed = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
        class_names = listed if len(listed) == len(_CIFAR10_CLASS_NAMES) else class_names
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
    if is_complete(root, name="cifar10", seed=seed, **protocol):
        return root
    images, labels, class_names = read_cifar10_binary(source)
    splits = stratified_split(labels, query_per_class=query_per_class, train_per_class=train_per_class, seed=seed)
    (root / "meta.json").unlink(missing_ok=True)
    (root / "images").mkdir(parents=True, exist_ok=True)
    paths = [f"images/{index:05d}.png" for index in range(len(images))]
    for index in tqdm(range(len(images)), desc="cifar10: writing PNGs", disable=not progress):
        Image.fromarray(images[index]).save(root / paths[index])
    one_hot = np.eye(len(class_names), dtype=np.uint8)[labels]
    for split in SPLITS:
        write_list(list_file_for(root, split), [(paths[i], one_hot[i]) for i in splits[split]])
    write_meta(root, {"name": "cifar10", "kind": "image", "num_classes": len(class_names),
                      "class_names": list(class_names), "seed": seed, **protocol,
                      "counts": {split: int(len(splits[split])) for split in SPLITS},
                      "source": str(Path(source).resolve())})
    return root


@register_dataset("cifar10", kind="image", builtin=False, num_classes=10,
                  summary="CIFAR-10, DeepHash-pytorch cifar10-1 protocol: query 1,000 / train 5,000 / database 59,000",
                  source_layout="the extracted cifar-10-batches-bin folder (data_batch_1.bin .. test_batch.bin)")
def _prepare_cifar10(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
    return prepare_cifar10(root, source=source, seed=seed, progress=progress)


# DeepHash-pytorch / HashNet releases (NUS-WIDE, COCO, ImageNet-100)

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
        captions = next((caption_name for caption_name, (json_name, _) in _KARPATHY_RELEASES.items()
                         if (source / json_name).is_file()), None)
        hint = (f" ({source} holds a Karpathy caption split file: for captioning, run "
                f"`crossmedia data prepare {captions} --source {source}`)") if captions else ""
        raise FileNotFoundError(f"{source} is missing {', '.join(missing)}; expected {_RELEASE_LAYOUT}{hint}")
    if is_complete(root, name=name, source=str(source)):
        return root
    lists = {split: read_list(source / f, root=source, num_classes=num_classes, progress=progress)
             for split, f in _RELEASE_LISTS.items()}
    (root / "meta.json").unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    prefix = _link_images(root / "images", source)
    for split, items in lists.items():
        write_list(list_file_for(root, split),
                   [(path if os.path.isabs(path) else prefix + path, labels) for path, labels in items])
    write_meta(root, {"name": name, "kind": "image", "num_classes": num_classes, "class_names": None,
                      "counts": {split: len(items) for split, items in lists.items()}, "source": str(source)})
    return root


def _link_images(link: Path, source: Path) -> str:
    """Point ``link`` at ``source``; returns the prefix list paths need (``images/`` or ``<source>/``)."""
    if link.is_symlink() and link.resolve() == source:
        return "images/"
    if link.is_symlink():
        link.unlink()
    if not link.exists():
        try:
            link.symlink_to(source, target_is_directory=True)
            return "images/"
        except OSError:
            pass
    return source.as_posix() + "/"


def _release_preparer(name: str, num_classes: int) -> Preparer:
    def preparer(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
        return prepare_deephash_release(root, source=source, name=name, num_classes=num_classes, progress=progress)

    return preparer


for _name, _classes, _what in (("nuswide", 21, "NUS-WIDE, 21 most frequent concepts"),
                               ("coco", 80, "MS-COCO 2014, 80 categories"),
                               ("imagenet100", 100, "ImageNet-100 (HashNet subset)")):
    register_dataset(_name, kind="image", builtin=False, num_classes=_classes, source_layout=_RELEASE_LAYOUT,
                     summary=f"{_what}, multi-hot, DeepHash-pytorch lists")(_release_preparer(_name, _classes))


# caption datasets: Karpathy split files (the built-in scenes and real downloads)


@register_dataset("scenes", kind="caption", builtin=True,
                  summary="6,000 generated 64x64 scenes of 1-3 shapes, 5 captions each, Karpathy JSON")
def _prepare_scenes(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    from crossmedia.data.builtin.scenes import make_scenes  # captions are not needed to list datasets

    return make_scenes(root, seed=seed, progress=progress)


_KARPATHY_RELEASES = {  # name -> (split file, folders of --source the images may sit under)
    "coco-captions": ("dataset_coco.json", ("", "images", "coco")),
    "flickr30k": ("dataset_flickr30k.json", ("", "flickr30k-images", "flickr30k_images", "images")),
}
_KARPATHY_LAYOUTS = {
    "coco-captions": "a folder with dataset_coco.json (Karpathy's caption_datasets.zip) and the train2014/ and "
                     "val2014/ image folders (directly or under images/)",
    "flickr30k": "a folder with dataset_flickr30k.json (Karpathy's caption_datasets.zip) and the Flickr30k images "
                 "(directly or under flickr30k-images/)",
}


def karpathy_ready(root: Path, meta: dict) -> bool:
    """``meta`` (of ``root``) describes a prepared caption folder whose Karpathy split file is there."""
    return meta.get("format") == "karpathy" and (root / meta["file"]).is_file()


def prepare_karpathy_release(root: Path, *, source: Path, name: str, progress: bool = True) -> Path:
    """Check a Karpathy split file and its images, and point ``root`` at them.

    Every entry of the split file is validated (:func:`crossmedia.data.karpathy.read_karpathy`)
    and every image's header read before anything is written. Images are not copied:
    ``root/images`` is a symbolic link to ``source`` (where a link cannot be made, ``meta.json``
    holds absolute paths into ``source`` instead) and ``meta.json`` names the split file and the
    image folder, as :func:`crossmedia.data.karpathy.read_caption_folder` expects.
    """
    from crossmedia.data.karpathy import read_karpathy, verify_images  # not needed to list datasets

    json_name, image_dirs = _KARPATHY_RELEASES[name]
    root, source = Path(root), Path(source).resolve()
    if not source.is_dir():
        raise FileNotFoundError(f"{name} source folder {source} does not exist")
    json_path = source / json_name
    if not json_path.is_file():
        raise FileNotFoundError(f"{source} has no {json_name}; expected {_KARPATHY_LAYOUTS[name]}")
    expected = {"name": name, "source": str(source), "size": json_path.stat().st_size}
    meta = read_meta(root)
    if meta and all(meta.get(k) == v for k, v in expected.items()) and karpathy_ready(root, meta):
        return root
    records = read_karpathy(json_path, image_root=source)
    first = records[0].path.relative_to(source)
    image_dir = next((d for d in image_dirs if (source / d / first).is_file()), None)
    if image_dir is None:
        looked = ", ".join(str(source / d / first) for d in image_dirs)
        raise FileNotFoundError(f"{name}: cannot find the images of {json_name}: looked for its first image at "
                                f"{looked}; expected {_KARPATHY_LAYOUTS[name]}")
    records = [replace(r, path=source / image_dir / r.path.relative_to(source)) for r in records]
    verify_images(records, progress=progress)
    (root / "meta.json").unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    prefix = _link_images(root / "images", source)
    counts = Counter(record.split for record in records)
    write_meta(root, {**expected, "kind": "caption", "format": "karpathy", "file": prefix + json_name,
                      "image_root": prefix + image_dir, "num_images": len(records),
                      "counts": {split: counts[split] for split in ("train", "val", "test")}})
    return root


def _karpathy_preparer(name: str) -> Preparer:
    def preparer(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
        return prepare_karpathy_release(root, source=source, name=name, progress=progress)

    return preparer


for _name, _what in (("coco-captions", "MS-COCO 2014 captions, Karpathy split: train 113,287 / val 5,000 / test 5,000"),
                     ("flickr30k", "Flickr30k captions, Karpathy split: train 29,000 / val 1,014 / test 1,000")):
    register_dataset(_name, kind="caption", builtin=False, source_layout=_KARPATHY_LAYOUTS[_name],
                     summary=f"{_what}, 5 captions per image")(_karpathy_preparer(_name))


# datasets registered by their own modules (they import register_dataset from here)
import crossmedia.data.builtin.videosumm  # noqa: E402,F401  summe/tvsum built-ins and eccv16 files
