"""The classification DataModule: single-label images (a DeepHash list folder or an ImageFolder) or clips.

Batches are ``(x, y)`` pairs:

* ``x`` float (B, 3, S, S) images resized to ``S = image_size`` — with ``kind="clips"`` (B, T, 3, S, S)
  clips of ``T = frames`` frames — normalised with mean 0.5 / std 0.5 (values in [-1, 1]), plus the
  dataset's fixed Gaussian pixel noise when ``noise > 0``;
* ``y`` long (B,) class ids.

Three layouts are read (``root`` defaults to ``data_root()/dataset``):

* a DeepHash list folder (``train.txt``, ``query.txt``, ``database.txt``, one-hot labels): the
  built-in ``digits`` and the prepared ``cifar10`` / ``cifar100``. ``train`` is the train list,
  ``val`` the database items that are neither training items nor queries, ``test`` the queries
  (digits: 1,000 / 497 / 300; cifar100: 45,000 / 5,000 / 10,000).
* ImageFolder splits: ``root/train/CLASS/*.png`` and ``root/val/...`` and/or ``root/test/...``
  (a missing one of val/test stands in for the other, as ImageNet's val does for test).
* ``kind="clips"``: a pose-clip folder (:mod:`crossmedia.data.poseclips`; the built-in ``puppets``,
  9 actions): each clip's action is its class, its own ``split`` field its split, and ``T`` frames
  are taken evenly spread over it (8 of the puppets' 16: frames 0, 2, ..., 14).

``train_per_class`` keeps that many training images per class (a seeded choice, ``split_seed``):
the few-shot setting the zoo's classify entries use to keep the baseline well below 100%. All
splits are decoded once into memory (uint8): the datasets this task trains on are small.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch.utils.data import Dataset
from torchvision.transforms import v2

from crossmedia.core.paths import data_root
from crossmedia.core.task import SplitLoaders, TaskDataModule
from crossmedia.data.deephash import DeepHashListError, few_per_class, list_file_for, read_list
from crossmedia.data.folder import read_meta
from crossmedia.data.imagefolder import load_image_array, read_image_folder
from crossmedia.data.poseclips import clip_splits, even_frames, read_pose_folder
from crossmedia.data.registry import ensure

__all__ = ["ImageTensorDataset", "ClassifyDataModule", "read_split_items", "read_clip_items", "KINDS"]

KINDS = ("images", "clips")
_MEAN, _STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


# helpers

def _single_labels(list_file: Path, items: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Class ids (N,) of one-hot list rows; a row with more or fewer than one label is refused."""
    labels = np.stack([row for _, row in items])  # (N, C)
    bad = np.flatnonzero(labels.sum(axis=1) != 1)
    if bad.size:
        raise DeepHashListError(f"{list_file}: item {bad[0] + 1} ({items[bad[0]][0]}) has {labels[bad[0]].sum()} "
                                f"labels; classification needs exactly one per image (multi-label data: "
                                f"use the hashing or caption tasks)")
    return labels.argmax(axis=1)


