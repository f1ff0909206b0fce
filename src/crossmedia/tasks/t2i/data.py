"""The text-to-image (and speech-to-image) DataModule: captioned images, optionally with spoken captions.

A Karpathy-format caption folder (the built-in ``scenes``; a prepared ``coco-captions``,
``flickr30k``, ``cub-text`` or ``flowers-text`` folder; any folder with a Karpathy JSON + meta.json)
gives images and their captions. With ``audio=True`` the folder is the built-in ``spoken-scenes``
(or any Karpathy JSON whose sentences carry an ``audio`` field, see :mod:`crossmedia.data.speech`)
and each item also carries the log-mel spectrogram of a spoken caption.

Images are decoded once and held in memory as uint8 (6,000 64x64 scenes are 74 MB), so a GAN
epoch costs no PNG decoding. Batches are dicts (B items, S = ``image_size``):

* ``images`` (B, 3, S, S) float in [-1, 1] (mean/std 0.5, as the generators' tanh output);
* ``index`` (B,) long: the image's position in its split (keys ``scene_objects`` and references);
* ``caption`` (B,) long: which caption of the image was drawn — a random one per item in training
  (among the spoken ones when ``audio``), caption 0 in validation and test, so that evaluation
  is deterministic;
* ``words`` list of B token lists and ``texts`` list of B raw sentences: the module encodes them
  with its own text encoder's vocabulary (so a data module never has to agree with a model on
  word ids);
* with ``audio``: ``mel`` (B, T, n_mels) float log-mel frames, zero-padded, ``mel_lengths`` (B,)
  and ``audio``, the B WAV paths.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from crossmedia.core.paths import data_root
from crossmedia.core.task import SplitLoaders, TaskDataModule
from crossmedia.data.caption_folders import ensure_caption_folder, read_caption_folder
from crossmedia.data.karpathy import CaptionedImage, objects_by_filename, verify_images
from crossmedia.data.pixels import image_pixels

__all__ = ["T2IDataModule", "T2IDataset", "load_images"]

SPLITS = ("train", "val", "test")


def load_images(paths: list[Path], size: int, *, progress: bool = False) -> torch.Tensor:
    """Decode images to a (N, 3, size, size) uint8 tensor (:func:`image_pixels` of each)."""
    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    for i, path in enumerate(tqdm(paths, desc="images", disable=not progress, leave=False)):
        with Image.open(path) as image:
            out[i] = image_pixels(image, size)
    return out


class T2IDataset(Dataset):
    """One split: image, one caption (random in training, the first otherwise), its audio."""

    def __init__(self, records: list[CaptionedImage], pixels: torch.Tensor, *, train: bool,
                 audio: list[list[Path | None]] | None = None, n_mels: int = 40, seed: int = 0) -> None:
        self.records, self.pixels, self.train, self.audio, self.n_mels = records, pixels, train, audio, n_mels
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.records)

    def _choices(self, index: int) -> list[int]:
        if self.audio is None:
            return list(range(len(self.records[index].captions)))
        return [k for k, path in enumerate(self.audio[index]) if path is not None]

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        choices = self._choices(index)
        if not choices:
            raise ValueError(f"{record.path}: no {'spoken ' if self.audio is not None else ''}caption to draw")
        k = int(self.rng.choice(choices)) if self.train else choices[0]
        item = {"images": self.pixels[index].float().div_(127.5).sub_(1.0), "index": index, "caption": k,
                "words": list(record.captions[k]), "texts": record.raw[k]}
        if self.audio is not None:
            from crossmedia.data.audio import log_mel, read_wav

            waveform, rate = read_wav(self.audio[index][k])
            item["audio"] = str(self.audio[index][k])
            item["mel"] = log_mel(torch.from_numpy(waveform), sample_rate=rate, n_mels=self.n_mels)  # (T, M)
        return item


def collate(items: list[dict]) -> dict:
    """Stack tensors; keep word lists and sentences as lists; pad mel frames with zeros."""
    batch = {"images": torch.stack([it["images"] for it in items]),
             "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
             "caption": torch.tensor([it["caption"] for it in items], dtype=torch.long),
             "words": [it["words"] for it in items], "texts": [it["texts"] for it in items]}
    if "mel" in items[0]:
        lengths = torch.tensor([len(it["mel"]) for it in items], dtype=torch.long)
        mel = torch.zeros(len(items), int(lengths.max()), items[0]["mel"].shape[1])
        for i, it in enumerate(items):
            mel[i, : len(it["mel"])] = it["mel"]
        batch["mel"], batch["mel_lengths"], batch["audio"] = mel, lengths, [it["audio"] for it in items]
    return batch


class T2IDataModule(SplitLoaders, TaskDataModule):
    """Train / val / test loaders of captioned (optionally spoken) images; batches: module docstring.

    Args:
        dataset: registry name (``scenes``; ``spoken-scenes`` with ``audio``; a prepared caption dataset).
        root: the dataset folder (default ``data/<dataset>``).
        image_size: S; images are resized to S x S.
        audio: read spoken captions (the Karpathy sentences' ``audio`` field) and yield log-mels.
        n_mels: mel bands of the audio front end.
        eval_images: use only the first N images of val and test (None: all), for quick runs.
    """

    collate = staticmethod(collate)

    def __init__(self, *, dataset: str = "scenes", root: str | None = None, image_size: int = 64,
                 batch_size: int = 64, eval_batch_size: int = 250, audio: bool = False, n_mels: int = 40,
                 eval_images: int | None = None, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root) if root is not None else data_root() / dataset
        self.records: dict[str, list[CaptionedImage]] = {}
        self.datasets: dict[str, T2IDataset] = {}
        self._objects_by_name: dict | None = None

    def _ensure(self) -> None:
        ensure_caption_folder(self.root, self.hparams.dataset)

    def prepare_data(self) -> None:
        self._ensure()

    def _read(self) -> tuple[list[CaptionedImage], list[list[Path | None]] | None]:
        if not self.hparams.audio:
            return read_caption_folder(self.root), None
        from crossmedia.data.speech import read_spoken_folder, verify_audio

        spoken = read_spoken_folder(self.root)
        verify_audio(spoken)
        return spoken, [list(r.audio) for r in spoken]

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self._ensure()
        records, audio = self._read()
        verify_images(records)
        limit = self.hparams.eval_images
        split_of = {split: [i for i, r in enumerate(records) if r.split == split] for split in SPLITS}
        if not split_of["val"]:
            split_of["val"] = split_of["test"]
        for split in ("train", "test"):
            if not split_of[split]:
                raise ValueError(f"{self.root}: the caption file has no '{split}' images; a Karpathy split needs "
                                 f"train, val and test entries")
        for split in SPLITS:
            keep = split_of[split] if split == "train" or limit is None else split_of[split][:limit]
            self.records[split] = [records[i] for i in keep]
            pixels = load_images([records[i].path for i in keep], self.hparams.image_size)
            self.datasets[split] = T2IDataset(self.records[split], pixels, train=split == "train",
                                              audio=None if audio is None else [audio[i] for i in keep],
                                              n_mels=self.hparams.n_mels, seed=self.hparams.seed)

    def scene_objects(self, split: str) -> list[list[dict]] | None:
        """Ground-truth objects of each image of ``split`` when the caption file has them (the
        built-in scenes do), else None."""
        if self._objects_by_name is None:
            self._objects_by_name = objects_by_filename(self.root)
        objects = [self._objects_by_name.get(record.path.name) for record in self.records[split]]
        return None if any(o is None for o in objects) else objects
