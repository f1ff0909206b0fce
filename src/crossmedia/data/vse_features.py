"""VSE++'s precomputed-feature layout (``--data_name *_precomp``: ``coco_precomp``, ``f30k_precomp``, ``f8k_precomp``).

One folder per dataset, two files per split::

    coco_precomp/train_ims.npy     (rows, D) float image features (e.g. 4096-d VGG fc7)
    coco_precomp/train_caps.txt    one caption per line, 5 per image, in image order
    coco_precomp/dev_ims.npy  dev_caps.txt  test_ims.npy  test_caps.txt
    coco_precomp/testall_ims.npy  testall_caps.txt    COCO only: the 5,000 test images

Splits are ``train``, ``dev`` (validation), ``test`` and, for COCO, ``testall`` (5,000 images,
scored whole as COCO 5K or as five folds of 1,000 as COCO 1K). Line ``i`` of ``{split}_caps.txt``
is caption ``i``; it belongs to image ``i // 5``. Two row layouts of ``{split}_ims.npy`` exist and,
as VSE++'s ``PrecompDataset`` does, the row count tells them apart:

- **one row per image** (rows = captions / 5, the usual release): caption ``i`` is paired with
  row ``i // 5`` (VSE++'s ``im_div`` = 5);
- **one row per caption** (rows = captions, e.g. 10-crop features): caption ``i`` is paired with
  row ``i`` (``im_div`` = 1); VSE++'s evaluation then takes row ``5 * j`` as image ``j``.

VSE++ picks ``im_div`` = 5 whenever rows != captions without checking further; here any other
row count, and a caption count that is not a multiple of 5, is an error. VSE++ validates on the
first 5,000 dev captions only (1,000 images):
``read_vse_precomp(root, "dev", max_captions=VSEPP_DEV_CAPTIONS)`` gives that set.

Captions are lines with the surrounding whitespace stripped, as VSE++ reads them, decoded as
UTF-8. A blank line is an error (VSE++ would keep it as an empty caption; a stray blank line moves
every later caption onto the wrong image). :meth:`VsePrecompSplit.tokens`
tokenises with :func:`crossmedia.data.karpathy.tokenize` (lower-case, ASCII punctuation deleted,
split on whitespace). VSE++ lower-cases and applies nltk's ``word_tokenize``, which keeps
punctuation as tokens and splits contractions: ``"A man's bike."`` is ``[a, man, 's, bike, .]``
there and ``[a, mans, bike]`` here. Vocabularies built from our tokens therefore differ from
VSE++'s ``vocab/*.pkl`` (which we never load: they are pickles).

Arrays are read with ``np.load(allow_pickle=False)``; files over :data:`MMAP_BYTES` are
memory-mapped when they already hold float32. A pickled ``.npy`` (object dtype, or a pickle
saved under a ``.npy`` name) is refused. Every error is a
:class:`~crossmedia.data.features.FeatureFormatError` naming the file and what is wrong.

:func:`looks_like_vse_precomp` recognises such a folder by its file names.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossmedia.data.features import FeatureFormatError
from crossmedia.data.karpathy import tokenize

__all__ = [
    "VSE_SPLITS",
    "CAPTIONS_PER_IMAGE",
    "VSEPP_DEV_CAPTIONS",
    "MMAP_BYTES",
    "VsePrecompSplit",
    "load_npy",
    "float_matrix",
    "load_float_matrix",
    "list_folder",
    "read_vse_precomp",
    "vse_precomp_splits",
    "looks_like_vse_precomp",
]

VSE_SPLITS = ("train", "dev", "test", "testall")
CAPTIONS_PER_IMAGE = 5
VSEPP_DEV_CAPTIONS = 5000  # VSE++'s PrecompDataset cuts the dev split to its first 5,000 captions
MMAP_BYTES = 64 * 2**20


@dataclass(frozen=True)
class VsePrecompSplit:
    """One split: ``images`` (N, D) float32, one row per image; ``captions`` (5N strings);
    ``caption_image`` (5N,) int64, the image index of each caption (``i // 5``); ``im_div`` the
    row layout of the file (5: one row per image, 1: one row per caption, of which ``images``
    keeps every fifth)."""

    split: str
    images: np.ndarray
    captions: list[str]
    caption_image: np.ndarray
    im_div: int

    def tokens(self) -> list[list[str]]:
        """Each caption tokenised with :func:`crossmedia.data.karpathy.tokenize` (see the module docstring)."""
        return [tokenize(caption) for caption in self.captions]


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    with path.open("rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        except ValueError as error:
            raise FeatureFormatError(
                f"{path}: not a NumPy .npy file ({error}); a pickle saved under a .npy name is refused (we never "
                f"unpickle): save the array with np.save(path, np.asarray(features, dtype=np.float32))") from error
    return shape, dtype


def load_npy(path: str | Path, what: str = "array") -> np.ndarray:
    """A ``.npy`` file read with ``allow_pickle=False`` (memory-mapped when float32 and over :data:`MMAP_BYTES`).

    Refuses, naming ``path``: a missing file, a file that is not ``.npy`` (e.g. a pickle under a
    ``.npy`` name) and an object array (which needs pickle).
    """
    path = Path(path)
    if not path.is_file():
        raise FeatureFormatError(f"{path}: file not found ({what})")
    _, dtype = _npy_header(path)
    if dtype.hasobject:
        raise FeatureFormatError(f"{path}: array of Python objects ({dtype}), which needs pickle and is refused; "
                                 f"save the {what} as a numeric array: np.save(path, np.asarray(x, dtype=np.float32))")
    big = path.stat().st_size > MMAP_BYTES and dtype == np.dtype(np.float32)
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if big else None)
    except ValueError as error:
        raise FeatureFormatError(f"{path}: cannot read the {what} without pickle ({error})") from error


def float_matrix(path: str | Path, array: np.ndarray, what: str) -> np.ndarray:
    """``array`` (read from ``path``) as float32 (N, D); a non-float dtype or a shape that is not 2-D is an error."""
    if array.dtype.kind != "f":
        raise FeatureFormatError(f"{path}: {what} have dtype {array.dtype}, expected float (float16/32/64); "
                                 f"convert with np.save(path, x.astype(np.float32))")
    if array.ndim != 2:
        raise FeatureFormatError(f"{path}: {what} have shape {array.shape}, expected 2-D (rows, D)")
    return array if array.dtype == np.float32 else array.astype(np.float32)


def load_float_matrix(path: str | Path, what: str = "features") -> np.ndarray:
    """A 2-D float ``.npy`` array as float32: :func:`load_npy` then :func:`float_matrix`."""
    return float_matrix(path, load_npy(path, what), what)


def _read_captions(path: Path) -> list[str]:
    if not path.is_file():
        raise FeatureFormatError(f"{path}: file not found (captions)")
    captions = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                caption = raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                raise FeatureFormatError(f"{path}: line {number} is not UTF-8 ({error}); re-save the file as UTF-8") \
                    from error
            if not caption:
                raise FeatureFormatError(f"{path}: line {number} is blank; every line is one caption, 5 per image "
                                         f"(delete the blank line)")
            captions.append(caption)
    return captions


def list_folder(root: Path) -> str:
    """The names in ``root`` (the first 20, then the count) for error messages; ``nothing`` when empty or absent."""
    names = sorted(path.name for path in root.iterdir()) if root.is_dir() else []
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    return shown or "nothing"


def vse_precomp_splits(root: str | Path) -> list[str]:
    """The splits of :data:`VSE_SPLITS` whose ``_ims.npy`` and ``_caps.txt`` are both in ``root``."""
    root = Path(root)
    return [split for split in VSE_SPLITS
            if (root / f"{split}_ims.npy").is_file() and (root / f"{split}_caps.txt").is_file()]


def looks_like_vse_precomp(root: str | Path) -> bool:
    """True when ``root`` holds at least one split's ``{split}_ims.npy`` and ``{split}_caps.txt`` (names only)."""
    return Path(root).is_dir() and bool(vse_precomp_splits(root))


def read_vse_precomp(root: str | Path, split: str, *, max_captions: int | None = None) -> VsePrecompSplit:
    """Read ``{split}_ims.npy`` and ``{split}_caps.txt`` from ``root``.

    ``max_captions`` keeps the first captions only (a multiple of 5; :data:`VSEPP_DEV_CAPTIONS` for
    VSE++'s validation set) and the images they belong to. Errors name the file: a missing split
    (listing what the folder holds), a caption count that is not a multiple of 5 or does not match
    the rows of the image file, and the array errors of :func:`load_float_matrix`.
    """
    root = Path(root)
    if split not in VSE_SPLITS:
        raise ValueError(f"unknown VSE++ split {split!r}; the layout's splits are {', '.join(VSE_SPLITS)}")
    ims, caps = root / f"{split}_ims.npy", root / f"{split}_caps.txt"
    missing = [path.name for path in (ims, caps) if not path.is_file()]
    if missing:
        raise FeatureFormatError(f"{root}: no {' or '.join(missing)} for split {split!r}; the folder holds "
                                 f"{list_folder(root)} (splits found: {', '.join(vse_precomp_splits(root)) or 'none'})")
    captions = _read_captions(caps)
    if len(captions) % CAPTIONS_PER_IMAGE:
        raise FeatureFormatError(f"{caps}: {len(captions)} captions, not a multiple of {CAPTIONS_PER_IMAGE} "
                                 f"(the layout has {CAPTIONS_PER_IMAGE} lines per image)")
    images = load_float_matrix(ims, "image features")
    num_images = len(captions) // CAPTIONS_PER_IMAGE
    if images.shape[0] == num_images:
        im_div = CAPTIONS_PER_IMAGE
    elif images.shape[0] == len(captions):
        im_div = 1
        images = images[::CAPTIONS_PER_IMAGE]
    else:
        raise FeatureFormatError(f"{ims}: {images.shape[0]} rows, but {caps.name} has {len(captions)} captions; "
                                 f"expected {num_images} rows (one per image) or {len(captions)} (one per caption)")
    if max_captions is not None:
        if max_captions <= 0 or max_captions % CAPTIONS_PER_IMAGE:
            raise ValueError(f"max_captions={max_captions} should be a positive multiple of {CAPTIONS_PER_IMAGE}")
        captions = captions[:max_captions]
        images = images[:len(captions) // CAPTIONS_PER_IMAGE]
    caption_image = np.arange(len(captions), dtype=np.int64) // CAPTIONS_PER_IMAGE
    return VsePrecompSplit(split=split, images=images, captions=captions, caption_image=caption_image, im_div=im_div)