def read_split_items(root: Path) -> tuple[dict[str, tuple[list[Path], np.ndarray]], tuple[str, ...]]:
    """``{split: (image paths, class ids)}`` for train / val / test, and the class names, of ``root``."""
    root = Path(root)
    if list_file_for(root, "train").is_file():
        meta = read_meta(root) or {}
        lists = {}
        for split in ("train", "query", "database"):
            list_file = list_file_for(root, split)
            items = read_list(list_file, root=root, num_classes=meta.get("num_classes"))
            lists[split] = ([root / path for path, _ in items], _single_labels(list_file, items))
            width = len(items[0][1])  # C, the label columns
        held = {p for p in lists["train"][0]} | {p for p in lists["query"][0]}
        keep = [i for i, p in enumerate(lists["database"][0]) if p not in held]
        val = ([lists["database"][0][i] for i in keep], lists["database"][1][keep])
        names = tuple(meta.get("class_names") or (str(i) for i in range(width)))
        return {"train": lists["train"], "val": val, "test": lists["query"]}, names
    if (root / "train").is_dir():
        train_paths, train_labels, names = read_image_folder(root / "train")
        splits = {"train": (train_paths, train_labels)}
        for split in ("val", "test"):
            if (root / split).is_dir():
                paths, labels, found = read_image_folder(root / split)
                if found != names:
                    raise ValueError(f"{root / split}: class folders {list(found)} differ from train's {list(names)}")
                splits[split] = (paths, labels)
        if "val" not in splits and "test" not in splits:
            raise FileNotFoundError(f"{root}: an ImageFolder dataset needs train/ and val/ or test/ sub-folders")
        splits.setdefault("val", splits.get("test"))
        splits.setdefault("test", splits["val"])
        return splits, names
    raise FileNotFoundError(f"{root} holds neither DeepHash lists (train.txt, query.txt, database.txt) nor "
                            f"ImageFolder splits (train/CLASS/*.png and val/ or test/)")


def read_clip_items(root: Path, frames: int) -> tuple[dict[str, tuple[list[tuple[Path, ...]], np.ndarray]],
                                                     tuple[str, ...]]:
    """``{split: (clips as tuples of ``frames`` frame paths, action ids)}`` and the action names of a
    pose-clip folder; a clip shorter than ``frames`` is an error naming it."""
    root = Path(root)
    meta = read_meta(root) or {}
    if not (root / str(meta.get("file", "annotations.json"))).is_file():
        raise FileNotFoundError(f"{root}: kind='clips' reads a pose-clip folder (annotations.json with a 'videos' "
                                f"list of actions and splits, as the built-in 'puppets' writes): set "
                                f"--data.init_args.dataset puppets, or kind 'images' for image folders")
    clips, actions = read_pose_folder(root)
    short = next((c for c in clips if c.num_frames < frames), None)
    if short is not None:
        raise ValueError(f"{root}: clip {short.video_id!r} has {short.num_frames} frames, fewer than frames={frames}; "
                         f"lower --data.init_args.frames")
    action_id = {name: i for i, name in enumerate(actions)}
    splits = {}
    for split, members in clip_splits(clips, root).items():
        chosen = [clips[i] for i in members]
        splits[split] = ([tuple(c.frames[t] for t in even_frames(c.num_frames, frames)) for c in chosen],
                         np.array([action_id[c.action] for c in chosen], dtype=np.int64))
    return splits, tuple(actions)


def _load_item(item: Path | tuple[Path, ...], size: int) -> np.ndarray:
    """An image (S, S, 3) or a clip of frame paths (T, S, S, 3), uint8."""
    if isinstance(item, tuple):
        return np.stack([load_image_array(path, size) for path in item])  # (T, S, S, 3)
    return load_image_array(item, size)


# classes

