"""Label-based cross-modal features (Wikipedia, Pascal Sentence, NUS-WIDE-10k) as ACMR and its successors read them.

Each dataset is a set of image-text pairs with one class label per pair, given as precomputed
features: image features (4096-d VGG fc7 in ACMR's demo) and text features (5000-d for Wikipedia,
1000-d bag of words for NUS-WIDE there), with a train and a test split (and an optional ``val``).
Pair ``i`` of a split is row ``i`` of each of its three arrays. Two published layouts are read
from a folder:

1. **ACMR's names as** ``.npy`` (``sunpeng981712364/ACMR_demo``, ``data/wikipedia_dataset``)::

       train_img_feats.npy (N, Di) float   train_txt_vecs.npy (N, Dt) float   train_labels.npy
       test_img_feats.npy  test_txt_vecs.npy  test_labels.npy

   ACMR ships these as Python 2 **pickles** (``*.pkl``), which we never load (unpickling runs
   code). A folder holding only the pickles is recognised and refused with the conversion script
   (:data:`PICKLE_CONVERSION`), run once by the user on files they trust. Its NUS-WIDE files are
   pickled dicts keyed by id (``img_train_id_feats.pkl``, ``train_id_bow.pkl``,
   ``train_id_label_map.pkl`` one-hot, ``train_ids.pkl``); the same script writes them in
   ``train_ids`` order under the names above.

2. **MATLAB files**, as ``load_data.py`` of DSCMR (``penghu-cs/DSCMR``) reads its Wikipedia /
   Pascal Sentence / NUS-WIDE features, one variable per file named as the file::

       train_img.mat  {train_img: (N, Di)}   train_txt.mat  {train_txt: (N, Dt)}
       train_img_lab.mat  {train_img_lab: (N, 1) class ids}   and the same with test_

   read with :func:`scipy.io.loadmat` (which unpickles nothing; sparse matrices are densified).
   MATLAB v7.3 files (HDF5) are refused with how to re-save them.

Labels are returned as 0-based class ids ``(N,)`` int64. A labels array is either class ids
(``(N,)``, ``(N, 1)`` or ``(1, N)``, integers or whole floats) or one-hot rows ``(N, C)``. Class
ids are 1-based in ACMR's Wikipedia pickles (its training code subtracts 1) and 0-based in
DSCMR's ``.mat`` files (its ``ind2vec`` one-hot encodes them so): ``label_base`` defaults to 1
for layout 1 and 0 for layout 2; pass it to override. A multi-hot row is an error: the label mAP
here counts one class per pair.

Every error is a :class:`~crossmedia.data.features.FeatureFormatError` naming the file: a missing
file (listing what the folder holds), a pickled or non-2-D or non-float feature array, row counts
that differ between the three files of a split, feature widths that differ between splits, and
labels that are neither class ids nor one-hot.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossmedia.data.features import FeatureFormatError
from crossmedia.data.vse_features import float_matrix, list_folder, load_npy

__all__ = [
    "ACMR_SPLITS",
    "PICKLE_CONVERSION",
    "LabelledPairs",
    "acmr_layout",
    "looks_like_acmr_features",
    "read_acmr_features",
    "class_ids",
]

ACMR_SPLITS = ("train", "val", "test")  # val is optional
_NPY = ("{split}_img_feats.npy", "{split}_txt_vecs.npy", "{split}_labels.npy")
_MAT = ("{split}_img.mat", "{split}_txt.mat", "{split}_img_lab.mat")
_PICKLES = ("train_img_feats.pkl", "img_train_id_feats.pkl")

PICKLE_CONVERSION = """\
# Run once, in the folder, on files you trust (unpickling runs code); needs Python 3 and numpy.
import os, pickle, numpy as np
load = lambda name: pickle.load(open(name, "rb"), encoding="latin1")
for s in ("train", "test"):
    if os.path.exists(f"{s}_img_feats.pkl"):   # Wikipedia: arrays in pair order, labels 1-based
        for n in ("img_feats", "txt_vecs", "labels"): np.save(f"{s}_{n}.npy", np.asarray(load(f"{s}_{n}.pkl")))
    else:                                       # NUS-WIDE: dicts keyed by id, one-hot labels
        ids = list(load(f"{s}_ids.pkl"))
        for src, n in ((f"img_{s}_id_feats", "img_feats"), (f"{s}_id_bow", "txt_vecs"),
                       (f"{s}_id_label_map", "labels")):
            d = load(src + ".pkl"); np.save(f"{s}_{n}.npy", np.asarray([d[i] for i in ids]))
