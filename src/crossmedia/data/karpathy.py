"""Caption datasets in their published formats: the Karpathy split files and COCO caption annotations.

The Karpathy split file (``dataset_coco.json``, ``dataset_flickr30k.json``; our built-in
``dataset_scenes.json`` too) is one JSON object::

    {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg", "split": "restval",
         "imgid": 0, "cocoid": 391895, "sentids": [0, 1, 2, 3, 4],
         "sentences": [{"tokens": ["a", "man", "riding", "a", "bike"], "raw": "A man riding a bike.", ...}, ...]},
        ...]}

``filename``, ``split`` and ``sentences`` (each with ``tokens``) are required; ``filepath`` is
absent in the Flickr30k file. ``restval`` (the 30,504 COCO val2014 images outside the 5,000 val
and 5,000 test images) is training data in every paper that uses the split, so the reader reports
it as ``train``: Karpathy's COCO split is then train 113,287 / val 5,000 / test 5,000.

COCO's own ``captions_train2014.json`` (``images[]`` with ``id`` and ``file_name``,
``annotations[]`` with ``image_id`` and ``caption``) holds raw sentences only; :func:`tokenize`
turns them into tokens with the rule captioning code applies to them: lowercase, delete every
ASCII punctuation character, split on whitespace (``"A man's T-shirt."`` -> ``["a", "mans",
"tshirt"]``). Karpathy's tokens follow nearly the same rule; possessives and hyphens may differ.

A user's folder is read in place, under any file names, and never written to
(:func:`read_caption_folder`). It holds either one Karpathy split file or COCO caption files:

- **COCO caption files** are the ``*.json`` directly in the folder (not ``meta.json``) that are
  objects with ``images`` and annotations naming ``image_id`` and ``caption``
  (:func:`find_coco_caption_files`; the official files list ``annotations`` last, so the first and
  the last 64 kB of a file are looked at). Each file's split is the word of its name that says
  ``train``, ``val`` or ``test`` (also ``training``, ``valid``, ``validation``, ``testing``; words
  are the runs between non-alphanumerics, a trailing number allowed: ``captions_train2014.json``
  -> train, ``my_val_caps.json`` -> val). Every file needs exactly one such word, one file per
  split, a train file and a val or test file (:func:`coco_caption_files`).
- A file's images are under the first of ``root``, ``root/images``, ``root/<word>``,
  ``root/images/<word>`` (``<word>`` being the split word of its name with its number:
  ``captions_train2014.json`` -> ``train2014/``, COCO's own folder) that holds its first
  ``file_name``.
- COCO has no test split of its own. Without a test file, **test is a seeded half of the val
  file's images** (seed 0, ceil(n/2) of them, drawn after sorting by ``image_id``) and val is the
  other half, so that a checkpoint is never chosen on the images it is tested on; the records'
  ``split`` says which is which. To test on all of val, add a test file (a link to the val
  file will do).
- A folder holding both a Karpathy file and COCO files is read from the Karpathy file, the usual
  captioning split; the COCO files are ignored (``crossmedia data check`` names them).

Every format error is a :class:`CaptionFormatError` naming the file, the entry and the field.
The readers never open images (a COCO split has 123,287); :func:`verify_images` does.
:func:`prepare_karpathy_release` checks a downloaded split file and its images and points a
dataset folder at them (``crossmedia data prepare coco-captions|flickr30k --source DIR``).
"""
from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from crossmedia.data.folder import DatasetFolder, link_source, read_meta
from crossmedia.data.registry import Preparer, Ready, ensure, register_dataset, register_folder_format

__all__ = [
    "KARPATHY_SPLITS",
    "CaptionFormatError",
    "CaptionedImage",
    "tokenize",
    "read_karpathy",
    "read_coco_captions",
    "read_caption_folder",
    "find_karpathy_file",
    "find_coco_caption_files",
    "coco_caption_files",
    "read_coco_folder",
    "caption_folder_files",
    "verify_images",
    "Vocabulary",
    "KARPATHY_RELEASES",
    "caption_release_in",
    "karpathy_ready",
    "prepare_karpathy_release",
]

