"""Precomputed image features for captioning: train on COCO bottom-up region features or grid features without images.

:meth:`FeatureStore.open` reads the layouts captioning codebases publish (self-critical.pytorch's
``cocobu_att`` folders, the X-LAN / up-down ``.h5`` and ``.npz`` files):

1. **A folder of per-image files** ``<image_id>.npz`` (self-critical.pytorch ``cocobu_att``: the
   array under ``feat``; ``x`` or ``features``, or the one array in the file, are read too) or
   ``<image_id>.npy`` (``cocobu_fc``)::

       cocobu_att/391895.npz   feat: (N, D) float32, e.g. (36, 2048)

2. **One HDF5 file** (``.h5`` / ``.hdf5``), either with one dataset per image, named
   ``str(image_id)``::

       /391895 (36, 2048)   /522418 (36, 2048)   ...

   or packed, with a ``features`` dataset of shape ``(num_images, N, D)`` and an ``image_ids``
   dataset ``(num_images,)`` (integers or strings). Padded region features give the valid rows
   of each image in ``num_boxes`` ``(num_images,)`` (the first ``num_boxes[i]`` rows) or ``mask``
   ``(num_images, N)`` (rows where it is non-zero); ``num_boxes`` wins when both are present.

3. **One** ``.npz`` **file** with ``features`` ``(num_images, N, D)`` and ``image_ids``
   ``(num_images,)``, optional ``num_boxes`` or ``mask`` as in 2.

An image's features are region features ``(N, D)`` or channel-last grid features ``(H, W, D)``,
which are flattened row-major to ``(H*W, D)`` regions; a single vector ``(D,)`` (``cocobu_fc``)
is one region ``(1, D)`` (packed: ``features`` ``(num_images, D)``). :meth:`FeatureStore.get`
always returns a float32 ``(N, D)`` copy.

Image ids are matched as strings: ``391895``, ``np.int64(391895)`` and ``"391895"`` are the same
id, but ``"000000391895"`` is not. Karpathy's ``dataset_coco.json`` has two ids per image:
features are saved under ``cocoid`` (what :func:`crossmedia.data.karpathy.read_karpathy`
reports as ``image_id``), not ``imgid``.

Nothing is read at open time beyond the id list, ``num_boxes`` and array shapes (a COCO file
holds 123,287 images); each :meth:`~FeatureStore.get` reads one image. HDF5 files are opened on
first access in each process, so a store pickles into DataLoader workers (and a handle inherited
by a forked worker is replaced). A packed ``.npz`` written with ``np.savez`` is memory-mapped;
one written with ``np.savez_compressed`` is decompressed whole on first access, once per process
(use ``np.savez`` or HDF5 for large sets).

Every format error is a :class:`FeatureFormatError` naming the file, the image or array and
the fix; a missing image id is a :class:`MissingFeaturesError` (also a ``KeyError``).
:func:`pad_features` collates a batch of ``(N_i, D)`` arrays into a padded tensor and a mask.
"""
from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

__all__ = [
    "FeatureFormatError",
    "MissingFeaturesError",
    "FeatureStore",
    "pad_features",
]

_ARRAY_KEYS: tuple[str, ...] = ("feat", "x", "features")  # per-image .npz keys, in order of preference
_H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_LAYOUTS = ("accepted layouts: (1) a folder of per-image <image_id>.npz files (array 'feat', 'x' or 'features', "
            "or a single array) or <image_id>.npy files, each (N, D) regions or (H, W, D) grid; "
            "(2) an .h5/.hdf5 file with one dataset per image named str(image_id), or a 'features' dataset "
            "(num_images, N, D) with an 'image_ids' dataset (num_images,) and optional 'num_boxes' (num_images,) "
            "or 'mask' (num_images, N); (3) an .npz file with 'features' (num_images, N, D) and 'image_ids' "
            "(num_images,), optional 'num_boxes' or 'mask'")
_ID_HINT = ("image ids are looked up as str(image_id), so 391895 and '391895' match but '000000391895' does not; "
            "check that the caption file's ids are the ones the features were saved under (for Karpathy's "
            "dataset_coco.json that is 'cocoid', not 'imgid')")
_SHOWN = 5  # how many ids an error lists


