"""The video captioning DataModule: MSR-VTT-format annotations + per-stream feature files.

A dataset folder (``root``, default ``data/<dataset>``) holds ``annotations.json`` in MSR-VTT's
format (read by :func:`crossmedia.data.msrvtt.read_msrvtt`: ``videos`` with ``video_id`` and
``split``, ``sentences`` with ``video_id`` and ``caption``) and its videos (``videos/<id>.mp4``).
The streams are read from a features folder: ``features`` when given; else ``<root>/features``
when it holds any of the three files (features a user computed, as the reference code stores
them; a missing one is an error naming it); else
``data/video-features/<folder name>-<key>``, which :meth:`VideoCaptionDataModule.prepare_data`
fills the first time by running :class:`~crossmedia.tasks.caption.video.features.VideoFeatureExtractor`
(``extract_with``: its arguments; default the offline EfficientNet-Lite0 and the zoo's
``video-content-tagger`` / ``video-action-tagger``) over every video, with a progress bar,
resumable. The key hashes the folder's absolute path, the extractor arguments and the sha256 of
the tag networks' zoo weights, so other videos or re-trained taggers get their own folder and
nothing is ever written into the dataset folder. A video captioner built without ``extractor``
takes ``extract_with`` at fit (what it needs to caption a new video the same way; named
differently so that the two hyper-parameters never clash in a logger). The folder holds

* ``appearance.h5``: one dataset (T, Da) per video id (a row per frame);
* ``motion.h5``: one dataset (S, Dm) per video id (a row per clip segment);
* ``tags.json``: ``{video_id: {"content": word, "action": word, ...}}``, the top content and action tags

(as :func:`crossmedia.tasks.caption.video.features.extract_features` writes them; any h5 layout
:class:`crossmedia.data.features.FeatureStore` reads works).

Batches are dicts (B videos, L = ``max_len + 1``):

* ``appearance`` (B, Ta, Da) float, ``appearance_mask`` (B, Ta) bool (True = a real frame);
* ``motion`` (B, Tm, Dm) float, ``motion_mask`` (B, Tm) bool;
* ``tags`` (B, 2) long: the content and action tag ids in :attr:`VideoCaptionDataModule.tag_words`
  (0 = none);
* ``captions`` (B, K, L) long, training only, K = ``captions_per_image`` (as the image captioner's);
* ``index`` (B,) long, the video's position in its split.

The tag vocabulary is ``["<none>", *sorted(words of tags.json)]``; the caption vocabulary is built
from the training captions as the image captioner's is. The module implements
:class:`crossmedia.tasks.caption.data.CaptionData` (references, CIDEr-D reward scorer;
``scene_objects`` is None), so every caption module's evaluation and SCST reads it unchanged.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import torch
from pytorch_lightning.utilities import rank_zero_info

from crossmedia.core.paths import data_root
from crossmedia.data.folder import folder_lock, read_json_object
from crossmedia.data.karpathy import CaptionedImage, Vocabulary, tokenize
from crossmedia.tasks.caption.data import SPLITS, CaptionDataModule, CaptionDataset

__all__ = ["VideoCaptionDataModule", "VideoCaptionDataset", "read_tags", "collate_videos"]

TAG_KINDS = ("content", "action")
NO_TAG = "<none>"


def read_tags(path: str | Path) -> dict[str, dict]:
    """``tags.json`` as ``{video_id: {"content": word, "action": word, ...}}``; errors name the file and entry."""
    path = Path(path)
    tags = read_json_object(path, shape=" {video_id: {'content': word, 'action': word}}",
                            fix="write it (again) with crossmedia.tasks.caption.video.features.extract_features")
    for video_id, entry in tags.items():
        for kind in TAG_KINDS:
            if not isinstance(entry, dict) or not isinstance(entry.get(kind), str) or not entry[kind]:
                raise ValueError(f"{path}: video {video_id!r} needs a non-empty string '{kind}' tag, got "
                                 f"{entry!r}; each entry is {{'content': word, 'action': word, ...}}")
    return tags


def _video_file(root: Path, video_id: str) -> Path:
    """The clip's video file (``videos/<id>.mp4``, ``.avi`` or ``.webm``), or the ``.mp4`` path when there is none
    (training reads features only; the validation samples show the clips that exist)."""
    from crossmedia.data.msrvtt import video_path

    try:
        return video_path(root, video_id)
    except FileNotFoundError:
        return root / "videos" / f"{video_id}.mp4"


class VideoCaptionDataset(CaptionDataset):
    """One split: the video's streams, its tag ids and index, and for training K encoded captions."""

    def __init__(self, records: list[CaptionedImage], *, appearance, motion, tag_ids: dict[str, list[int]],
                 vocabulary: Vocabulary | None = None, max_len: int = 16, captions_per_image: int = 5, seed: int = 0):
        super().__init__(records, image_size=0, vocabulary=vocabulary, max_len=max_len,
                         captions_per_image=captions_per_image, seed=seed)
        self.appearance, self.motion, self.tag_ids = appearance, motion, tag_ids

    def __getitem__(self, index: int) -> dict:
        video_id = self.records[index].image_id
        item = {"index": index, "appearance": self.appearance.get(video_id), "motion": self.motion.get(video_id),
                "tags": self.tag_ids[str(video_id)]}
        if self.vocabulary is not None:
            item["captions"] = self._captions(index)
        return item