KARPATHY_SPLITS: tuple[str, ...] = ("train", "restval", "val", "test")
_READ_AS = {"restval": "train"}  # restval is training data (see the module docstring)
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_COCO_HINT = ("a COCO caption file has images[] with 'id' and 'file_name' and annotations[] with 'image_id' and "
              "'caption'")
_SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "test": "test", "testing": "test"}
_NAMING_HINT = ("name each COCO caption file with its split as a word: captions_train2014.json, my_val_caps.json, "
                "coco-test.json (train, val or test, also training, valid, validation, testing)")
COCO_TEST_SEED = 0  # the draw of test from val when a COCO folder has no test file
_FORMAT_HINT = ("each image needs 'filename', 'split' and 'sentences' (a list of {'tokens': [...], 'raw': ...}), "
                "as in Karpathy's dataset_coco.json; fix the entry or re-extract the file")


class CaptionFormatError(ValueError):
    """A caption file (or an image it names) is malformed; the message names the file, entry and field."""


@dataclass(frozen=True)
class CaptionedImage:
    """One image and its reference captions.

    ``captions`` are token lists (lowercase words, no punctuation), ``raw`` the sentences as
    written, aligned with ``captions``. ``split`` is ``train``, ``val`` or ``test``.
    """

    path: Path
    split: str
    captions: list[list[str]]
    raw: list[str]
    image_id: int | str


# helpers


def tokenize(caption: str) -> list[str]:
    """Lowercase, delete ASCII punctuation, split on whitespace: ``"A dog, running."`` -> ``[a, dog, running]``."""
    return caption.lower().translate(_PUNCTUATION).split()


def _load_json(json_path: Path) -> Any:
    if not json_path.is_file():
        raise FileNotFoundError(f"caption file {json_path} does not exist")
    try:
        return json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CaptionFormatError(f"{json_path}: not valid JSON ({error}); the file is truncated or damaged: "
                                 f"download, extract or write it again") from error


def _list_field(json_path: Path, data: Any, field: str, what: str) -> list[Any]:
    if not isinstance(data, dict) or not isinstance(data.get(field), list):
        raise CaptionFormatError(f"{json_path}: expected a JSON object with a list {field!r} at the top level "
                                 f"({what})")
    return data[field]


def _field(json_path: Path, where: str, entry: Any, field: str, kind: type | tuple[type, ...], hint: str) -> Any:
    """``entry[field]`` checked to be of type ``kind``; the error names file, entry and field."""
    if not isinstance(entry, dict) or field not in entry:
        raise CaptionFormatError(f"{json_path}: {where} has no {field!r} field; {hint}")
    value = entry[field]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CaptionFormatError(f"{json_path}: {where} field {field!r} is {value!r}, not of type "
                                 f"{getattr(kind, '__name__', kind)}; {hint}")
    return value


def _karpathy_tokens(json_path: Path, where: str, sentence: Any) -> list[str]:
    tokens = _field(json_path, where, sentence, "tokens", list, _FORMAT_HINT)
    if not tokens or not all(isinstance(token, str) and token for token in tokens):
        raise CaptionFormatError(f"{json_path}: {where} field 'tokens' must be a non-empty list of words, "
                                 f"got {tokens!r}; {_FORMAT_HINT}")
    return tokens


