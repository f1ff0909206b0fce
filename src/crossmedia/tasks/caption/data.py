"""The captioning DataModule: a Karpathy-format caption folder, as images or as precomputed features.

Batches are dicts (B images, S = ``image_size``, L = ``max_len + 1``):

* ``images`` (B, 3, S, S) float, normalised with mean/std 0.5 — or, with ``features=PATH``,
  ``feats`` (B, N, D) float and ``mask`` (B, N) bool from a :class:`crossmedia.data.features.FeatureStore`;
* ``index`` (B,) long, the image's position in its split (it keys the references);
* ``captions`` (B, K, max_len + 1) long, training only: ``K = captions_per_image`` encoded
  captions of the image (the self-critical code's ``seq_per_img``). An image with more than K
  captions gives a random K of them each epoch; one with fewer repeats them in order.

The vocabulary is built from the training captions (:class:`~crossmedia.data.karpathy.Vocabulary`:
words seen more than ``min_count`` times, ``<eos>`` = 0 pads and ends, ``<unk>`` = 1).

References come in two forms. For the CIDEr-D *reward* they are the training captions as the
model can write them (vocabulary-mapped, cut at ``max_len`` words), and the reward's document
frequencies are computed from them once and cached next to the dataset
(:meth:`CaptionDataModule.reward_scorer`). For *evaluation* they are the raw sentences, which
pycocoevalcap tokenises itself (``raw_references``), or our token lists joined by spaces
(``token_references``) for the quick CIDEr-D of the validation loop.

:class:`CaptionData` is the interface the caption modules read from ``trainer.datamodule`` (and
nothing else): the vocabulary, the references in both forms, the reward scorer and, on data that
has them, the scenes' ground-truth objects. Any data module offering it can train a captioner.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from crossmedia.core.paths import data_root, home
from crossmedia.core.task import SplitLoaders, TaskDataModule
from crossmedia.data.caption_folders import ensure_caption_folder, read_caption_folder
from crossmedia.data.karpathy import CaptionedImage, Vocabulary, objects_by_filename, verify_images
from crossmedia.data.pixels import image_tensor

__all__ = ["CaptionData", "CaptionDataModule", "CaptionDataset", "image_tensor"]

SPLITS = ("train", "val", "test")


class CaptionDataset(Dataset):
    """One split: image (or features) + index, and for training the encoded captions."""

    def __init__(self, records: list[CaptionedImage], *, image_size: int, vocabulary: Vocabulary | None = None,
                 max_len: int = 16, captions_per_image: int = 5, features=None, seed: int = 0):
        self.records, self.image_size, self.features = records, image_size, features
        self.vocabulary, self.max_len, self.per_image = vocabulary, max_len, captions_per_image
        self.seed, self.epoch = seed, 0
        if vocabulary is not None:
            self.encoded = [torch.tensor([vocabulary.encode(c, max_len, pad=True) for c in r.captions], dtype=torch.long)
                            for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def _captions(self, index: int) -> torch.Tensor:
        encoded = self.encoded[index]
        if len(encoded) > self.per_image:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            return encoded[np.sort(rng.choice(len(encoded), self.per_image, replace=False))]
        return encoded[torch.arange(self.per_image) % len(encoded)]

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        item: dict = {"index": index}
        if self.features is not None:
            item["feats"] = self.features.get(record.image_id)
        else:
            with Image.open(record.path) as image:
                item["images"] = image_tensor(image, self.image_size)
        if self.vocabulary is not None:
            item["captions"] = self._captions(index)
        return item


def collate(items: list[dict]) -> dict:
    batch = {"index": torch.tensor([item["index"] for item in items], dtype=torch.long)}
    if "images" in items[0]:
        batch["images"] = torch.stack([item["images"] for item in items])
    else:
        from crossmedia.data.features import pad_features

        batch["feats"], batch["mask"] = pad_features([item["feats"] for item in items])
    if "captions" in items[0]:
        batch["captions"] = torch.stack([item["captions"] for item in items])
    return batch


@runtime_checkable
class CaptionData(Protocol):
    """What a caption module reads from its data module (after ``setup``); ``split`` is
    ``"train"``, ``"val"`` or ``"test"``, and the i-th entry of each list belongs to the image at
    position i of the split (a batch's ``index``)."""

    vocabulary: Vocabulary | None
    """Built from the training captions; a model created without ``vocab`` takes it."""

    def reward_references(self) -> list[list[str]]:
        """Training references as the model can write them (vocabulary-mapped, cut at max_len words)."""

    def reward_scorer(self):
        """CIDEr-D with document frequencies of :meth:`reward_references`."""

    def raw_references(self, split: str) -> list[list[str]]:
        """Raw reference sentences (pycocoevalcap tokenises them)."""

    def token_references(self, split: str) -> list[list[str]]:
        """Our tokens of each reference, joined by spaces (the validation CIDEr-D)."""

    def scene_objects(self, split: str) -> list[list[dict]] | None:
        """Ground-truth objects of each image (dicts with ``colour``, ``shape`` ...), or None."""


class CaptionDataModule(SplitLoaders, TaskDataModule):
    """Train / val / test loaders of a caption dataset (built-in ``scenes``, or a prepared
    ``coco-captions`` / ``flickr30k`` folder, or any folder holding a Karpathy JSON + meta.json).

    ``features`` points at precomputed features (a folder of ``<image_id>.npz``, an ``.h5`` or an
    ``.npz``); images are then never opened and the model must be built with ``feature_dim``.
    Batches: see the module docstring; implements :class:`CaptionData`.
    """

    collate = staticmethod(collate)

    def __init__(self, *, dataset: str = "scenes", root: str | None = None, features: str | None = None,
                 image_size: int = 64, batch_size: int = 50, eval_batch_size: int = 250, min_count: int = 5,
                 max_len: int = 16, captions_per_image: int = 5, num_workers: int = 0, check_images: bool = True):
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root) if root is not None else data_root() / dataset
        self.records: dict[str, list[CaptionedImage]] = {}
        self.vocabulary: Vocabulary | None = None
        self.datasets: dict[str, CaptionDataset] = {}
        self._reward_scorer = None
        self._feature_store = None
        self._objects_by_name: dict | None = None

    def _ensure(self) -> None:
        ensure_caption_folder(self.root, self.hparams.dataset)

    def prepare_data(self) -> None:
        self._ensure()

    def setup(self, stage: str | None = None) -> None:
        if self.vocabulary is not None:
            return
        self._ensure()
        records = read_caption_folder(self.root)
        self.records = {split: [r for r in records if r.split == split] for split in SPLITS}
        for split in ("train", "test"):
            if not self.records[split]:
                raise ValueError(f"{self.root}: the caption file has no '{split}' images; a Karpathy split needs "
                                 f"train, val and test entries")
        if self.hparams.features:
            from crossmedia.data.features import FeatureStore

            self._feature_store = FeatureStore.open(self.hparams.features)
            self._feature_store.check([r.image_id for r in records])
        elif self.hparams.check_images:
            verify_images(records)
        self.vocabulary = Vocabulary.build((c for r in self.records["train"] for c in r.captions),
                                           min_count=self.hparams.min_count)
        common = dict(image_size=self.hparams.image_size, features=self._feature_store)
        self.datasets = {
            "train": CaptionDataset(self.records["train"], vocabulary=self.vocabulary, max_len=self.hparams.max_len,
                                    captions_per_image=self.hparams.captions_per_image, **common),
            "val": CaptionDataset(self.records["val"] or self.records["test"], **common),
            "test": CaptionDataset(self.records["test"], **common),
        }

    # references

    def split_records(self, split: str) -> list[CaptionedImage]:
        if split == "val":
            return self.records["val"] or self.records["test"]
        return self.records[split]

    def reward_references(self) -> list[list[str]]:
        """Training references as the model can write them: vocabulary-mapped, cut at max_len words."""
        vocab, max_len = self.vocabulary, self.hparams.max_len
        return [[vocab.decode(vocab.encode(c, max_len)) for c in r.captions] for r in self.records["train"]]

    def raw_references(self, split: str) -> list[list[str]]:
        return [list(r.raw) for r in self.split_records(split)]

    def token_references(self, split: str) -> list[list[str]]:
        return [[" ".join(c) for c in r.captions] for r in self.split_records(split)]

    def scene_objects(self, split: str) -> list[list[dict]] | None:
        """The ground-truth objects of each image of ``split`` when the caption file has them (the
        built-in ``scenes`` does: ``objects`` per entry), else None. The caption file is read for
        them once, on the first call; keyed by file name."""
        if self._objects_by_name is None:
            self._objects_by_name = objects_by_filename(self.root)
        objects = [self._objects_by_name.get(record.path.name) for record in self.split_records(split)]
        return None if any(o is None for o in objects) else objects

    def reward_scorer(self):
        """CIDEr-D with document frequencies of the training references, cached on disk under
        ``<home>/cider-df`` (keyed by the references; never in the dataset folder, which may be a user's)."""
        from crossmedia.tasks.caption.cider import CiderD

        if self._reward_scorer is None:
            refs = self.reward_references()
            key = hashlib.sha256("\n".join("\t".join(r) for r in refs).encode()).hexdigest()[:16]
            cache = home() / "cider-df" / f"train-{key}.json"
            if cache.is_file():
                self._reward_scorer = CiderD.load(cache)
            else:
                self._reward_scorer = CiderD.from_references(refs)
                try:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    partial = cache.with_suffix(".partial")
                    self._reward_scorer.save(partial)
                    partial.replace(cache)
                except OSError:  # a read-only home: keep it in memory only
                    pass
        return self._reward_scorer

    # loaders

    def train_dataloader(self) -> DataLoader:
        if self.trainer is not None:
            self.datasets["train"].epoch = self.trainer.current_epoch
        return super().train_dataloader()