def collate_videos(items: list[dict]) -> dict:
    """Items of :class:`VideoCaptionDataset` as a batch (module docstring)."""
    from crossmedia.data.features import pad_features

    batch = {"index": torch.tensor([item["index"] for item in items], dtype=torch.long),
             "tags": torch.tensor([item["tags"] for item in items], dtype=torch.long)}
    for name in ("appearance", "motion"):
        batch[name], batch[f"{name}_mask"] = pad_features([item[name] for item in items])
    if "captions" in items[0]:
        batch["captions"] = torch.stack([item["captions"] for item in items])
    return batch


class VideoCaptionDataModule(CaptionDataModule):
    """Train / val / test loaders over an MSR-VTT-format folder and its stream features; the batch dict
    (``appearance`` + mask, ``motion`` + mask, ``tags``, ``captions`` in training, ``index``) is described
    in the module docstring.

    After ``setup``: :attr:`vocabulary` (captions), :attr:`tag_words` (tags),
    :attr:`appearance_dim` and :attr:`motion_dim` (feature widths), which a video captioner takes
    when built without them. A video with no features or tags is an error naming the file and ids.
    """

    collate = staticmethod(collate_videos)

    def __init__(self, *, dataset: str = "puppet-captions", root: str | None = None, features: str | None = None,
                 extract_with: dict | None = None, batch_size: int = 50, eval_batch_size: int = 250, min_count: int = 5,
                 max_len: int = 16, captions_per_image: int = 5, num_workers: int = 0, seed: int = 0):
        super(CaptionDataModule, self).__init__()  # not CaptionDataModule's arguments; super() lets Lightning find ours
        self.save_hyperparameters()
        self.root = Path(root) if root is not None else data_root() / dataset
        self.records: dict[str, list[CaptionedImage]] = {}
        self.vocabulary: Vocabulary | None = None
        self.tag_words: list[str] | None = None
        self.appearance_dim: int | None = None
        self.motion_dim: int | None = None
        self.datasets: dict[str, VideoCaptionDataset] = {}
        self._reward_scorer = None

    @property
    def annotations(self) -> Path:
        """The folder's annotation file (:func:`crossmedia.data.msrvtt.annotation_file`)."""
        from crossmedia.data.msrvtt import annotation_file

        return annotation_file(self.root)

    def _ensure(self) -> None:
        """A folder holding an MSR-VTT annotation file is used as it is; otherwise the registry prepares ``dataset``."""
        try:
            self.annotations
        except FileNotFoundError:
            from crossmedia.data.registry import ensure

            ensure(self.hparams.dataset, self.root)

    def _extractor_args(self) -> dict:
        from crossmedia.tasks.caption.video.features import VideoFeatureExtractor

        defaults = {name: p.default for name, p in inspect.signature(VideoFeatureExtractor).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        return {**defaults, **(self.hparams.extract_with or {})}

    @property
    def features_dir(self) -> Path:
        """Where the streams are read (module docstring): ``features``, ``<root>/features``, or the extraction cache."""
        from crossmedia.tasks.caption.video.features import FILES

        if self.hparams.features is not None:
            return Path(self.hparams.features)
        own = self.root / "features"
        if any((own / name).is_file() for name in FILES):  # the user's own (a missing one is named in prepare_data)
            return own
        args = self._extractor_args()
        weights = {}
        for name in ("content", "action"):
            if isinstance(args.get(name), str):
                from crossmedia.core.cards import get_card

                weights[name] = get_card(args[name]).weights.get("sha256")
        key = json.dumps({"root": str(self.root.resolve()), "extractor": args, "weights": weights}, sort_keys=True,
                         default=str)
        return data_root() / "video-features" / f"{self.root.name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"

    def prepare_data(self) -> None:
        """The dataset folder (:meth:`_ensure`), then the streams of every video when the features folder lacks them."""
        from crossmedia.data.msrvtt import read_msrvtt, video_path
        from crossmedia.tasks.caption.video.features import FILES, VideoFeatureExtractor, extract_features

        self._ensure()
        out = self.features_dir
        if all((out / name).is_file() for name in FILES):
            return
        if self.hparams.features is not None or out == self.root / "features":
            raise FileNotFoundError(f"features folder {out} lacks {', '.join(n for n in FILES if not (out / n).is_file())}; "
                                    f"point it at a folder of appearance.h5, motion.h5 and tags.json, or leave it "
                                    f"empty to extract them")
        with folder_lock(out):  # another process (a DDP node, a test worker) may be extracting the same folder
            if all((out / name).is_file() for name in FILES):
                return
            videos = {v.video_id: video_path(self.root, v.video_id) for v in read_msrvtt(self.annotations)}
            rank_zero_info(f"video captioning: extracting the streams of {len(videos):,} videos of {self.root} into "
                           f"{out} (once; resumable)")
            extract_features(videos, out, VideoFeatureExtractor(**(self.hparams.extract_with or {})))

    def setup(self, stage: str | None = None) -> None:
        if self.vocabulary is not None:
            return
        from crossmedia.data.features import FeatureStore
        from crossmedia.data.msrvtt import read_msrvtt

        self.prepare_data()  # a no-op once done (also for a data module used without a Trainer)
        annotations = self.annotations
        videos = read_msrvtt(annotations)
        records = [CaptionedImage(path=_video_file(self.root, v.video_id), split=v.split,
                                  captions=[tokenize(c) for c in v.captions], raw=list(v.captions),
                                  image_id=v.video_id) for v in videos]
        self.records = {split: [r for r in records if r.split == split] for split in SPLITS}
        for split in ("train", "test"):
            if not self.records[split]:
                raise ValueError(f"{annotations}: no '{split}' videos; MSR-VTT splits are train, validate, test")
        ids = [r.image_id for r in records]
        folder = self.features_dir  # resolved once: it reads the tag networks' cards for the cache key
        stores = {}
        for name in ("appearance", "motion"):
            stores[name] = FeatureStore.open(folder / f"{name}.h5")
            stores[name].check(ids)
        tags = read_tags(folder / "tags.json")
        missing = [i for i in ids if str(i) not in tags]
        if missing:
            raise ValueError(f"{folder / 'tags.json'}: {len(missing)} videos have no tags, first "
                             f"{missing[:5]}; extract the tags of every video of {annotations}")
        self.tag_words = [NO_TAG, *sorted({tags[str(i)][kind] for i in ids for kind in TAG_KINDS})]
        index = {word: i for i, word in enumerate(self.tag_words)}
        tag_ids = {str(i): [index[tags[str(i)][kind]] for kind in TAG_KINDS] for i in ids}
        self.appearance_dim, self.motion_dim = stores["appearance"].dim, stores["motion"].dim
        self.vocabulary = Vocabulary.build((c for r in self.records["train"] for c in r.captions),
                                           min_count=self.hparams.min_count)
        common = dict(appearance=stores["appearance"], motion=stores["motion"], tag_ids=tag_ids)
        self.datasets = {
            "train": VideoCaptionDataset(self.records["train"], vocabulary=self.vocabulary, max_len=self.hparams.max_len,
                                         captions_per_image=self.hparams.captions_per_image, seed=self.hparams.seed,
                                         **common),
            "val": VideoCaptionDataset(self.split_records("val"), **common),
            "test": VideoCaptionDataset(self.records["test"], **common),
        }

    def scene_objects(self, split: str) -> None:
        """Videos have no ground-truth scene objects."""
        return None