def _karpathy_image(json_path: Path, index: int, entry: Any, image_root: Path) -> CaptionedImage:
    where = f"images[{index}]"
    filename = _field(json_path, where, entry, "filename", str, _FORMAT_HINT)
    where = f"images[{index}] ({filename})"
    split = _field(json_path, where, entry, "split", str, _FORMAT_HINT)
    if split not in KARPATHY_SPLITS:
        raise CaptionFormatError(f"{json_path}: {where} has split {split!r}; allowed splits are "
                                 f"{', '.join(KARPATHY_SPLITS)} (restval is read as train)")
    sentences = _field(json_path, where, entry, "sentences", list, _FORMAT_HINT)
    if not sentences:
        raise CaptionFormatError(f"{json_path}: {where} has an empty 'sentences' list; {_FORMAT_HINT}")
    captions = [_karpathy_tokens(json_path, f"{where} sentences[{j}]", s) for j, s in enumerate(sentences)]
    raw = [s["raw"] if isinstance(s.get("raw"), str) else " ".join(tokens) for s, tokens in zip(sentences, captions)]
    image_id = entry.get("cocoid", entry.get("imgid", Path(filename).stem))
    return CaptionedImage(path=image_root / entry.get("filepath", "") / filename, split=_READ_AS.get(split, split),
                          captions=captions, raw=raw, image_id=image_id)


# functions


def read_karpathy(json_path: str | Path, image_root: str | Path | None = None) -> list[CaptionedImage]:
    """Every image of a Karpathy split file, in file order; ``restval`` is reported as ``train``.

    An image's path is ``image_root / filepath / filename`` (``filepath`` may be absent);
    ``image_root`` defaults to the JSON file's folder. ``image_id`` is ``cocoid`` when present,
    else ``imgid``, else the file name's stem. Raises :class:`CaptionFormatError` naming the file,
    the image index and the field on any malformed entry.
    """
    json_path = Path(json_path)
    image_root = Path(image_root) if image_root is not None else json_path.parent
    images = _list_field(json_path, _load_json(json_path), "images", "a Karpathy split file")
    if not images:
        raise CaptionFormatError(f"{json_path}: 'images' is empty; {_FORMAT_HINT}")
    return [_karpathy_image(json_path, index, entry, image_root) for index, entry in enumerate(images)]


