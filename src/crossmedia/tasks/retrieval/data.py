"""The image–text retrieval DataModule over a Karpathy-format caption folder (built-in ``scenes``)
or a folder of VSE++'s precomputed image features.

A caption folder is found, generated (``scenes``) or checked exactly as the caption task does it
(:func:`crossmedia.data.caption_folders.ensure_caption_folder`, then :func:`read_caption_folder`). A folder
in VSE++'s precomputed layout (``{split}_ims.npy`` + ``{split}_caps.txt``, read by
:func:`crossmedia.data.vse_features.read_vse_precomp`; ``format="auto"`` recognises it by those
names) is read in place: ``train`` trains, ``dev`` validates on its first 5,000 captions as VSE++
does (all of ``test`` when there is no dev split), ``test_split`` (``test``, or COCO's ``testall``)
tests, and batches carry ``feats`` (B, D_f) float32 instead of ``images``; ``feature_dim`` is D_f
(None for images), which a retrieval module reads to build its precomputed-feature encoder. In
both cases the vocabulary is built from the training captions
(:class:`~crossmedia.data.karpathy.Vocabulary`: words seen more than ``min_count`` times, ``<eos>``
= 0 pads, ``<unk>`` = 1).

Batches are dicts (B images, S = ``image_size``, L = ``max_len + 1``):

* training — one item per image per epoch: ``images`` (B, 3, S, S) float in [−1, 1],
  ``captions`` (B, L) long, **one caption of the image drawn at random** each time it is loaded
  (torch's generator, so ``seed_everything`` makes it repeatable), ``lengths`` (B,) long (its
  words, ``<eos>`` not counted) and ``index`` (B,) long (the image's position in the split). An
  image is in a batch at most once, so every other row of a batch is a true negative. (VSE++
  iterates over captions instead, so an image may meet itself as a negative; one epoch here is a
  fifth of one of its epochs.)
* evaluation (val, test) — ``images`` (B, 3, S, S), ``captions`` (B, 5, L), ``lengths`` (B, 5)
  and ``index`` (B,): every image with its 5 captions, which is what
  :class:`crossmedia.metrics.retrieval.RetrievalRecall` takes (caption j of the split belongs to
  image j // 5 once flattened in position order).

Five captions per evaluated image, the protocol's rule: an image with more (COCO has a few with 6
or 7) is evaluated on its **first 5**, as VSE++'s precomputed data and Karpathy-split papers do;
an image with fewer is refused at ``setup`` with a ValueError naming the file and the image.
Training uses every caption. The training loader drops the last, smaller batch (``drop_last``),
so under DDP every process gathers equally many rows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from crossmedia.core.paths import data_root
from crossmedia.core.task import SplitLoaders, TaskDataModule
from crossmedia.data.caption_folders import ensure_caption_folder, read_caption_folder
from crossmedia.data.karpathy import CaptionedImage, Vocabulary, verify_images
from crossmedia.data.pixels import image_tensor
from crossmedia.data.vse_features import (VSEPP_DEV_CAPTIONS, looks_like_vse_precomp, read_vse_precomp,
                                          vse_precomp_splits)

__all__ = ["CAPTIONS_PER_IMAGE", "RetrievalDataModule", "RetrievalDataset", "PrecompRetrievalDataset", "image_tensor",
           "encode_captions"]

CAPTIONS_PER_IMAGE = 5  # the evaluation protocol's (VSE++ i2t / t2i)
SPLITS = ("train", "val", "test")


def encode_captions(vocabulary: Vocabulary, captions: list[list[str]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (ids (C, max_len + 1) long padded with 0, lengths (C,) long, at least 1).

    A caption whose words are all cut (none) is impossible here: captions have at least one token.
    """
    ids = torch.tensor([vocabulary.encode(c, max_len, pad=True) for c in captions], dtype=torch.long)  # (C, L)
    lengths = torch.tensor([min(len(c), max_len) for c in captions], dtype=torch.long)  # (C,)
    return ids, lengths