"""


@dataclass(frozen=True)
class LabelledPairs:
    """One split: ``images`` (N, Di) float32, ``texts`` (N, Dt) float32, ``labels`` (N,) int64
    0-based class ids; pair ``i`` is row ``i`` of each. ``files`` are the three files read."""

    split: str
    images: np.ndarray
    texts: np.ndarray
    labels: np.ndarray
    files: tuple[Path, Path, Path]


def _has(root: Path, names: tuple[str, ...], split: str) -> bool:
    return all((root / name.format(split=split)).is_file() for name in names)


def acmr_layout(root: str | Path) -> str | None:
    """``"npy"`` or ``"mat"`` (the readable layouts), ``"pickle"`` (ACMR's pickles only) or None, by file names."""
    root = Path(root)
    if not root.is_dir():
        return None
    if _has(root, _NPY, "train"):
        return "npy"
    if _has(root, _MAT, "train"):
        return "mat"
    if any((root / name).is_file() for name in _PICKLES):
        return "pickle"
    return None


def looks_like_acmr_features(root: str | Path) -> bool:
    """True when ``root`` holds a train split in a layout (ACMR's pickles too, which the reader refuses)."""
    return acmr_layout(root) is not None


def _load_mat(path: Path, what: str) -> np.ndarray:
    from scipy.io import loadmat  # scipy is a dependency; imported here to keep `import crossmedia.data` light
    from scipy.sparse import issparse

    try:
        mat = loadmat(path)
    except NotImplementedError as error:  # MATLAB v7.3 is HDF5
        raise FeatureFormatError(f"{path}: a MATLAB v7.3 (HDF5) file, which loadmat cannot read; re-save it in "
                                 f"MATLAB with save(name, var, '-v7') or write the array as .npy") from error
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError ... on damaged files
        raise FeatureFormatError(f"{path}: not a readable MATLAB file ({error}); download or extract it again") \
            from error
    name = path.stem
    if name not in mat:
        found = ", ".join(key for key in mat if not key.startswith("__")) or "none"
        raise FeatureFormatError(f"{path}: no variable {name!r} ({what}); the file holds {found}")
    value = mat[name]
    if issparse(value):
        value = value.toarray()
    value = np.asarray(value)
    if value.dtype.hasobject:
        raise FeatureFormatError(f"{path}: variable {name!r} is a cell or struct array, expected a numeric matrix")
    return value


def class_ids(path: str | Path, labels: np.ndarray, rows: int, base: int) -> np.ndarray:
    """0-based class ids (rows,) int64 from class ids (1-D, a column or a row, starting at ``base``) or one-hot rows.

    Errors name ``path``: a row count other than ``rows``, non-whole or negative ids, multi-hot rows.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biuf":
        raise FeatureFormatError(f"{path}: labels have dtype {labels.dtype}, expected integer class ids or one-hot")
    if labels.ndim == 2 and 1 in labels.shape and labels.size == rows and (rows > 1 or labels.shape[1] == 1):
        labels = labels.reshape(-1)
    if labels.shape[0] != rows or labels.ndim not in (1, 2):
        raise FeatureFormatError(f"{path}: labels have shape {labels.shape}, expected {rows} class ids or {rows} "
                                 f"one-hot rows (one per pair)")
    if labels.ndim == 2:
        if not np.isin(labels, (0, 1)).all():
            raise FeatureFormatError(f"{path}: labels of shape {labels.shape} are not one-hot (values other than "
                                     f"0 and 1)")
        counts = labels.sum(axis=1)
        bad = np.flatnonzero(counts != 1)
        if bad.size:
            raise FeatureFormatError(f"{path}: row {bad[0]} has {int(counts[bad[0]])} classes set ({bad.size} such "
                                     f"rows); expected exactly one per pair")
        return labels.argmax(axis=1).astype(np.int64)
    if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
        raise FeatureFormatError(f"{path}: class ids are not whole numbers")
    ids = labels.astype(np.int64) - base
    if ids.size and ids.min() < 0:
        raise FeatureFormatError(f"{path}: class id {int(ids.min()) + base} below {base}, the first class id of this "
                                 f"layout; pass label_base={int(ids.min()) + base} if your ids start there")
    return ids


def _read_split(root: Path, layout: str, split: str, base: int) -> LabelledPairs:
    names = _NPY if layout == "npy" else _MAT
    files = tuple(root / name.format(split=split) for name in names)
    missing = [path.name for path in files if not path.is_file()]
    if missing:
        raise FeatureFormatError(f"{root}: no {', '.join(missing)} for split {split!r}; the folder holds "
                                 f"{list_folder(root)}")
    load = load_npy if layout == "npy" else _load_mat
    images = float_matrix(files[0], load(files[0], "image features"), "image features")
    texts = float_matrix(files[1], load(files[1], "text features"), "text features")
    if texts.shape[0] != images.shape[0]:
        raise FeatureFormatError(f"{files[1]}: {texts.shape[0]} rows, but {files[0].name} has {images.shape[0]}; "
                                 f"pair i is row i of both")
    labels = class_ids(files[2], load(files[2], "labels"), images.shape[0], base)
    return LabelledPairs(split, images, texts, labels, files)  # type: ignore[arg-type]


def read_acmr_features(root: str | Path, *, label_base: int | None = None) -> dict[str, LabelledPairs]:
    """Every split (train, test, and val when present) of the folder ``root`` as :class:`LabelledPairs`.

    ``label_base`` is the first class id in the files (default: 1 for ACMR's names, 0 for ``.mat``).
    A folder with ACMR's pickles only is refused with :data:`PICKLE_CONVERSION`; see the module
    docstring for the other errors.
    """
    root = Path(root)
    layout = acmr_layout(root)
    if layout is None:
        listing = list_folder(root) if root.is_dir() else "nothing (not a folder)"
        raise FeatureFormatError(f"{root}: no cross-modal feature files; expected train_img_feats.npy, "
                                 f"train_txt_vecs.npy, train_labels.npy (or train_img.mat, train_txt.mat, "
                                 f"train_img_lab.mat) and the same for test; the folder holds {listing}")
    if layout == "pickle":
        raise FeatureFormatError(f"{root}: ACMR's pickled features (*.pkl), which we never unpickle; convert them "
                                 f"once to .npy with this script, then read the folder again:\n{PICKLE_CONVERSION}")
    base = (1 if layout == "npy" else 0) if label_base is None else label_base
    names = _NPY if layout == "npy" else _MAT
    splits = {split: _read_split(root, layout, split, base) for split in ACMR_SPLITS
              if split != "val" or any((root / name.format(split=split)).is_file() for name in names)}
    train = splits["train"]
    for pairs in splits.values():
        for array, reference, what in ((pairs.images, train.images, 0), (pairs.texts, train.texts, 1)):
            if array.shape[1] != reference.shape[1]:
                raise FeatureFormatError(f"{pairs.files[what]}: {array.shape[1]} columns, but "
                                         f"{train.files[what].name} has {reference.shape[1]}; every split needs "
                                         f"the same feature width")
    return splits
