"""``crossmedia data check DIR``: what a folder holds, in which supported format, before any training.

Each format has a cheap *sign* (which files name it) and a *reader* (the same reader the task's
DataModule uses, so a folder that checks clean loads clean). For every format whose sign is in
the folder, :func:`check_folder` reads it and reports items per split, classes or vocabulary, and
files the folder names but does not have; a folder no format recognises gets a report of what
is in it and what each format expects. Nothing is written, into the folder or anywhere.

Formats: a Karpathy caption JSON (any name, or a prepared caption folder) or COCO caption
annotation files (any names, the split in each name; reported as ``coco-captions``), Reed et al.'s
text-to-image captions (``trainvalclasses.txt``, ``testclasses.txt``, ``text_c10/``: CUB, Oxford-102), DeepHash lists
(``train.txt``, ``query.txt``, ``database.txt``), eccv16 summarisation ``*.h5``, PoseTrack / COCO-17
keypoint JSON, ImageFolder (``CLASS/IMAGE``, or ``train/``, ``val/``, ``test/`` of those), VSE++'s precomputed
retrieval features, the label-based cross-modal features ACMR / DSCMR read, and MSR-VTT video
caption annotations (``videos`` + ``sentences``, the videos under ``videos/``).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FolderReport", "check_folder", "EXPECTED"]

MIN_COUNT = 5  # the caption data module's default vocabulary threshold
SHOWN = 3  # missing files listed by name; the rest are counted

EXPECTED = {
    "karpathy": "captions: one Karpathy split JSON (images[] with filename, split, sentences[].tokens), images next "
                "to it or under images/; or COCO caption files under any names with the split as a word of each "
                "name (captions_train2014.json, my_val_caps.json: images[] with id + file_name, annotations[] "
                "with image_id + caption), images next to them, under images/ or train2014/ ...",
    "cub-text": "text-to-image captions (CUB, Oxford-102): trainvalclasses.txt, testclasses.txt (class folder "
                "names), text_c10/<class>/<name>.txt (10 lines), images/<class>/<name>.jpg or jpg/<name>.jpg",
    "deephash": "hashing: train.txt, query.txt, database.txt, one 'path label-bits' line per item",
    "eccv16": "summarisation: eccv16_dataset_*.h5 (per video: features, gtscore, change_points, ...)",
    "posetrack": "pose video: PoseTrack / COCO-17 keypoint JSON (images[], annotations[] with keypoints) and frames",
    "imagefolder": "classification: one sub-folder per class (CLASS/IMAGE.png), optionally under train/ val/ test/",
    "msrvtt": "video captions: an MSR-VTT annotation JSON (videos[] with video_id + split, sentences[] with "
              "video_id + caption) and the videos as videos/<video_id>.mp4 (or .avi, .webm)",
    "vse-precomp": "retrieval: VSE++ precomputed features, {split}_ims.npy (one row per image) + {split}_caps.txt "
                   "(5 lines per image), split train / dev / test / testall",
    "acmr-features": "label-based retrieval: train_/test_img_feats.npy, _txt_vecs.npy, _labels.npy (ACMR's names) "
                     "or train_/test_img.mat, _txt.mat, _img_lab.mat (DSCMR's)",
}


@dataclass
class FolderReport:
    """One format found in a folder: ``counts`` per split, other ``facts``, ``missing`` files, or the ``error``."""

    format: str
    counts: dict[str, int] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)
    missing: list[Path] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.missing

    def lines(self) -> list[str]:
        if self.error is not None:
            return [f"{self.format}: cannot be read: {self.error}"]
        counts = ", ".join(f"{split} {n:,}" for split, n in self.counts.items())
        facts = "; ".join(f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}"
                          for key, value in self.facts.items())
        out = [f"{self.format}: {counts}" + (f"; {facts}" if facts else "")]
        if self.missing:
            shown = ", ".join(str(path) for path in self.missing[:SHOWN])
            more = f" and {len(self.missing) - SHOWN} more" if len(self.missing) > SHOWN else ""
            out.append(f"  missing {len(self.missing)} file(s): {shown}{more}")
        else:
            out.append("  every file it names is there")
        return out


# formats: (sign, reader)


def _karpathy_sign(root: Path) -> bool:
    from crossmedia.data.folder import read_meta
    from crossmedia.data.karpathy import CaptionFormatError, find_coco_caption_files, find_karpathy_file

    meta = read_meta(root)
    if meta is not None:
        return meta.get("format") == "karpathy"
    try:
        return find_karpathy_file(root) is not None or bool(find_coco_caption_files(root))
    except CaptionFormatError:
        return True  # several files: the reader says which


def _karpathy(root: Path) -> FolderReport:
    """The caption folder as the caption and t2i data modules read it: its Karpathy file, else its COCO files."""
    from crossmedia.data.folder import read_meta
    from crossmedia.data.karpathy import caption_folder_files, find_coco_caption_files, read_karpathy

    coco = find_coco_caption_files(root) if read_meta(root) is None else []
    try:
        json_path, image_root = _caption_files(root, caption_folder_files)
    except FileNotFoundError:
        if not coco:
            raise
        try:
            return _coco(root)
        except (ValueError, LookupError, OSError) as error:  # named as the format it is, not as karpathy
            return FolderReport("coco-captions", error=" ".join(str(error).split()))
    facts = {"file": json_path.name}
    if coco:
        facts["not read (the Karpathy file is)"] = ", ".join(path.name for path in coco)
    return _caption_report("karpathy", read_karpathy(json_path, image_root=image_root), facts)


def _coco(root: Path) -> FolderReport:
    from crossmedia.data.karpathy import COCO_TEST_SEED, coco_caption_files, read_coco_folder

    files = coco_caption_files(root)
    facts: dict[str, object] = {"files": ", ".join(f"{path.name} ({split})" for split, (path, _) in files.items())}
    if "test" not in files:
        facts["test"] = f"half of {files['val'][0].name}'s images (seed {COCO_TEST_SEED}; there is no test file)"
    return _caption_report("coco-captions", read_coco_folder(root, missing_ok=True), facts)


def _caption_report(name: str, records: list, facts: dict[str, object]) -> FolderReport:
    """Images per split, captions, training vocabulary and missing images of caption ``records``."""
    from crossmedia.data.karpathy import Vocabulary

    counts = Counter(record.split for record in records)
    facts["captions"] = sum(len(r.captions) for r in records)
    if counts["train"]:
        vocabulary = Vocabulary.build((tokens for r in records if r.split == "train" for tokens in r.captions),
                                      min_count=MIN_COUNT)
        facts[f"vocabulary (words seen more than {MIN_COUNT} times in train, plus end and unknown)"] = len(vocabulary)
    return FolderReport(name, {s: counts[s] for s in ("train", "val", "test")}, facts,
                        [r.path for r in records if not r.path.is_file()])


def _caption_files(root: Path, files: Callable) -> tuple[Path, Path]:
    try:
        return files(root)
    except FileNotFoundError:  # the JSON is there but its images are not where it says
        from crossmedia.data.karpathy import find_karpathy_file

        json_path = find_karpathy_file(root)
        if json_path is None:
            raise
        return json_path, root if not (root / "images").is_dir() else root / "images"


def _cub_sign(root: Path) -> bool:
    from crossmedia.data.cub import looks_like_cub_text

    return looks_like_cub_text(root)


def _cub(root: Path) -> FolderReport:
    from crossmedia.data.cub import read_cub_text

    records = read_cub_text(root)  # every text file and image checked; errors name the file
    facts: dict[str, object] = {"classes": len({r.image_id.split("/", 1)[0] for r in records})}
    return _caption_report("cub-text", records, facts)


def _deephash_sign(root: Path) -> bool:
    from crossmedia.data.deephash import SPLITS, list_file_for

    return any(list_file_for(root, split).is_file() for split in SPLITS)


def _deephash(root: Path) -> FolderReport:
    from crossmedia.data.deephash import SPLITS, list_file_for, read_list

    counts, missing, widths = {}, [], set()
    for split in SPLITS:
        list_file = list_file_for(root, split)
        if not list_file.is_file():
            raise FileNotFoundError(f"{list_file} is missing; a DeepHash folder has {', '.join(SPLITS)} lists")
        items = read_list(list_file, root=root, check_files=False)
        counts[split] = len(items)
        widths.update(len(labels) for _, labels in items)
        missing += [root / path for path, _ in items if not (root / path).exists()]
    return FolderReport("deephash", counts, {"classes (label bits)": ", ".join(map(str, sorted(widths)))}, missing)


def _eccv16_sign(root: Path) -> bool:
    return any(root.glob("*.h5"))


def _eccv16(root: Path) -> FolderReport:
    from crossmedia.data.eccv16 import list_videos, open_eccv16, read_video

    counts = {}
    for path in sorted(root.glob("*.h5")):
        with open_eccv16(path) as handle:  # opened once per file, not once per video
            videos = list_videos(handle)
            for key in videos:
                read_video(handle, key)  # every field checked; an error names the file, the video and the field
        counts[path.name] = len(videos)
    return FolderReport("eccv16", counts, {"unit": "videos per file"})


def _posetrack_sign(root: Path) -> bool:
    from crossmedia.data.poseclips import looks_like_pose_json

    return any(looks_like_pose_json(path) for path in sorted(root.glob("*.json")))


def _posetrack(root: Path) -> FolderReport:
    from crossmedia.data.posetrack import read_posetrack

    files = [p for p in sorted(root.glob("*.json")) if p.name != "meta.json"]
    clips = [clip for path in files for clip in read_posetrack(path)]
    counts = Counter(clip.split or "unsplit" for clip in clips)
    actions = sorted({clip.action for clip in clips if clip.action})
    missing = sorted({frame for clip in clips for frame in clip.frames if not frame.is_file()})
    facts = {"frames": sum(len(clip.frames) for clip in clips)}
    if actions:
        facts["actions"] = f"{len(actions)} ({', '.join(actions[:8])}{' ...' if len(actions) > 8 else ''})"
    return FolderReport("posetrack", {"clips " + split: n for split, n in sorted(counts.items())}, facts, missing)


_IMAGE_SPLITS = ("train", "val", "test")


def _imagefolder_sign(root: Path) -> bool:
    from crossmedia.data.imagefolder import IMAGE_SUFFIXES

    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    folders = [p for p in entries if p.is_dir()]
    if len(folders) < len(entries):  # files beside the folders: another format's folder (images/, frames/ ...)
        return False
    return bool(folders) and any(f.suffix.lower() in IMAGE_SUFFIXES for d in folders for f in d.rglob("*"))


def _imagefolder(root: Path) -> FolderReport:
    from crossmedia.data.imagefolder import read_image_folder

    splits = [s for s in _IMAGE_SPLITS if (root / s).is_dir()] or [None]
    counts, classes = {}, set()
    for split in splits:
        _, labels, names = read_image_folder(root / split if split else root)
        counts[split or "all"] = len(labels)
        classes.add(names)
    if len(classes) > 1:
        raise ValueError(f"{root}: the splits have different class folders ({' / '.join(map(str, classes))}); "
                         f"give every split the same classes")
    names = next(iter(classes))
    return FolderReport("imagefolder", counts, {"classes": f"{len(names)} ({', '.join(names[:8])}"
                                                           f"{' ...' if len(names) > 8 else ''})"})


def _msrvtt_sign(root: Path) -> bool:
    from crossmedia.data.msrvtt import msrvtt_folder

    return msrvtt_folder(root)


def _msrvtt(root: Path) -> FolderReport:
    from crossmedia.data.msrvtt import missing_videos, read_msrvtt

    records = read_msrvtt(root)  # every video and sentence entry checked; errors name the file and field
    counts = Counter(record.split for record in records)
    facts: dict[str, object] = {"captions": sum(len(r.captions) for r in records)}
    return FolderReport("msrvtt", {s: counts[s] for s in ("train", "val", "test")}, facts,
                        [root / "videos" / f"{video_id}.mp4" for video_id in missing_videos(root, records)])


def _vse_sign(root: Path) -> bool:
    from crossmedia.data.vse_features import looks_like_vse_precomp

    return looks_like_vse_precomp(root)


def _vse(root: Path) -> FolderReport:
    from crossmedia.data.vse_features import read_vse_precomp, vse_precomp_splits

    counts, widths = {}, set()
    for split in vse_precomp_splits(root):
        data = read_vse_precomp(root, split)  # every caption line and the array checked; errors name the file
        counts[f"{split} images"] = data.images.shape[0]
        counts[f"{split} captions"] = len(data.captions)
        widths.add(data.images.shape[1])
    return FolderReport("vse-precomp", counts, {"feature width": ", ".join(map(str, sorted(widths)))})


def _acmr_sign(root: Path) -> bool:
    from crossmedia.data.acmr_features import looks_like_acmr_features

    return looks_like_acmr_features(root)


def _acmr(root: Path) -> FolderReport:
    from crossmedia.data.acmr_features import acmr_layout, read_acmr_features

    if acmr_layout(root) == "pickle":  # the reader's error carries a multi-line script this one-line report would mangle
        raise ValueError(f"{root}: ACMR's pickled features (*.pkl), which are never unpickled; print the conversion "
                         "script with python -c 'from crossmedia.data.acmr_features import PICKLE_CONVERSION; "
                         "print(PICKLE_CONVERSION)', run it once on files you trust, then check again")
    splits = read_acmr_features(root)
    counts = {f"{split} pairs": pairs.labels.shape[0] for split, pairs in splits.items()}
    train = splits["train"]
    classes = len({int(c) for pairs in splits.values() for c in pairs.labels})
    return FolderReport("acmr-features", counts, {"image features": train.images.shape[1],
                                                  "text features": train.texts.shape[1], "classes": classes})


FORMATS: dict[str, tuple[Callable[[Path], bool], Callable[[Path], FolderReport]]] = {
    "karpathy": (_karpathy_sign, _karpathy),
    "cub-text": (_cub_sign, _cub),
    "deephash": (_deephash_sign, _deephash),
    "eccv16": (_eccv16_sign, _eccv16),
    "posetrack": (_posetrack_sign, _posetrack),
    "imagefolder": (_imagefolder_sign, _imagefolder),
    "msrvtt": (_msrvtt_sign, _msrvtt),
    "vse-precomp": (_vse_sign, _vse),
    "acmr-features": (_acmr_sign, _acmr),
}


# functions


def check_folder(root: str | Path) -> list[FolderReport]:
    """A report per format whose sign is in ``root`` (empty: no supported format; see :func:`describe_contents`)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    reports = []
    for name, (sign, read) in FORMATS.items():
        if not sign(root):
            continue
        try:
            reports.append(read(root))
        except (ValueError, LookupError, OSError) as error:  # the readers' format errors name file and field
            reports.append(FolderReport(name, error=" ".join(str(error).split())))
    return reports


def describe_contents(root: str | Path) -> str:
    """What is directly in ``root``: files by suffix and the number of sub-folders."""
    entries = [p for p in Path(root).iterdir() if not p.name.startswith(".")]
    suffixes = Counter(p.suffix.lower() or "(no suffix)" for p in entries if p.is_file())
    folders = sum(p.is_dir() for p in entries)
    parts = [f"{n} {suffix}" for suffix, n in suffixes.most_common()] + ([f"{folders} folder(s)"] if folders else [])
    return ", ".join(parts) or "nothing"