class FeatureFormatError(ValueError):
    """A feature file is malformed or has no layout we read; the message names the file, the array and the fix."""


class MissingFeaturesError(FeatureFormatError, KeyError):
    """An image id has no features in the store; the message names the file and the id(s)."""

    __str__ = ValueError.__str__  # KeyError would quote the whole message


# helpers


def _key(image_id: Any) -> str:
    """The string an image id is stored under: ``391895``, ``np.int64(391895)``, ``b"391895"`` -> ``"391895"``."""
    if isinstance(image_id, (bytes, bytearray)):
        image_id = bytes(image_id).decode("utf-8")
    elif not isinstance(image_id, (str, int)) and getattr(image_id, "ndim", None) == 0 and hasattr(image_id, "item"):
        image_id = image_id.item()  # numpy scalars, 0-d arrays and tensors
        if isinstance(image_id, bytes):
            image_id = image_id.decode("utf-8")
    if isinstance(image_id, float) and image_id.is_integer():
        image_id = int(image_id)
    return str(image_id)


def _sample(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOWN])
    return f"[{shown}{', ...' if len(ids) > _SHOWN else ''}]"


def _as_regions(array: Any, where: str) -> np.ndarray:
    """``array`` as a float32 ``(N, D)`` copy: ``(D,)`` -> ``(1, D)``, ``(H, W, D)`` -> ``(H*W, D)``."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise FeatureFormatError(f"{where}: features have dtype {array.dtype}; expected a float (or integer) array")
    if array.ndim == 1:
        array = array[None, :]
    elif array.ndim == 3:
        array = array.reshape(-1, array.shape[-1])
    elif array.ndim != 2:
        raise FeatureFormatError(f"{where}: features have shape {array.shape}; expected (N, D) region features, "
                                 f"(H, W, D) channel-last grid features or a (D,) vector")
    return np.array(array, dtype=np.float32)  # always a copy: never a view into a memmap or a cached array


def _load_npy_member(path: Path, name: str) -> np.ndarray:
    """One array of an ``.npz`` file; only that member is decompressed."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive[name]
    except ValueError as error:  # object arrays need pickle, which we refuse
        raise FeatureFormatError(f"{path}: array {name!r} cannot be read without pickle ({error}); store it as a "
                                 f"numeric or fixed-width string array (np.asarray(ids, dtype=str))") from error


def _npy_header(handle: Any) -> tuple[tuple[int, ...], bool, np.dtype] | None:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(handle)
    return None


def _npz_member_shape(path: Path, archive: zipfile.ZipFile, name: str) -> tuple[int, ...]:
    """The shape of ``name`` in an ``.npz`` from its ``.npy`` header, without reading the data."""
    with archive.open(name + ".npy") as member:
        header = _npy_header(member)
    if header is None:
        raise FeatureFormatError(f"{path}: array {name!r} has an .npy format version we cannot read; "
                                 f"write the file again with np.savez")
    return tuple(header[0])