class ImageTensorDataset(Dataset):
    """Images held as uint8 (N, 3, S, S), or clips as (N, T, 3, S, S), and class ids (N,); items are
    ``(x, y)`` as the module docstring says.

    ``noise`` adds N(0, noise²) to the normalised pixels, one fixed draw per image (seeded by
    ``noise_seed``): the same noisy image every epoch, a harder dataset rather than an augmentation.
    ``augment`` draws one transform per item: all frames of a clip move together.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, noise: float = 0.0, noise_seed: int = 0,
                 augment: v2.Transform | None = None):
        self.images, self.labels, self.augment = images, labels, augment
        generator = torch.Generator().manual_seed(noise_seed)
        self.noise = noise * torch.randn(images.shape, generator=generator) if noise > 0 else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = v2.functional.normalize(self.images[index].float() / 255, _MEAN, _STD)  # (3, S, S) or (T, 3, S, S)
        if self.noise is not None:
            x = x + self.noise[index]
        if self.augment is not None:
            x = self.augment(x)
        return x, self.labels[index]


class ClassifyDataModule(SplitLoaders, TaskDataModule):
    """Train / val / test loaders of a single-label image or clip dataset (layouts: module docstring).

    Each batch is ``(x, y)``: float images (B, 3, S, S), or clips (B, T, 3, S, S), normalised to
    [-1, 1] and long class ids (B,).

    Args:
        dataset: registry name (built-in ``digits``, ``puppets`` for clips; prepared ``cifar10``,
            ``cifar100``) or any name when ``root`` points at a folder of a layout above.
        root: the dataset folder; default ``data_root()/dataset``.
        train_per_class: keep this many training images per class (None: all), drawn with ``split_seed``.
        noise: std of the fixed Gaussian pixel noise added to every image of every split (0: none).
        image_size: S.
        train_augment: random shifts (±2 px at S = 32) and rotations (±10°) of training images.
        kind: ``"images"`` or ``"clips"`` (a pose-clip folder; the class is the clip's action).
        frames: T, the frames taken evenly from each clip (``kind="clips"``).
    """

    def __init__(self, *, dataset: str = "digits", root: str | None = None, train_per_class: int | None = None,
                 split_seed: int = 0, noise: float = 0.0, image_size: int = 32, train_augment: bool = False,
                 batch_size: int = 32, eval_batch_size: int = 256, num_workers: int = 0, kind: str = "images",
                 frames: int = 8) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r} (--data.init_args.kind)")
        self.save_hyperparameters()
        self.root = Path(root) if root is not None else data_root() / dataset
        self.datasets: dict[str, ImageTensorDataset] = {}
        self.class_names: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def prepare_data(self) -> None:
        """Generate a built-in dataset the first time; a folder of a layout above is used as it is."""
        if self.hparams.kind == "clips" or not (list_file_for(self.root, "train").is_file()
                                                or (self.root / "train").is_dir()):
            ensure(self.hparams.dataset, self.root)

    def setup(self, stage: str | None = None) -> None:
        """Decode every split once (the training subset only when ``train_per_class`` is set)."""
        if self.datasets:
            return
        hp = self.hparams
        if hp.kind == "clips":
            splits, self.class_names = read_clip_items(self.root, hp.frames)
        else:
            splits, self.class_names = read_split_items(self.root)
        if hp.train_per_class is not None:
            paths, labels = splits["train"]
            keep = few_per_class(labels, hp.train_per_class, hp.split_seed)
            splits["train"] = ([paths[i] for i in keep], labels[keep])
            if len(keep) < len(paths):  # the cards' few-shot recipe; never a silent cut of a user's data
                rank_zero_warn(f"classify: training on {len(keep)} of the {len(paths)} training images of {self.root} "
                               f"({hp.train_per_class} per class: train_per_class); "
                               f"--data.init_args.train_per_class=null trains on all")
        augment = v2.RandomAffine(degrees=10, translate=(2 / 32, 2 / 32)) if hp.train_augment else None
        decoded = {}  # id of a split's (paths, labels) -> its dataset: a split standing in for another is shared
        for number, (split, items) in enumerate(splits.items()):
            if id(items) in decoded:
                self.datasets[split] = decoded[id(items)]
                continue
            paths, labels = items
            images = np.stack([_load_item(path, hp.image_size) for path in paths])  # (N, [T,] S, S, 3)
            self.datasets[split] = decoded[id(items)] = ImageTensorDataset(
                torch.from_numpy(images).movedim(-1, -3).contiguous(),  # (N, [T,] 3, S, S)
                torch.from_numpy(np.asarray(labels)),
                noise=hp.noise, noise_seed=number, augment=augment if split == "train" else None)

    def train_dataloader(self):
        """Shuffled training batches; the order follows the global seed (``seed_everything``)."""
        if not self.datasets:
            self.setup("fit")
        return self.split_loader("train", True)

    def val_dataloader(self):
        if not self.datasets:
            self.setup("validate")
        return self.split_loader("val", False)

    def test_dataloader(self):
        if not self.datasets:
            self.setup("test")
        return self.split_loader("test", False)
