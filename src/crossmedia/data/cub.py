"""Text-to-image caption folders of Reed et al. (CUB-200-2011 birds, Oxford-102 flowers), read and prepared.

Reed, Akata, Lee and Schiele ("Learning Deep Representations of Fine-Grained Visual Descriptions",
CVPR 2016, arXiv 1605.05395) released ten captions per image for CUB-200-2011 and Oxford-102
(``cvpr2016_cub`` / ``cvpr2016_flowers``); GAN-INT-CLS, StackGAN and AttnGAN train on them with
*class-disjoint* splits. The layout this module reads, under one folder ``root``::

    trainvalclasses.txt            class folder names, one per line (the training classes)
    testclasses.txt                class folder names, one per line (the test classes)
    allclasses.txt                 optional: every class; when present it must be the union of the two
    text_c10/<class>/<name>.txt    the captions of image <name>: one per line, ``captions_per_image`` (10)
    images/<class>/<name>.jpg      CUB: the CUB-200-2011 ``images/`` folder, one folder per class
    jpg/<name>.jpg                 Oxford-102: the flat ``jpg/`` folder of ``102flowers.tgz``

:func:`read_cub_text` returns one :class:`~crossmedia.data.karpathy.CaptionedImage` per text
file: split ``train`` for the classes of ``trainvalclasses.txt`` and ``test`` for those of
``testclasses.txt`` (CUB: 150 classes, 8,855 images / 50 classes, 2,933 images; Oxford-102: 82
/ 20 classes), captions tokenised by :func:`~crossmedia.data.karpathy.tokenize`, the lines as
written kept in ``raw``, ``image_id`` = ``"<class>/<name>"``. A few CUB captions hold U+FFFD
replacement characters where the original text had unprintable bytes; for the tokens they are
read as spaces (``raw`` keeps them).

Nothing is skipped: a class listed with no folder, a text file with the wrong number of captions,
a text file without its image, an image without its text file, and a class folder in neither
split file are each a :class:`~crossmedia.data.karpathy.CaptionFormatError` naming the file and
the fix. The reader checks that images exist, not that they decode; the preparer reads every
image's header too.

Every caption data module (caption, t2i, retrieval) also reads such a folder in place
(:func:`looks_like_cub_text` recognises it by ``trainvalclasses.txt``, ``testclasses.txt`` and
``text_c10/``; :func:`crossmedia.data.karpathy.read_caption_folder` then calls
:func:`read_cub_text`), with no prepare step and nothing written into it; ``crossmedia data
check`` reports it as ``cub-text``.

``crossmedia data prepare cub-text|flowers-text --source DIR`` checks such a folder and writes
the dataset folder as a Karpathy split file (``dataset_cub.json`` / ``dataset_flowers.json``,
each entry with its ``class`` added) beside a ``meta.json`` of format ``karpathy``, so every
caption data module reads it with :func:`~crossmedia.data.karpathy.read_caption_folder`. Images
are not copied: ``root/images`` links to the download.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from crossmedia.data.folder import DatasetFolder, link_source
from crossmedia.data.karpathy import CaptionedImage, CaptionFormatError, karpathy_ready, tokenize, verify_images
from crossmedia.data.registry import Preparer, Ready, register_dataset

__all__ = ["CUB_SPLIT_FILES", "CUB_RELEASES", "CubRelease", "looks_like_cub_text", "read_cub_text",
           "prepare_cub_text"]

CUB_SPLIT_FILES: dict[str, str] = {"trainvalclasses.txt": "train", "testclasses.txt": "test"}
_ALL_CLASSES = "allclasses.txt"
_TEXT_DIR = "text_c10"
_IMAGE_DIRS = ("images", "jpg")  # CUB's per-class folders, Oxford-102's flat folder
_IMAGE_SUFFIX = ".jpg"
_LAYOUT = ("a folder with trainvalclasses.txt, testclasses.txt (class names, one per line), text_c10/<class>/"
           "<name>.txt (the captions, one per line) and the images: images/<class>/<name>.jpg (CUB) or "
           "jpg/<name>.jpg (Oxford-102)")


@dataclass(frozen=True)
class CubRelease:
    """One dataset of Reed et al.'s layout: what ``--source`` must hold and what the folder is called."""

    json_name: str
    image_dir: str
    layout: str
    summary: str


CUB_RELEASES: dict[str, CubRelease] = {
    "cub-text": CubRelease(
        "dataset_cub.json", "images",
        "Reed et al.'s cvpr2016_cub folder (text_c10/, trainvalclasses.txt, testclasses.txt) with the "
        "CUB-200-2011 images/ folder (images/<class>/<name>.jpg) put inside it",
        "CUB-200-2011 birds with Reed et al.'s 10 captions per image: train 150 classes, 8,855 images / "
        "test 50 classes, 2,933 images"),
    "flowers-text": CubRelease(
        "dataset_flowers.json", "jpg",
        "Reed et al.'s cvpr2016_flowers folder (text_c10/, trainvalclasses.txt, testclasses.txt) with "
        "Oxford-102's jpg/ folder (102flowers.tgz: jpg/image_XXXXX.jpg) put inside it",
        "Oxford-102 flowers with Reed et al.'s 10 captions per image: train 82 classes / test 20 classes"),
}