def _npz_memmap(path: Path, name: str) -> np.memmap | None:
    """A read-only memory map of an uncompressed ``.npz`` member (``np.savez``); ``None`` when it cannot be mapped."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            return None
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        header = _npy_header(handle)
        offset = handle.tell()
    if header is None:
        return None
    shape, fortran_order, dtype = header
    if fortran_order or dtype.hasobject:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape))


def _check_ids(path: Path, ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for image_id in ids:
        if image_id in seen:
            raise FeatureFormatError(f"{path}: {what} repeats image id {image_id!r}; each image must appear once")
        seen.add(image_id)


def _valid_counts(path: Path, num_boxes: Any, num_images: int, rows: int) -> np.ndarray:
    """``num_boxes`` checked: one integer per image, each in ``0..rows``."""
    counts = np.asarray(num_boxes).reshape(-1)
    if counts.shape[0] != num_images:
        raise FeatureFormatError(f"{path}: 'num_boxes' has {counts.shape[0]} entries but 'features' has {num_images} "
                                 f"images; write one count per image")
    if counts.dtype.kind not in "iuf" or (counts.dtype.kind == "f" and not np.all(np.mod(counts, 1) == 0)):
        raise FeatureFormatError(f"{path}: 'num_boxes' must hold whole numbers, got dtype {counts.dtype}")
    counts = counts.astype(np.int64)
    bad = np.flatnonzero((counts < 0) | (counts > rows))
    if bad.size:
        raise FeatureFormatError(f"{path}: 'num_boxes'[{bad[0]}] is {counts[bad[0]]}, outside 0..{rows} (the padded "
                                 f"number of regions in 'features'); fix the counts")
    return counts


# stores


class FeatureStore:
    """Per-image features keyed by image id; open one with :meth:`FeatureStore.open`.

    ``len(store)`` is the number of images, ``image_id in store`` tests an id (matched as
    ``str(image_id)``), :meth:`get` reads one image as float32 ``(N, D)``, :attr:`dim` is ``D``,
    :meth:`check` raises naming the ids it lacks, :attr:`image_ids` lists the stored ids.
    ``layout`` is ``"folder"``, ``"h5"`` (one dataset per image), ``"h5-packed"`` or ``"npz-packed"``.
    """

    layout: str = ""

    def __init__(self, path: Path, ids: list[str]) -> None:
        self.path = path
        self._ids = ids
        self._index = {image_id: position for position, image_id in enumerate(ids)}
        self._dim: int | None = None
        self._handle: Any = None  # opened on first access in each process; never pickled
        self._handle_pid: int | None = None

    @classmethod
    def open(cls, path: str | Path) -> FeatureStore:
        """The store at ``path``: a folder of ``.npz``/``.npy`` files, an HDF5 file or a packed ``.npz`` file.

        Reads the id list and array shapes, not the features. Raises ``FileNotFoundError`` when
        ``path`` does not exist and :class:`FeatureFormatError` naming the path and the accepted
        layouts when it matches none.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"feature path {path} does not exist; {_LAYOUTS}")
        if path.is_dir():
            return _FolderStore.scan(path)
        if path.suffix.lower() in _H5_SUFFIXES or h5py.is_hdf5(path):
            return _open_h5(path)
        if path.suffix.lower() == ".npz":
            return _PackedNpzStore.scan(path)
        raise FeatureFormatError(f"{path}: not a feature file we read (neither a folder, an HDF5 file nor an .npz); "
                                 f"{_LAYOUTS}")

    # the mapping

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, image_id: object) -> bool:
        return _key(image_id) in self._index

    @property
    def image_ids(self) -> list[str]:
        """The stored image ids (strings), in file order (sorted file names for a folder)."""
        return list(self._ids)

    @property
    def dim(self) -> int:
        """``D``, the feature size of every region."""
        if self._dim is None:
            self._dim = self._read_dim()
        return self._dim

    def get(self, image_id: Any) -> np.ndarray:
        """The features of ``image_id`` as a float32 ``(N, D)`` array (grid features flattened, padding removed)."""
        key = _key(image_id)
        position = self._index.get(key)
        if position is None:
            raise MissingFeaturesError(self._missing_message(image_id, key))
        return self._read(key, position)

    def check(self, image_ids: Iterable[Any]) -> None:
        """Raise one :class:`MissingFeaturesError` naming the file, how many ids lack features and the first few."""
        wanted = list(dict.fromkeys(_key(image_id) for image_id in image_ids))
        missing = [key for key in wanted if key not in self._index]
        if missing:
            raise MissingFeaturesError(f"{self.path}: {len(missing)} of {len(wanted)} image ids have no features, "
                                       f"first {_sample(missing)}; the store has {len(self)} images, ids like "
                                       f"{_sample(self._ids)}; {_ID_HINT}")

    def close(self) -> None:
        """Close the open file handle, if any (the next :meth:`get` opens it again)."""
        if self._handle is not None and hasattr(self._handle, "close"):
            self._handle.close()
        self._handle, self._handle_pid = None, None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"], state["_handle_pid"] = None, None  # each worker opens its own
        return state

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, layout={self.layout!r}, images={len(self)})"

    # for the layouts

    def _missing_message(self, image_id: Any, key: str) -> str:
        return (f"{self.path}: no features for image id {image_id!r} (looked up as {key!r}); the store has "
                f"{len(self)} images, ids like {_sample(self._ids)}; {_ID_HINT}")

    def _opened(self) -> Any:
        """This process's handle (``_open_handle``), opened on first use and again in a forked child."""
        if self._handle is not None and self._handle_pid != os.getpid():
            try:  # inherited across fork: drop this process's copy so HDF5 opens the file afresh
                self._handle.close()
            except Exception:  # noqa: BLE001 - a broken inherited handle is discarded either way
                pass
            self._handle = None
        if self._handle is None:
            self._handle, self._handle_pid = self._open_handle(), os.getpid()
        return self._handle

    def _open_handle(self) -> Any:  # pragma: no cover - overridden by the layouts that keep a handle
        raise NotImplementedError

    def _read(self, key: str, position: int) -> np.ndarray:  # pragma: no cover - every layout overrides it
        raise NotImplementedError

    def _read_dim(self) -> int:
        if not self._ids:
            raise FeatureFormatError(f"{self.path}: the store holds no images, so it has no feature size")
        return int(self.get(self._ids[0]).shape[1])