def read_coco_captions(json_path: str | Path, image_root: str | Path, split: str) -> list[CaptionedImage]:
    """Every image of a COCO caption annotation file (``captions_train2014.json``), tokenised by :func:`tokenize`.

    Images come in the file's order with their captions in annotation order; each path is
    ``image_root / file_name`` and every image is labelled ``split`` (``train`` | ``val`` | ``test``).
    An image without a caption, or a caption naming an unknown image, is an error.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}; expected train, val or test")
    json_path, image_root = Path(json_path), Path(image_root)
    data = _load_json(json_path)
    hint = _COCO_HINT
    images = _list_field(json_path, data, "images", hint)
    annotations = _list_field(json_path, data, "annotations", hint)
    found: dict[int, tuple[str, list[str]]] = {}
    for index, entry in enumerate(images):
        image_id = _field(json_path, f"images[{index}]", entry, "id", int, hint)
        if image_id in found:
            raise CaptionFormatError(f"{json_path}: images[{index}] repeats id {image_id}; image ids must be unique")
        found[image_id] = (_field(json_path, f"images[{index}]", entry, "file_name", str, hint), [])
    for index, entry in enumerate(annotations):
        image_id = _field(json_path, f"annotations[{index}]", entry, "image_id", int, hint)
        caption = _field(json_path, f"annotations[{index}]", entry, "caption", str, hint)
        if image_id not in found:
            raise CaptionFormatError(f"{json_path}: annotations[{index}] names image_id {image_id}, which is not "
                                     f"in images[]; {hint}")
        if not tokenize(caption):
            raise CaptionFormatError(f"{json_path}: annotations[{index}] field 'caption' {caption!r} has no words")
        found[image_id][1].append(caption)
    records = []
    for index, (image_id, (file_name, raw)) in enumerate(found.items()):
        if not raw:
            raise CaptionFormatError(f"{json_path}: images[{index}] ({file_name}, id {image_id}) has no caption in "
                                     f"annotations[]; remove the image or add its captions")
        records.append(CaptionedImage(path=image_root / file_name, split=split,
                                      captions=[tokenize(r) for r in raw], raw=raw, image_id=image_id))
    return records


def find_karpathy_file(root: str | Path) -> Path | None:
    """The one Karpathy split file directly in ``root`` (a user's folder, any file name), or None.

    A ``*.json`` counts when it is an object whose ``images`` list starts with an entry that has
    ``filename`` and ``sentences`` (only the start is checked here; :func:`read_karpathy` checks
    all). Two or more such files raise :class:`CaptionFormatError` naming them.
    """
    found = []
    for path in sorted(Path(root).glob("*.json")):
        if path.name == "meta.json":
            continue
        try:
            with path.open(encoding="utf-8") as handle:
                head = handle.read(1 << 16)
        except (OSError, UnicodeDecodeError):
            continue
        start = head.lstrip()
        if start.startswith("{") and '"images"' in head and '"sentences"' in head and '"filename"' in head:
            found.append(path)
    if len(found) > 1:
        raise CaptionFormatError(f"{root} holds several Karpathy split files ({', '.join(p.name for p in found)}); "
                                 f"keep the one to train on in the folder, or give each its own folder")
    return found[0] if found else None


def _head_and_tail(path: Path, size: int = 1 << 16) -> str:
    """The first and the last ``size`` bytes of ``path`` as text ('' when it cannot be read)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(size)
            end = handle.seek(0, 2)
            handle.seek(max(size, end - size))
            tail = handle.read()
    except OSError:
        return ""
    return (head + tail).decode("utf-8", errors="replace")


def find_coco_caption_files(root: str | Path) -> list[Path]:
    """The COCO caption annotation files directly in ``root`` (any names, ``meta.json`` skipped), sorted.

    A ``*.json`` counts when it starts as an object and its first and last 64 kB name ``images``,
    ``image_id`` and ``caption``: COCO's own files list ``images`` first and ``annotations`` last,
    so in a large file the ``annotations`` key itself sits in the middle, unread; COCO instance
    and keypoint files have no ``caption``. Only these signs are checked here;
    :func:`read_coco_captions` checks every entry. Never raises for a file it cannot read.
    """
    found = []
    for path in sorted(Path(root).glob("*.json")):
        if path.name == "meta.json" or not path.is_file():
            continue
        text = _head_and_tail(path)
        if text.lstrip().startswith("{") and all(f'"{key}"' in text for key in ("images", "image_id", "caption")):
            found.append(path)
    return found


def _split_words(path: Path) -> list[tuple[str, str]]:
    """(split, word) for each word of ``path``'s stem naming a split: ``captions_train2014`` -> [(train, train2014)]."""
    named = []
    for word in re.split(r"[^a-z0-9]+", path.stem.lower()):
        letters = re.fullmatch(r"([a-z]+)[0-9]*", word)
        if letters and letters.group(1) in _SPLIT_WORDS:
            named.append((_SPLIT_WORDS[letters.group(1)], word))
    return named


def coco_caption_files(root: str | Path) -> dict[str, tuple[Path, str]]:
    """``{split: (file, split word)}`` of the COCO caption files in ``root`` (:func:`find_coco_caption_files`),
    in the order train, val, test; the split and the word come from the file's name (the module docstring).

    Raises :class:`CaptionFormatError` naming the files when a name says no split or several, when
    two files claim one split, or when there is no train file or neither a val nor a test file;
    :class:`FileNotFoundError` when there is no COCO caption file at all.
    """
    root = Path(root)
    files = find_coco_caption_files(root)
    if not files:
        raise FileNotFoundError(f"{root} holds no COCO caption file (*.json with {_COCO_HINT})")
    splits_named = {path: sorted({split for split, _ in _split_words(path)}) for path in files}
    unclear = [f"{path.name} ({' and '.join(named) or 'no split'})" for path, named in splits_named.items()
               if len(named) != 1]
    if unclear:
        raise CaptionFormatError(f"{root}: cannot tell the split of COCO caption file(s) {'; '.join(unclear)} from "
                                 f"the name; {_NAMING_HINT}")
    by_split: dict[str, list[Path]] = {}
    for path in files:
        by_split.setdefault(_split_words(path)[0][0], []).append(path)
    for split, paths in by_split.items():
        if len(paths) > 1:
            raise CaptionFormatError(f"{root}: COCO caption files {', '.join(p.name for p in paths)} all name split "
                                     f"{split!r}; keep one {split} file in the folder (or give each its own folder) "
                                     f"and {_NAMING_HINT}")
    if "train" not in by_split or not {"val", "test"} & by_split.keys():
        found = ", ".join(f"{paths[0].name} ({split})" for split, paths in by_split.items())
        raise CaptionFormatError(f"{root}: the COCO caption files found ({found}) need a train file and a val or "
                                 f"test file; {_NAMING_HINT}")
    return {split: (by_split[split][0], _split_words(by_split[split][0])[0][1])
            for split in ("train", "val", "test") if split in by_split}


def _coco_image_root(root: Path, json_path: Path, word: str, first: Path, missing_ok: bool) -> Path:
    """The first of root, root/images, root/<word>, root/images/<word> holding ``first`` (module docstring)."""
    candidates = list(dict.fromkeys([root, root / "images", root / word, root / "images" / word]))
    found = next((c for c in candidates if (c / first).is_file()), None)
    if found is not None:
        return found
    if missing_ok:  # the most specific folder there, so that the missing files can be listed
        return next((c for c in reversed(candidates) if c.is_dir()), root)
    looked = ", ".join(str(c / first) for c in candidates)
    raise FileNotFoundError(f"{json_path}: cannot find its first image ({first}); looked at {looked}. Put the images "
                            f"next to the annotation file, under images/, or under {word}/ (the split word of the "
                            f"file's name)")


def read_coco_folder(root: str | Path, *, missing_ok: bool = False) -> list[CaptionedImage]:
    """Every image of a user's folder of COCO caption files (:func:`coco_caption_files`), read in place.

    Train records come first, then val, then test, each in its file's order. Without a test file,
    a seeded half of the val file's images is labelled ``test`` (see the module docstring). Paths
    are ``image_root / file_name`` with each file's image root found from its first image;
    ``missing_ok`` (for reports) takes the most specific candidate folder there instead of raising
    :class:`FileNotFoundError` when no candidate holds that image. Errors name the file and field.
    """
    root = Path(root)
    records: list[CaptionedImage] = []
    files = coco_caption_files(root)
    for split, (json_path, word) in files.items():
        found = read_coco_captions(json_path, Path(), split)
        if not found:
            raise CaptionFormatError(f"{json_path}: 'images' is empty; {_COCO_HINT}")
        image_root = _coco_image_root(root, json_path, word, found[0].path, missing_ok)
        records += [replace(record, path=image_root / record.path) for record in found]
    if "test" not in files:
        val = sorted((i for i, r in enumerate(records) if r.split == "val"), key=lambda i: records[i].image_id)
        drawn = np.random.default_rng(COCO_TEST_SEED).permutation(len(val))[:(len(val) + 1) // 2]
        test = {val[j] for j in drawn.tolist()}
        records = [replace(r, split="test") if i in test else r for i, r in enumerate(records)]
    return records


def _coco_folder(root: Path) -> bool:
    """``root`` is a user's folder read as COCO caption files: no meta.json, no Karpathy file, a COCO file."""
    return (root.is_dir() and read_meta(root) is None and find_karpathy_file(root) is None
            and bool(find_coco_caption_files(root)))


def caption_folder_files(root: str | Path) -> tuple[Path, Path]:
    """(Karpathy file, image root) of a caption folder: a prepared one (``meta.json``) or a user's.

    A user's folder needs no renaming and no prepare step: its one Karpathy file (any name, see
    :func:`find_karpathy_file`) is read, and the image root is the first of ``root``,
    ``root/images`` under which the first entry's ``filepath/filename`` exists.
    """
    root = Path(root)
    meta = read_meta(root)
    if meta is not None and meta.get("format") == "karpathy":
        return root / meta["file"], root / meta["image_root"]
    json_path = find_karpathy_file(root) if root.is_dir() else None
    if json_path is None and root.is_dir() and (coco := find_coco_caption_files(root)):
        raise FileNotFoundError(f"{root} holds COCO caption files ({', '.join(p.name for p in coco)}), not a "
                                f"Karpathy split file: read it with read_caption_folder")
    if json_path is None:
        raise FileNotFoundError(f"{root} is not a caption dataset folder: it has neither a meta.json with format "
                                f"'karpathy' (crossmedia data prepare NAME) nor a Karpathy split file (*.json with "
                                f"images[] of filename + sentences) nor COCO caption files ({_COCO_HINT}, the split "
                                f"in each file's name); {_FORMAT_HINT}")
    first = read_karpathy(json_path)[0].path.relative_to(json_path.parent)
    candidates = [root, root / "images"]
    image_root = next((c for c in candidates if (c / first).is_file()), None)
    if image_root is None:
        looked = ", ".join(str(c / first) for c in candidates)
        raise FileNotFoundError(f"{json_path}: cannot find its first image; looked at {looked}. Put the images next "
                                f"to the JSON (or under images/), with the entries' filepath/filename")
    return json_path, image_root


def read_caption_folder(root: str | Path) -> list[CaptionedImage]:
    """The images of a caption dataset folder: a prepared one (``crossmedia data prepare``, via its
    ``meta.json``, which names the Karpathy file ``file`` and the image folder ``image_root``,
    relative to ``root`` unless absolute) or a user's folder with one Karpathy file of any name
    (:func:`caption_folder_files`) or, failing that, COCO caption files of any names
    (:func:`read_coco_folder`: the split in each file's name; test is a seeded half of val when
    there is no test file). :func:`crossmedia.data.caption_folders.read_caption_folder` reads
    Reed et al.'s text-to-image layout too."""
    if _coco_folder(Path(root)):
        return read_coco_folder(root)
    json_path, image_root = caption_folder_files(root)
    return read_karpathy(json_path, image_root=image_root)


def ensure_caption_folder(root: str | Path, dataset: str) -> Path:
    """``root`` when it already holds a caption dataset (a Karpathy file + meta.json: a real dataset
    or a smaller built-in copy; or a user's folder with a Karpathy file or COCO caption files of
    any names, read in place and never written to: their errors come when they are read;
    :func:`crossmedia.data.caption_folders.ensure_caption_folder` takes Reed et al.'s layout too);
    otherwise the registry prepares ``dataset`` there (built-ins are generated, never into a
    folder holding other files)."""
    root = Path(root)
    meta = read_meta(root)
    if meta is not None and karpathy_ready(root, meta):
        return root
    if meta is None and root.is_dir() and (find_karpathy_file(root) is not None or find_coco_caption_files(root)):
        return root
    return ensure(dataset, root)


def objects_by_filename(root: str | Path) -> dict[str, Any]:
    """``{filename: objects}`` of a prepared caption folder's Karpathy file: the ground-truth
    ``objects`` the built-in scenes carry per image (None for an entry without them; {} when the
    file is missing)."""
    try:
        path = caption_folder_files(root)[0]
    except (FileNotFoundError, CaptionFormatError):
        return {}
    entries = json.loads(path.read_text(encoding="utf-8")).get("images", []) if path.is_file() else []
    return {e.get("filename"): e.get("objects") for e in entries if isinstance(e, dict)}


def verify_images(records: Iterable[CaptionedImage], *, decode: bool = False, progress: bool = False) -> None:
    """Open every image with PIL; raise naming the first missing or unreadable file.

    By default only the header is read (format and size: fast, catches missing, empty and
    non-image files); ``decode=True`` also decodes the pixels, which catches truncated files.
    """
    for record in tqdm(records, desc="checking images", disable=not progress):
        if not record.path.is_file():
            raise FileNotFoundError(f"image {record.path} (image_id {record.image_id!r}) does not exist; put it there "
                                    f"or point image_root at the folder that holds it")
        try:
            with Image.open(record.path) as image:
                if decode:
                    image.load()
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise CaptionFormatError(f"image {record.path} (image_id {record.image_id!r}) cannot be read as an image "
                                     f"({error}); replace the file with the original") from error


# classes


class Vocabulary:
    """Word <-> id mapping for caption models.

    Id 0 is ``<eos>``: it ends every encoded caption and pads batches (as in the self-critical
    captioning code, so one id serves both). Id 1 is ``<unk>``, for words outside the vocabulary.
    Then come the kept words, most frequent first (ties alphabetical), so the same corpus always
    gives the same ids.
    """

    EOS, UNK = "<eos>", "<unk>"
    eos_id, unk_id = 0, 1

    def __init__(self, words: Sequence[str], *, min_count: int | None = None) -> None:
        """``words`` lists every token by id and must start with ``<eos>``, ``<unk>``."""
        if list(words[:2]) != [self.EOS, self.UNK]:
            raise ValueError(f"a vocabulary starts with {self.EOS!r}, {self.UNK!r}; got {list(words[:2])!r}")
        if len(set(words)) != len(words):
            repeated = next(word for word, n in Counter(words).items() if n > 1)
            raise ValueError(f"the word {repeated!r} appears twice in the vocabulary")
        self.words: tuple[str, ...] = tuple(words)
        self.ids: dict[str, int] = {word: i for i, word in enumerate(self.words)}
        self.min_count = min_count

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 5) -> Vocabulary:
        """Keep the words seen MORE than ``min_count`` times (a word seen exactly ``min_count`` times is dropped)."""
        counts = Counter(token for tokens in token_lists for token in tokens)
        kept = sorted((word for word, n in counts.items() if n > min_count and word not in (cls.EOS, cls.UNK)),
                      key=lambda word: (-counts[word], word))
        return cls([cls.EOS, cls.UNK, *kept], min_count=min_count)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str], max_len: int = 16, *, pad: bool = False) -> list[int]:
        """Ids of the first ``max_len`` tokens, then ``<eos>`` (0): at most ``max_len + 1`` ids.

        The end token comes after the ``max_len`` words, so a long caption keeps 16 words (the
        usual seq_length) and the model still learns to stop. Unknown words become ``<unk>``
        (1). ``pad=True`` pads with 0 to exactly ``max_len + 1`` ids.
        """
        ids = [self.ids.get(token, self.unk_id) for token in tokens[:max_len]] + [self.eos_id]
        return ids + [self.eos_id] * (max_len + 1 - len(ids)) if pad else ids

    def decode(self, ids: Iterable[int]) -> str:
        """The words of ``ids`` joined by spaces, stopping at the first 0 (``<eos>`` / padding)."""
        words = []
        for i in map(int, ids):
            if i == self.eos_id:
                break
            if not 0 <= i < len(self.words):
                raise ValueError(f"id {i} is outside the vocabulary of {len(self.words)} words")
            words.append(self.words[i])
        return " ".join(words)

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON (``{"words": [...], "min_count": ...}``); returns ``path``."""
        path = Path(path)
        path.write_text(json.dumps({"words": list(self.words), "min_count": self.min_count}, indent=0) + "\n",
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        data = _load_json(path)
        words = _list_field(path, data, "words", "a vocabulary written by Vocabulary.save")
        if not all(isinstance(word, str) for word in words):
            raise CaptionFormatError(f"{path}: 'words' must be a list of strings")
        try:
            return cls(words, min_count=data.get("min_count"))
        except ValueError as error:
            raise CaptionFormatError(f"{path}: {error}") from error


# preparing a download

KARPATHY_RELEASES: dict[str, tuple[str, tuple[str, ...]]] = {  # name -> (split file, folders images may sit under)
    "coco-captions": ("dataset_coco.json", ("", "images", "coco")),
    "flickr30k": ("dataset_flickr30k.json", ("", "flickr30k-images", "flickr30k_images", "images")),
}
_LAYOUTS = {
    "coco-captions": "a folder with dataset_coco.json (Karpathy's caption_datasets.zip) and the train2014/ and "
                     "val2014/ image folders (directly or under images/)",
    "flickr30k": "a folder with dataset_flickr30k.json (Karpathy's caption_datasets.zip) and the Flickr30k images "
                 "(directly or under flickr30k-images/)",
}


def caption_release_in(source: str | Path) -> str | None:
    """The caption dataset whose Karpathy split file lies in ``source``, if any (for hints)."""
    return next((name for name, (json_name, _) in KARPATHY_RELEASES.items() if (Path(source) / json_name).is_file()),
                None)


def karpathy_ready(root: Path, meta: dict) -> bool:
    """``meta`` (of ``root``) describes a prepared caption folder whose Karpathy split file is there."""
    return meta.get("format") == "karpathy" and (Path(root) / meta["file"]).is_file()


@register_folder_format("karpathy")
def prepared_caption_folder(root: Path) -> bool:
    """``root`` holds a prepared caption folder (``meta.json`` naming its Karpathy file) or a user's folder
    with one Karpathy file or COCO caption files of any names (and no ``meta.json``): used as it is,
    under any dataset name."""
    meta = read_meta(root)
    if meta is not None:
        return karpathy_ready(root, meta)
    try:
        return Path(root).is_dir() and (find_karpathy_file(root) is not None or bool(find_coco_caption_files(root)))
    except CaptionFormatError:
        return False


def prepare_karpathy_release(root: Path, *, source: Path, name: str, progress: bool = True) -> Path:
    """Check a Karpathy split file and its images, and point ``root`` at them.

    Every entry of the split file is validated (:func:`read_karpathy`) and every image's header
    read before anything is written. Images are not copied: ``root/images`` is a symbolic link to
    ``source`` (where a link cannot be made, ``meta.json`` holds absolute paths into ``source``
    instead) and ``meta.json`` names the split file and the image folder, as
    :func:`read_caption_folder` expects.
    """
    json_name, image_dirs = KARPATHY_RELEASES[name]
    root, source = Path(root), Path(source).resolve()
    if not source.is_dir():
        raise FileNotFoundError(f"{name} source folder {source} does not exist")
    json_path = source / json_name
    if not json_path.is_file():
        raise FileNotFoundError(f"{source} has no {json_name}; expected {_LAYOUTS[name]}")
    folder = DatasetFolder(root, {"name": name, "source": str(source), "size": json_path.stat().st_size},
                           complete=karpathy_ready)
    if folder.ready():
        return root
    records = read_karpathy(json_path, image_root=source)
    first = records[0].path.relative_to(source)
    image_dir = next((d for d in image_dirs if (source / d / first).is_file()), None)
    if image_dir is None:
        looked = ", ".join(str(source / d / first) for d in image_dirs)
        raise FileNotFoundError(f"{name}: cannot find the images of {json_name}: looked for its first image at "
                                f"{looked}; expected {_LAYOUTS[name]}")
    records = [replace(r, path=source / image_dir / r.path.relative_to(source)) for r in records]
    verify_images(records, progress=progress)
    with folder.rewriting() as meta:
        prefix = link_source(root / "images", source)
        counts = Counter(record.split for record in records)
        meta.update({**folder.expected, "kind": "caption", "format": "karpathy", "file": prefix + json_name,
                     "image_root": prefix + image_dir, "num_images": len(records),
                     "counts": {split: counts[split] for split in ("train", "val", "test")}})
    return root


def _release(name: str) -> tuple[Preparer, Ready]:
    def preparer(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
        return prepare_karpathy_release(root, source=source, name=name, progress=progress)

    def ready(root: Path) -> bool:
        return DatasetFolder(root, {"name": name}, complete=karpathy_ready).ready()

    return preparer, ready


for _name, _what in (("coco-captions", "MS-COCO 2014 captions, Karpathy split: train 113,287 / val 5,000 / test 5,000"),
                     ("flickr30k", "Flickr30k captions, Karpathy split: train 29,000 / val 1,014 / test 1,000")):
    _preparer, _ready = _release(_name)
    register_dataset(_name, kind="caption", builtin=False, source_layout=_LAYOUTS[_name], ready=_ready,
                     summary=f"{_what}, 5 captions per image")(_preparer)