# helpers


def _read_lines(path: Path) -> list[str]:
    """The lines of a text file, stripped, empty ones dropped; undecodable text names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CaptionFormatError(f"{path}: not UTF-8 text ({error}); extract the file again from the "
                                 f"original archive") from error
    return [line.strip() for line in text.splitlines() if line.strip()]


def _class_splits(root: Path) -> dict[str, str]:
    """Class folder name -> split, from the split files; the checks of the module docstring."""
    missing = [name for name in CUB_SPLIT_FILES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{root} has no {' or '.join(missing)}; expected {_LAYOUT}")
    splits: dict[str, str] = {}
    listed_in: dict[str, str] = {}
    for name, split in CUB_SPLIT_FILES.items():
        for cls in _read_lines(root / name):
            if cls in splits:
                raise CaptionFormatError(f"{root / name}: class {cls!r} is also listed in {listed_in[cls]}; a class "
                                         f"belongs to one split: remove it from one of the two files")
            splits[cls], listed_in[cls] = split, name
    if not splits:
        raise CaptionFormatError(f"{root}: {' and '.join(CUB_SPLIT_FILES)} list no class; expected class folder "
                                 f"names, one per line")
    if (root / _ALL_CLASSES).is_file():
        every = set(_read_lines(root / _ALL_CLASSES))
        extra, unsplit = sorted(set(splits) - every), sorted(every - set(splits))
        if extra or unsplit:
            what = (f"lacks {extra[0]!r}, which {listed_in[extra[0]]} lists" if extra
                    else f"lists {unsplit[0]!r}, which is in neither {' nor '.join(CUB_SPLIT_FILES)}")
            raise CaptionFormatError(f"{root / _ALL_CLASSES} {what}; allclasses.txt must be the union of the split "
                                     f"files: fix it or delete it (it is optional)")
    return splits


def _check_class_folders(folder: Path, splits: dict[str, str], what: str) -> None:
    """Every class folder under ``folder`` is in a split file."""
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name not in splits:
            raise CaptionFormatError(f"{child} is a class folder of {what}, but class {child.name!r} is in neither "
                                     f"{' nor '.join(CUB_SPLIT_FILES)}: add it to one of them or remove the folder")


def _image_folder(root: Path, image_dir: str | None) -> Path:
    if image_dir is not None:
        if not (root / image_dir).is_dir():
            raise FileNotFoundError(f"image folder {root / image_dir} does not exist; expected {_LAYOUT}")
        return root / image_dir
    found = next((root / d for d in _IMAGE_DIRS if (root / d).is_dir()), None)
    if found is None:
        raise FileNotFoundError(f"{root} has no image folder ({' or '.join(d + '/' for d in _IMAGE_DIRS)}); "
                                f"expected {_LAYOUT}")
    return found


def _captions(path: Path, captions_per_image: int) -> tuple[list[list[str]], list[str]]:
    raw = _read_lines(path)
    if len(raw) != captions_per_image:
        raise CaptionFormatError(f"{path}: {len(raw)} non-empty lines, expected {captions_per_image} captions (one "
                                 f"per line); restore the file from the release, or pass captions_per_image="
                                 f"{len(raw)} if every file of this dataset has that many")
    captions = [tokenize(line.replace("\ufffd", " ")) for line in raw]
    empty = next((j for j, tokens in enumerate(captions) if not tokens), None)
    if empty is not None:
        raise CaptionFormatError(f"{path}: caption {empty + 1} ({raw[empty]!r}) has no words; write the caption "
                                 f"or restore the file from the release")
    return captions, raw


# functions


def looks_like_cub_text(root: str | Path) -> bool:
    """True when ``root`` holds both split files and a ``text_c10/`` folder (names only; nothing is read)."""
    root = Path(root)
    return all((root / name).is_file() for name in CUB_SPLIT_FILES) and (root / _TEXT_DIR).is_dir()


def read_cub_text(root: str | Path, *, captions_per_image: int = 10, image_dir: str | None = None
                  ) -> list[CaptionedImage]:
    """Every captioned image of a folder in Reed et al.'s layout (the module docstring), sorted by class and name.

    Args:
        root: the folder holding the split files, ``text_c10/`` and the image folder.
        captions_per_image: the number of non-empty lines every text file must have.
        image_dir: the image folder relative to ``root``; by default ``images/`` when it exists, else
            ``jpg/``. Images sit in per-class sub-folders when any class has one there, else flat.

    Raises:
        FileNotFoundError: a split file, ``text_c10/`` or the image folder is missing.
        CaptionFormatError: any of the errors listed in the module docstring.
    """
    root = Path(root)
    if captions_per_image < 1:
        raise ValueError(f"captions_per_image must be ≥ 1, got {captions_per_image}")
    splits = _class_splits(root)
    text_root = root / _TEXT_DIR
    if not text_root.is_dir():
        raise FileNotFoundError(f"{root} has no {_TEXT_DIR}/ folder of captions; expected {_LAYOUT}")
    image_root = _image_folder(root, image_dir)
    per_class = any((image_root / cls).is_dir() for cls in splits)
    _check_class_folders(text_root, splits, f"{_TEXT_DIR}/")
    if per_class:
        _check_class_folders(image_root, splits, f"{image_root.name}/")
    records: list[CaptionedImage] = []
    described: dict[Path, Path] = {}  # image -> its text file
    for cls in sorted(splits):
        folder = text_root / cls
        if not folder.is_dir():
            listed = next(name for name, split in CUB_SPLIT_FILES.items() if split == splits[cls])
            raise CaptionFormatError(f"class {cls!r} of {root / listed} has no caption folder {folder}; put its text "
                                     f"files there or remove the class from {listed}")
        for text_file in sorted(folder.glob("*.txt")):
            image = (image_root / cls if per_class else image_root) / (text_file.stem + _IMAGE_SUFFIX)
            if not image.is_file():
                raise CaptionFormatError(f"{text_file} describes image {image}, which does not exist; put the image "
                                         f"there or remove the text file")
            if image in described:
                raise CaptionFormatError(f"{text_file} and {described[image]} both describe {image}; an image has "
                                         f"one text file: remove one of them")
            described[image] = text_file
            captions, raw = _captions(text_file, captions_per_image)
            records.append(CaptionedImage(path=image, split=splits[cls], captions=captions, raw=raw,
                                          image_id=f"{cls}/{text_file.stem}"))
    image_folders = [image_root / cls for cls in sorted(splits) if (image_root / cls).is_dir()] if per_class \
        else [image_root]
    for folder in image_folders:
        for image in sorted(folder.glob("*" + _IMAGE_SUFFIX)):
            if image not in described:
                where = f"{_TEXT_DIR}/{folder.name}/" if per_class else f"any class folder of {_TEXT_DIR}/"
                raise CaptionFormatError(f"image {image} has no text file {image.stem}.txt in {where}; add its "
                                         f"captions or remove the image")
    if not records:
        raise CaptionFormatError(f"{text_root}: no text file in any class folder; expected {_LAYOUT}")
    return records


def prepare_cub_text(root: Path, *, source: Path, name: str, captions_per_image: int = 10,
                     progress: bool = True) -> Path:
    """Check a download in Reed et al.'s layout and write it as a prepared Karpathy-format caption folder.

    Every text file is validated (:func:`read_cub_text`) and every image's header read before
    anything is written. ``root/images`` links to ``source`` (where a link cannot be made, the
    split file holds absolute paths into ``source``); ``root/<json_name>`` is the Karpathy split
    file and ``meta.json`` names both, as :func:`~crossmedia.data.karpathy.read_caption_folder`
    expects.
    """
    release = CUB_RELEASES[name]
    root, source = Path(root), Path(source).resolve()
    if not source.is_dir():
        raise FileNotFoundError(f"{name} source folder {source} does not exist")
    missing = [f for f in (*CUB_SPLIT_FILES, _TEXT_DIR, release.image_dir) if not (source / f).exists()]
    if missing:
        raise FileNotFoundError(f"{source} has no {', '.join(missing)}; expected {release.layout}")
    folder = DatasetFolder(root, {"name": name, "source": str(source), "captions_per_image": captions_per_image},
                           complete=karpathy_ready)
    if folder.ready():
        return root
    records = read_cub_text(source, captions_per_image=captions_per_image, image_dir=release.image_dir)
    verify_images(records, progress=progress)
    with folder.rewriting() as meta:
        prefix = link_source(root / "images", source)
        images = [{"filepath": record.path.parent.relative_to(source).as_posix(), "filename": record.path.name,
                   "split": record.split, "imgid": record.image_id, "class": str(record.image_id).split("/")[0],
                   "sentences": [{"tokens": tokens, "raw": raw} for tokens, raw in zip(record.captions, record.raw)]}
                  for record in records]
        dataset = release.json_name.removeprefix("dataset_").removesuffix(".json")
        (root / release.json_name).write_text(json.dumps({"dataset": dataset, "images": images}) + "\n",
                                              encoding="utf-8")
        counts = Counter(record.split for record in records)
        meta.update({**folder.expected, "kind": "caption", "format": "karpathy", "file": release.json_name,
                     "image_root": prefix, "num_images": len(records),
                     "num_classes": len({image["class"] for image in images}),
                     "counts": {split: counts[split] for split in ("train", "val", "test")}})
    return root


def _release(name: str) -> tuple[Preparer, Ready]:
    def preparer(root: Path, *, source: Path, seed: int, progress: bool) -> Path:
        return prepare_cub_text(root, source=source, name=name, progress=progress)

    def ready(root: Path) -> bool:
        return DatasetFolder(root, {"name": name}, complete=karpathy_ready).ready()

    return preparer, ready


for _name, _release_info in CUB_RELEASES.items():
    _preparer, _ready = _release(_name)
    register_dataset(_name, kind="caption", builtin=False, source_layout=_release_info.layout, ready=_ready,
                     summary=_release_info.summary)(_preparer)