class _FolderStore(FeatureStore):
    """A folder of ``<image_id>.npz`` / ``<image_id>.npy`` files."""

    layout = "folder"

    def __init__(self, path: Path, ids: list[str], files: list[str]) -> None:
        super().__init__(path, ids)
        self._files = files

    @classmethod
    def scan(cls, folder: Path) -> _FolderStore:
        found: dict[str, str] = {}
        others: list[str] = []
        with os.scandir(folder) as entries:
            for entry in entries:
                stem, suffix = os.path.splitext(entry.name)
                if suffix.lower() not in (".npz", ".npy") or not entry.is_file():
                    others.append(entry.name)
                    continue
                if stem in found:
                    raise FeatureFormatError(f"{folder}: image id {stem!r} has two files, {found[stem]} and "
                                             f"{entry.name}; keep one")
                found[stem] = entry.name
        if not found:
            seen = f"; it holds {_sample(sorted(others))}" if others else "; it is empty"
            raise FeatureFormatError(f"{folder}: no <image_id>.npz or <image_id>.npy files{seen}. Pass a feature "
                                     f"file itself rather than its folder; {_LAYOUTS}")
        ids = sorted(found)
        return cls(folder, ids, [found[i] for i in ids])

    def _missing_message(self, image_id: Any, key: str) -> str:
        return (f"{self.path}: no {key}.npz or {key}.npy for image id {image_id!r}; the folder has {len(self)} "
                f"images, ids like {_sample(self._ids)}; {_ID_HINT}")

    def _read(self, key: str, position: int) -> np.ndarray:
        file = self.path / self._files[position]
        where = f"{file} (image id {key!r})"
        try:
            if file.suffix.lower() == ".npy":
                array = np.load(file, allow_pickle=False)
            else:
                with np.load(file, allow_pickle=False) as archive:
                    names = list(archive.files)
                    name = next((n for n in _ARRAY_KEYS if n in names), names[0] if len(names) == 1 else None)
                    if name is None:
                        raise FeatureFormatError(f"{where}: holds arrays {names}; expected the features under "
                                                 f"'feat' (self-critical.pytorch cocobu_att), 'x' or 'features', "
                                                 f"or a file with a single array")
                    array = archive[name]
        except FeatureFormatError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise FeatureFormatError(f"{where}: cannot be read ({error}); the file is truncated or damaged: write "
                                     f"it again") from error
        return _as_regions(array, where)


def _open_h5(path: Path) -> FeatureStore:
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise FeatureFormatError(f"{path}: cannot be opened as HDF5 ({error}); the file is truncated or not HDF5; "
                                 f"{_LAYOUTS}") from error
    with handle:
        features = handle.get("features")
        if isinstance(features, h5py.Dataset) and (features.ndim in (3, 4) or "image_ids" in handle):
            return _PackedH5Store.scan(path, handle)
        return _H5Store.scan(path, handle)