class RetrievalDataset(Dataset):
    """One split: image + index, and one random caption (training) or the first 5 (evaluation)."""

    def __init__(self, records: list[CaptionedImage], *, vocabulary: Vocabulary, image_size: int, max_len: int,
                 train: bool):
        self.records, self.image_size, self.train = records, image_size, train
        self.encoded = [encode_captions(vocabulary, r.captions if train else r.captions[:CAPTIONS_PER_IMAGE],
                                        max_len) for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        with Image.open(self.records[index].path) as image:
            item = {"index": index, "images": image_tensor(image, self.image_size)}
        return _with_captions(item, *self.encoded[index], self.train)


def _with_captions(item: dict, ids: torch.Tensor, lengths: torch.Tensor, train: bool) -> dict:
    """``item`` with ``captions`` and ``lengths``: one random caption (training) or all given (evaluation)."""
    if train:
        pick = int(torch.randint(len(ids), ()))
        ids, lengths = ids[pick], lengths[pick]  # (L,), ()
    item["captions"], item["lengths"] = ids, lengths
    return item


class PrecompRetrievalDataset(Dataset):
    """One split of VSE++'s precomputed layout: feature row + index, and one random caption (training)
    or the 5 (evaluation). ``features`` (N, D_f) float32, one row per image; ``captions`` 5N token lists."""

    def __init__(self, features: np.ndarray, captions: list[list[str]], *, vocabulary: Vocabulary, max_len: int,
                 train: bool):
        self.features, self.train = features, train
        ids, lengths = encode_captions(vocabulary, captions, max_len)  # (5N, L), (5N,)
        self.ids = ids.view(len(features), CAPTIONS_PER_IMAGE, -1)  # (N, 5, L)
        self.lengths = lengths.view(len(features), CAPTIONS_PER_IMAGE)  # (N, 5)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        item = {"index": index, "feats": torch.from_numpy(np.array(self.features[index], dtype=np.float32))}
        return _with_captions(item, self.ids[index], self.lengths[index], self.train)


def collate(items: list[dict]) -> dict:
    """Stack a list of items: images (B, 3, S, S) or feats (B, D_f), captions (B, L) or (B, 5, L),
    lengths (B,) or (B, 5)."""
    visual = "images" if "images" in items[0] else "feats"
    return {"index": torch.tensor([item["index"] for item in items], dtype=torch.long),
            **{key: torch.stack([item[key] for item in items]) for key in (visual, "captions", "lengths")}}


def _check_five(records: list[CaptionedImage], split: str, root: Path) -> None:
    short = next((r for r in records if len(r.captions) < CAPTIONS_PER_IMAGE), None)
    if short is not None:
        raise ValueError(f"{root}: the {split} image {short.path.name} (id {short.image_id}) has "
                         f"{len(short.captions)} caption(s); retrieval evaluation needs {CAPTIONS_PER_IMAGE} per image "
                         f"(caption j belongs to image j // {CAPTIONS_PER_IMAGE}): add captions to it or move it to "
                         f"the train split")


class RetrievalDataModule(SplitLoaders, TaskDataModule):
    """Train / val / test loaders of a caption folder for image–text retrieval (batches: module docstring).

    ``dataset`` names a registered caption dataset (``scenes`` is generated on first use) whose
    folder is ``data/<dataset>`` unless ``root`` points elsewhere (any folder with a Karpathy JSON
    or COCO caption files, or VSE++'s precomputed features). ``val`` falls back to ``test`` when the
    folder has no val images. ``format``: ``"auto"`` (a folder with ``{split}_ims.npy`` +
    ``{split}_caps.txt`` is precomputed features, anything else a caption folder), ``"karpathy"``
    or ``"vse-precomp"``; ``test_split``: the precomputed split tested (``"test"`` or ``"testall"``).
    ``vocabulary`` and ``feature_dim`` (D_f of precomputed features, None for images) are set by
    :meth:`setup`.
    """

    collate = staticmethod(collate)

    def __init__(self, *, dataset: str = "scenes", root: str | None = None, image_size: int = 64,
                 batch_size: int = 128, eval_batch_size: int = 250, min_count: int = 4, max_len: int = 32,
                 num_workers: int = 0, check_images: bool = True, drop_last: bool = True,
                 format: Literal["auto", "karpathy", "vse-precomp"] = "auto",
                 test_split: Literal["test", "testall"] = "test"):
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root) if root is not None else data_root() / dataset
        self.vocabulary: Vocabulary | None = None
        self.feature_dim: int | None = None
        self.datasets: dict[str, Dataset] = {}

    @property
    def precomputed(self) -> bool:
        """True when the folder is read as VSE++'s precomputed features (``format``, or recognised by ``auto``)."""
        fmt = self.hparams.format
        return fmt == "vse-precomp" or (fmt == "auto" and looks_like_vse_precomp(self.root))

    def prepare_data(self) -> None:
        if not self.precomputed:
            ensure_caption_folder(self.root, self.hparams.dataset)

    def _setup_precomputed(self) -> None:
        found = vse_precomp_splits(self.root)
        test = self.hparams.test_split
        missing = [split for split in ("train", test) if split not in found]
        if missing:  # read_vse_precomp's error names the files and lists the folder
            read_vse_precomp(self.root, missing[0])
        splits = {"train": read_vse_precomp(self.root, "train"), "test": read_vse_precomp(self.root, test)}
        splits["val"] = read_vse_precomp(self.root, "dev", max_captions=VSEPP_DEV_CAPTIONS) if "dev" in found \
            else splits["test"]
        dims = {name: split.images.shape[1] for name, split in splits.items()}
        if len(set(dims.values())) > 1:
            raise ValueError(f"{self.root}: the splits' image features differ in width ({dims}); every "
                             f"{{split}}_ims.npy must come from the same network")
        tokens = {name: split.tokens() for name, split in splits.items()}
        for name, split in splits.items():
            empty = next((i for i, words in enumerate(tokens[name]) if not words), None)
            if empty is not None:
                raise ValueError(f"{self.root / (split.split + '_caps.txt')}: line {empty + 1} ({split.captions[empty]!r}) "
                                 f"has no word once punctuation is removed; write a caption with words there")
        self.vocabulary = Vocabulary.build(tokens["train"], min_count=self.hparams.min_count)
        self.feature_dim = dims["train"]
        self.datasets = {name: PrecompRetrievalDataset(splits[name].images, tokens[name], vocabulary=self.vocabulary,
                                                       max_len=self.hparams.max_len, train=name == "train")
                         for name in SPLITS}

    def setup(self, stage: str | None = None) -> None:
        if self.vocabulary is not None:
            return
        if self.precomputed:
            return self._setup_precomputed()
        ensure_caption_folder(self.root, self.hparams.dataset)
        records = read_caption_folder(self.root)
        by_split = {split: [r for r in records if r.split == split] for split in SPLITS}
        for split in ("train", "test"):
            if not by_split[split]:
                raise ValueError(f"{self.root}: the caption file has no '{split}' images; a Karpathy split needs "
                                 f"train, val and test entries")
        for split in ("test", "val"):
            _check_five(by_split[split], split, self.root)
        by_split["val"] = by_split["val"] or by_split["test"]
        if self.hparams.check_images:
            verify_images(records)
        self.vocabulary = Vocabulary.build((c for r in by_split["train"] for c in r.captions),
                                           min_count=self.hparams.min_count)
        common = dict(vocabulary=self.vocabulary, image_size=self.hparams.image_size, max_len=self.hparams.max_len)
        self.datasets = {split: RetrievalDataset(by_split[split], train=split == "train", **common) for split in SPLITS}

    def train_dataloader(self) -> DataLoader:
        hp, dataset = self.hparams, self.datasets["train"]
        return DataLoader(dataset, batch_size=hp.batch_size, shuffle=True, collate_fn=collate,
                          num_workers=hp.num_workers, persistent_workers=hp.num_workers > 0,
                          drop_last=hp.drop_last and len(dataset) > hp.batch_size)  # never an empty epoch
