"""The pose-video DataModule: pose clips (PoseTrack / COCO-17 keypoint JSON + frames), whole or as frame pairs.

A folder in the PoseTrack-style layout read by :func:`crossmedia.data.posetrack.read_posetrack` —
the built-in ``puppets``, a prepared ``penn-action``, or any folder holding a ``meta.json`` whose
``file`` names such a JSON — gives clips: T frames of one person, their COCO-17 keypoints, an
action label and a split (the ``videos`` list). Every clip is cut to its first ``frames`` frames
(clips shorter than that are an error naming them: nothing is dropped silently).

Two modes, for the two stages of the method (Yang et al., ECCV 2018, arXiv 1807.11152):

* ``"clips"`` (PSGAN, the action classifier): pose sequences only; no image is decoded.
* ``"frames"`` (SCGAN, the pose estimator): also a (source, target) pair of frames of one clip per
  item — the appearance comes from the source frame, the pose from the target frame. Frames are
  decoded once and held in memory as uint8 (the 3,240 puppet clips x 16 frames at 64 x 64: 637 MB).

Batches are dicts (B items, T frames, S = ``image_size``, keypoints as (x, y, v) in the pixels of the
S x S frame, v = 0 absent; frames float in [-1, 1]):

* ``keypoints`` (B, T, 17, 3), ``action`` (B,) long, ``index`` (B,) long (the clip's position in its split);
* ``"frames"`` mode adds ``source`` / ``target`` (B, 3, S, S), ``source_keypoints`` /
  ``target_keypoints`` (B, 17, 3) and ``source_frame`` / ``target_frame`` (B,) long; with ``masks=True`` also
  ``source_mask`` / ``target_mask`` (B, S, S) uint8 clothes labels (0 background, 1 top, 2 bottom, 3 rest of
  the body: the built-in puppets' ``mask_file`` PNGs). In training both
  frames are drawn at random per item and epoch; in validation and test each clip gives
  ``eval_pairs`` fixed pairs (source frame 0, targets spread over the clip), so evaluation is
  deterministic.
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
from crossmedia.data.folder import read_meta
from crossmedia.data.poseclips import SPLITS, clip_splits, read_pose_folder
from crossmedia.data.posetrack import PoseClip
from crossmedia.data.registry import ensure

__all__ = ["PoseVideoDataModule", "PoseClipDataset", "eval_pairs", "read_pose_folder", "load_clip_frames",
           "load_clip_masks"]

MODES = ("clips", "frames")
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


def load_clip_frames(clips: list[PoseClip], frames: int, size: int, *, progress: bool = False) -> torch.Tensor:
    """Decode the first ``frames`` frames of each clip to a (N, frames, 3, size, size) uint8 tensor."""
    out = torch.empty(len(clips), frames, 3, size, size, dtype=torch.uint8)
    for i, clip in enumerate(tqdm(clips, desc="frames", disable=not progress, leave=False)):
        for t, path in enumerate(clip.frames[:frames]):
            with Image.open(path) as image:
                image = image.convert("RGB")
                if image.size != (size, size):
                    image = image.resize((size, size), Image.BILINEAR)
                out[i, t] = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    return out


def load_clip_masks(clips: list[PoseClip], frames: int, size: int, root: Path) -> torch.Tensor:
    """The per-frame label masks (``images[].mask_file`` of the folder's keypoint JSON, e.g. the puppets'
    clothes masks) of the first ``frames`` frames of each clip: (N, frames, size, size) uint8, resized
    with nearest neighbours. A frame without a ``mask_file`` is an error naming the JSON and the frame."""
    import json

    meta = read_meta(root) or {}
    json_path = root / str(meta.get("file", "annotations.json"))
    images = json.loads(json_path.read_text(encoding="utf-8")).get("images", [])
    mask_of = {str(root / str(im["file_name"])): im.get("mask_file") for im in images if "file_name" in im}
    out = torch.empty(len(clips), frames, size, size, dtype=torch.uint8)
    for i, clip in enumerate(clips):
        for t, path in enumerate(clip.frames[:frames]):
            name = mask_of.get(str(path))  # frames are root / file_name (read_pose_folder)
            if not name:
                raise ValueError(f"{json_path}: the image {path} has no 'mask_file'; masks=True needs per-frame "
                                 "label masks (the built-in puppets have them) -- set --data.init_args.masks false")
            with Image.open(root / name) as mask:
                if mask.size != (size, size):
                    mask = mask.resize((size, size), Image.NEAREST)
                out[i, t] = torch.from_numpy(np.asarray(mask, dtype=np.uint8).copy())
    return out


def _scaled_keypoints(clip: PoseClip, frames: int, size: int) -> torch.Tensor:
    """(frames, 17, 3) keypoints of the clip in the pixels of a size x size frame (pixel centres map
    to pixel centres: x' = (x + 0.5) · size / W − 0.5)."""
    kp = torch.from_numpy(np.asarray(clip.keypoints[:frames], dtype=np.float32)).clone()
    height, width = clip.size if clip.size is not None else _image_size(clip.frames[0])
    if (height, width) != (size, size):
        present = kp[..., 2] > 0
        kp[..., 0] = torch.where(present, (kp[..., 0] + 0.5) * size / width - 0.5, 0.0)
        kp[..., 1] = torch.where(present, (kp[..., 1] + 0.5) * size / height - 0.5, 0.0)
    return kp


def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.height, image.width


def eval_pairs(num_frames: int, clip_index: int, pairs: int) -> list[tuple[int, int]]:
    """The fixed (source, target) frame pairs of clip ``clip_index`` in evaluation: source 0, and
    ``pairs`` targets spread evenly over frames 1..T-1, shifted by the clip index so that every
    target frame is used across clips."""
    span = num_frames - 1
    if span < 1:
        return [(0, 0)] * pairs
    return [(0, 1 + (clip_index + j * span // pairs) % span) for j in range(pairs)]


class PoseClipDataset(Dataset):
    """One split: pose clips (``pixels`` None) or (source, target) frame pairs of them."""

    def __init__(self, keypoints: torch.Tensor, actions: torch.Tensor, pixels: torch.Tensor | None, *,
                 train: bool, pairs: int = 4, seed: int = 0, masks: torch.Tensor | None = None) -> None:
        self.keypoints, self.actions, self.pixels, self.train = keypoints, actions, pixels, train
        self.masks = masks
        self.pairs = 1 if pixels is None or train else pairs
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.keypoints) * self.pairs

    def __getitem__(self, item: int) -> dict:
        clip, j = divmod(item, self.pairs)
        out = {"keypoints": self.keypoints[clip], "action": int(self.actions[clip]), "index": clip}
        if self.pixels is None:
            return out
        frames = self.keypoints.shape[1]
        if self.train:
            s, t = (int(v) for v in self.rng.integers(0, frames, size=2))
        else:
            s, t = eval_pairs(frames, clip, self.pairs)[j]
        pixels = self.pixels[clip]
        out.update({"source": pixels[s].float().div_(127.5).sub_(1.0), "target": pixels[t].float().div_(127.5).sub_(1.0),
                    "source_keypoints": self.keypoints[clip, s], "target_keypoints": self.keypoints[clip, t],
                    "source_frame": s, "target_frame": t})
        if self.masks is not None:
            out.update({"source_mask": self.masks[clip, s], "target_mask": self.masks[clip, t]})
        return out


def collate(items: list[dict]) -> dict:
    batch = {key: torch.stack([it[key] for it in items]) if isinstance(items[0][key], torch.Tensor)
             else torch.tensor([it[key] for it in items], dtype=torch.long) for key in items[0]}
    return batch


class PoseVideoDataModule(SplitLoaders, TaskDataModule):
    """Train / val / test loaders of pose clips or frame pairs; batches: module docstring.

    Args:
        dataset: registry name (``puppets``; a prepared ``penn-action``), or any name with ``root``.
        root: the dataset folder (default ``data/<dataset>``).
        mode: ``"clips"`` (pose sequences) or ``"frames"`` (frame pairs too).
        frames: T, the frames taken from the start of each clip.
        image_size: S; frames are resized to S x S and keypoints scaled with them.
        eval_pairs: (source, target) pairs per clip in validation and test (``"frames"`` mode).
        eval_clips: use only the first N clips of val and test (None: all), for quick runs.
        masks: also deliver each frame's label mask (``"frames"`` mode; the puppets' clothes masks).
    """

    collate = staticmethod(collate)

    def __init__(self, *, dataset: str = "puppets", root: str | None = None, mode: str = "clips", frames: int = 16,
                 image_size: int = 64, batch_size: int = 32, eval_batch_size: int = 128, eval_pairs: int = 4,
                 eval_clips: int | None = None, num_workers: int = 0, seed: int = 0, masks: bool = False):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if masks and mode != "frames":
            raise ValueError("masks=True needs mode='frames' (masks come with frame pairs)")
        self.save_hyperparameters()
        self.root = Path(root) if root is not None else data_root() / dataset
        self.image_size = image_size
        self.actions: list[str] = []
        self.clips: dict[str, list[PoseClip]] = {}
        self.datasets: dict[str, PoseClipDataset] = {}

    def prepare_data(self) -> None:
        ensure(self.hparams.dataset, self.root)

    def setup(self, stage: str | None = None) -> None:
        """Read the clips; decode and hold only the splits ``stage`` uses (``test``: the test split)."""
        wanted = _STAGE_SPLITS.get(stage, SPLITS)
        if all(split in self.datasets for split in wanted):
            return
        ensure(self.hparams.dataset, self.root, progress=False)
        hp = self.hparams
        clips, self.actions = read_pose_folder(self.root)
        short = [c.video_id for c in clips if c.num_frames < hp.frames]
        if short:
            raise ValueError(f"{self.root}: {len(short)} clip(s) have fewer than frames={hp.frames} frames "
                             f"(first: {short[0]!r}); lower --data.init_args.frames")
        action_id = {a: i for i, a in enumerate(self.actions)}
        for split, members in clip_splits(clips, self.root).items():
            if split not in wanted or split in self.datasets:
                continue
            if split != "train" and hp.eval_clips is not None:
                members = members[: hp.eval_clips]
            chosen = [clips[i] for i in members]
            self.clips[split] = chosen
            keypoints = torch.stack([_scaled_keypoints(c, hp.frames, hp.image_size) for c in chosen])
            actions = torch.tensor([action_id[c.action] for c in chosen], dtype=torch.long)
            pixels = masks = None
            if hp.mode == "frames":
                pixels = load_clip_frames(chosen, hp.frames, hp.image_size, progress=split == "train")
            if hp.get("masks"):
                masks = load_clip_masks(chosen, hp.frames, hp.image_size, self.root)
            self.datasets[split] = PoseClipDataset(keypoints, actions, pixels, train=split == "train",
                                                   pairs=hp.eval_pairs, seed=hp.seed, masks=masks)