class _H5Store(FeatureStore):
    """An HDF5 file with one dataset per image, named ``str(image_id)``."""

    layout = "h5"

    @classmethod
    def scan(cls, path: Path, handle: h5py.File) -> _H5Store:
        ids = list(handle.keys())  # names only: no data is read
        if not ids:
            raise FeatureFormatError(f"{path}: the HDF5 file is empty; {_LAYOUTS}")
        first = handle[ids[0]]
        if not isinstance(first, h5py.Dataset) or first.ndim not in (1, 2, 3):
            what = "a group" if isinstance(first, h5py.Group) else f"a dataset of shape {first.shape}"
            raise FeatureFormatError(f"{path}: member {ids[0]!r} is {what}, so this is not one dataset of features "
                                     f"per image (and there is no packed 'features' dataset); {_LAYOUTS}")
        store = cls(path, ids)
        store._dim = int(first.shape[-1])
        return store

    def _open_handle(self) -> h5py.File:
        return h5py.File(self.path, "r")

    def _read(self, key: str, position: int) -> np.ndarray:
        dataset = self._opened()[key]
        where = f"{self.path} dataset {key!r} (image id {key!r})"
        if not isinstance(dataset, h5py.Dataset):
            raise FeatureFormatError(f"{where}: is a group, not a dataset of features; {_LAYOUTS}")
        return _as_regions(dataset[()], where)


class _PackedStore(FeatureStore):
    """Features ``(num_images, N, D)`` with ``image_ids`` and optional ``num_boxes`` / ``mask``: the shared part."""

    def __init__(self, path: Path, ids: list[str], shape: tuple[int, ...], num_boxes: np.ndarray | None,
                 has_mask: bool) -> None:
        super().__init__(path, ids)
        self._shape = shape
        self._num_boxes = num_boxes
        self._has_mask = has_mask and num_boxes is None  # num_boxes wins when both are present
        self._dim = int(shape[-1])

    @staticmethod
    def _validate(path: Path, ids_raw: Any, shape: tuple[int, ...], mask_shape: tuple[int, ...] | None,
                  num_boxes: Any) -> tuple[list[str], np.ndarray | None]:
        ids = [_key(i) for i in np.asarray(ids_raw).reshape(-1)]
        if len(shape) not in (2, 3, 4):
            raise FeatureFormatError(f"{path}: 'features' has shape {shape}; expected (num_images, N, D), "
                                     f"(num_images, H, W, D) or (num_images, D) (one vector per image)")
        if len(ids) != shape[0]:
            raise FeatureFormatError(f"{path}: 'image_ids' has {len(ids)} entries but 'features' has {shape[0]} "
                                     f"images; write one id per image, in the order of 'features'")
        _check_ids(path, ids, "'image_ids'")
        rows = int(np.prod(shape[1:-1]))
        counts = _valid_counts(path, num_boxes, shape[0], rows) if num_boxes is not None else None
        if mask_shape is not None and counts is None and tuple(mask_shape) != (shape[0], rows):
            raise FeatureFormatError(f"{path}: 'mask' has shape {tuple(mask_shape)}; expected {(shape[0], rows)}, "
                                     f"one flag per image and region of 'features' (non-zero = a real region)")
        return ids, counts

    def _trim(self, rows: np.ndarray, key: str, position: int) -> np.ndarray:
        where = f"{self.path} 'features'[{position}] (image id {key!r})"
        regions = _as_regions(rows, where)
        if self._num_boxes is not None:
            return regions[: self._num_boxes[position]]
        if self._has_mask:
            return regions[np.asarray(self._mask_row(position)).reshape(-1).astype(bool)]
        return regions

    def _mask_row(self, position: int) -> np.ndarray:  # pragma: no cover - every packed layout overrides it
        raise NotImplementedError


class _PackedH5Store(_PackedStore):
    """An HDF5 file with ``features`` ``(num_images, N, D)`` and ``image_ids``."""

    layout = "h5-packed"

    @classmethod
    def scan(cls, path: Path, handle: h5py.File) -> _PackedH5Store:
        if not isinstance(handle.get("image_ids"), h5py.Dataset):
            raise FeatureFormatError(f"{path}: has a packed 'features' dataset {handle['features'].shape} but no "
                                     f"'image_ids' dataset naming the image of each row; add one (num_images,)")
        num_boxes = handle["num_boxes"][()] if isinstance(handle.get("num_boxes"), h5py.Dataset) else None
        mask = handle.get("mask")
        mask_shape = mask.shape if isinstance(mask, h5py.Dataset) else None
        shape = tuple(handle["features"].shape)
        ids, counts = cls._validate(path, handle["image_ids"][()], shape, mask_shape, num_boxes)
        return cls(path, ids, shape, counts, mask_shape is not None)

    def _open_handle(self) -> h5py.File:
        return h5py.File(self.path, "r")

    def _read(self, key: str, position: int) -> np.ndarray:
        features = self._opened()["features"]
        if self._num_boxes is not None and len(self._shape) == 3:
            rows = features[position, : self._num_boxes[position]]  # read only the valid rows
        else:
            rows = features[position]
        return self._trim(rows, key, position)

    def _mask_row(self, position: int) -> np.ndarray:
        return self._opened()["mask"][position]


class _PackedNpzStore(_PackedStore):
    """An ``.npz`` file with ``features`` ``(num_images, N, D)`` and ``image_ids``."""

    layout = "npz-packed"

    @classmethod
    def scan(cls, path: Path) -> _PackedNpzStore:
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
                if "features" not in names or "image_ids" not in names:
                    single = (" It looks like one image's file: pass the folder that holds the per-image files."
                              if any(n in names for n in _ARRAY_KEYS) or len(names) == 1 else "")
                    raise FeatureFormatError(f"{path}: holds arrays {names}, not 'features' and 'image_ids'.{single} "
                                             f"{_LAYOUTS}")
                shape = _npz_member_shape(path, archive, "features")
                mask_shape = _npz_member_shape(path, archive, "mask") if "mask" in names else None
        except zipfile.BadZipFile as error:
            raise FeatureFormatError(f"{path}: not a valid .npz (zip) file ({error}); the file is truncated or "
                                     f"damaged: write it again") from error
        num_boxes = _load_npy_member(path, "num_boxes") if "num_boxes" in names else None
        ids, counts = cls._validate(path, _load_npy_member(path, "image_ids"), shape, mask_shape, num_boxes)
        return cls(path, ids, shape, counts, mask_shape is not None)

    def _open_handle(self) -> dict[str, np.ndarray]:
        features = _npz_memmap(self.path, "features")
        if features is None:  # compressed: decompress once per process
            features = _load_npy_member(self.path, "features")
        arrays = {"features": features}
        if self._has_mask:
            arrays["mask"] = _load_npy_member(self.path, "mask")
        return arrays

    def _read(self, key: str, position: int) -> np.ndarray:
        return self._trim(self._opened()["features"][position], key, position)

    def _mask_row(self, position: int) -> np.ndarray:
        return self._opened()["mask"][position]


# collate


def pad_features(arrays: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of ``(N_i, D)`` feature arrays as ``(B, N_max, D)`` float32 zeros-padded and a ``(B, N_max)`` bool mask.

    ``mask[b, n]`` is True where row ``n`` of item ``b`` is a real region. An item with no
    regions gets an all-False mask row. Raises ``ValueError`` naming the item whose shape differs.
    """
    if len(arrays) == 0:
        raise ValueError("pad_features got an empty batch; pass at least one (N, D) array")
    shapes = [tuple(a.shape) for a in arrays]
    for index, shape in enumerate(shapes):
        if len(shape) != 2:
            raise ValueError(f"pad_features: item {index} has shape {shape}; expected (N, D) (FeatureStore.get "
                             f"returns that)")
        if shape[1] != shapes[0][1]:
            raise ValueError(f"pad_features: item {index} has D={shape[1]} but item 0 has D={shapes[0][1]}; "
                             f"all items must come from the same features")
    lengths = [shape[0] for shape in shapes]
    padded = torch.zeros(len(arrays), max(lengths), shapes[0][1], dtype=torch.float32)
    mask = torch.zeros(len(arrays), max(lengths), dtype=torch.bool)
    for index, (array, length) in enumerate(zip(arrays, lengths)):
        if isinstance(array, torch.Tensor):
            padded[index, :length] = array.detach().to(device="cpu", dtype=torch.float32)
        else:
            padded.numpy()[index, :length] = array  # numpy copy: no read-only-array warning, any float dtype
        mask[index, :length] = True
    return padded, mask
