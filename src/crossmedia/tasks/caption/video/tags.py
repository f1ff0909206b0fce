"""The two tag networks of ST-XlanV: the action of a clip (a small 3-D CNN) and its content (a frame classifier).

ST-XlanV (Huang et al., ACM MM 2021) feeds the captioner the top *action* tag of an S3D network
trained on Kinetics and the top *content* tag of a frame classifier. Offline, both are trained
here on the built-in ``puppets`` clips (:mod:`crossmedia.data.builtin.puppets`):

* :class:`ActionTagger` — :class:`ActionNet`, a 3-D CNN (five Conv3d + BatchNorm + ReLU blocks, the
  first two halving space, the next two halving space and time, global average pooling, a
  ``feature_dim`` = 256 penultimate feature, a linear head over the 9 actions of
  :data:`~crossmedia.data.builtin.puppets.PUPPET_ACTIONS`) over segments of ``segment_frames`` = 8
  frames taken every ``segment_stride`` = 4 frames (:func:`segment_starts`: 16 frames give the
  segments starting at 0, 4 and 8). A clip's logits are the mean of its segments' logits. Training
  sees one random segment per clip and step.
* :class:`ContentTagger` — a timm backbone (:func:`crossmedia.core.backbones.create_backbone`,
  global pooled) and a linear head over the 8 top colours of
  :data:`~crossmedia.data.builtin.puppets.PUPPET_COLOURS`, per frame; a clip's logits are the mean
  of its frames' logits. Training sees ``train_frames`` random frames per clip and step.

Both are single-label heads trained with :class:`crossmedia.nn.distill.Distillation` (``distillation``:
``ce``, ``ls``, ``kd``, ``tfkd-self``, ``tfkd-reg``; a teacher is a zoo tagger of the same kind, by
name). Frames in are float (B, T, 3, H, W) in [0, 1] (H = W = 64); the networks normalise them to
[-1, 1] themselves. Test metric: ``test/top1``, the clip accuracy. Inference: ``tags(frames)`` ->
one dict per clip, ``{"action": word, "action_prob": p}`` or ``{"content": word, "content_prob": p}``.

:class:`VideoTagDataModule` gives the clips of a pose-clip folder (the built-in ``puppets``) with
both labels: the action (``videos[].action``) and the top colour (``videos[].top_colour``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from torchmetrics.classification import MulticlassAccuracy
from tqdm import tqdm

from crossmedia.core.backbones import create_backbone
from crossmedia.core.modes import eval_mode
from crossmedia.core.paths import data_root
from crossmedia.core.task import SplitLoaders, TaskDataModule, TaskModule
from crossmedia.data.builtin.puppets import PUPPET_ACTIONS, PUPPET_COLOURS
from crossmedia.data.folder import read_meta
from crossmedia.data.imagefolder import load_image_array
from crossmedia.data.poseclips import clip_splits, even_frames, pose_json, read_pose_folder
from crossmedia.data.registry import ensure
from crossmedia.nn.distill import Distillation

__all__ = ["segment_starts", "segments", "as_clips", "ActionNet", "ContentNet", "ActionTagger", "ContentTagger",
           "VideoTagDataModule", "ClipTagDataset"]


# helpers

def segment_starts(num_frames: int, length: int = 8, stride: int = 4) -> list[int]:
    """First frames of the segments of ``length`` frames every ``stride`` frames of a ``num_frames`` clip.

    ``range(0, num_frames - length + 1, stride)``, plus ``num_frames - length`` when the last segment
    would leave frames uncovered (16 -> [0, 4, 8]; 32 -> [0, 4, ..., 24]; 18 -> [0, 4, 8, 10]).
    Raises ValueError for a clip shorter than one segment.
    """
    if length < 1 or stride < 1:
        raise ValueError(f"segment length and stride must be >= 1, got {length} and {stride}")
    if num_frames < length:
        raise ValueError(f"a clip of {num_frames} frames is shorter than one segment of {length} frames; give clips "
                         f"of at least {length} frames (or a smaller segment_frames)")
    starts = list(range(0, num_frames - length + 1, stride))
    if starts[-1] + length < num_frames:
        starts.append(num_frames - length)
    return starts


def segments(frames: Tensor, length: int = 8, stride: int = 4) -> Tensor:
    """Clips (B, T, 3, H, W) -> their segments (B, S, 3, length, H, W), channels before time as Conv3d wants."""
    starts = segment_starts(frames.shape[1], length, stride)
    return torch.stack([frames[:, s:s + length] for s in starts], dim=1).transpose(2, 3)  # (B, S, 3, L, H, W)


def as_clips(frames) -> Tensor:
    """Frames as a float (B, T, 3, H, W) batch in [0, 1].

    Takes a float tensor in [0, 1] or a uint8 tensor / array, either (B, T, 3, H, W) or one clip
    (T, 3, H, W), or channel-last uint8 arrays (T, H, W, 3) / (B, T, H, W, 3) as decoders give them.
    """
    x = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, Tensor) else frames
    if x.dim() in (4, 5) and x.shape[-1] == 3 and x.shape[-3] != 3:
        x = x.movedim(-1, -3)  # channel-last -> (.., T, 3, H, W)
    if x.dim() == 4:
        x = x[None]
    if x.dim() != 5 or x.shape[2] != 3:
        raise ValueError(f"frames must be (B, T, 3, H, W) or (T, 3, H, W) (or channel-last uint8), got shape "
                         f"{tuple(x.shape)}")
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def _conv_bn_relu(cin: int, cout: int, stride: tuple[int, int, int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout),
                         nn.ReLU(inplace=True))


# networks

class ActionNet(nn.Module):
    """A small 3-D CNN over segments (N, 3, L, H, W) normalised to [-1, 1]: :meth:`features` (N, D), logits (N, K).

    Blocks (3x3x3 kernels): width and 2 width with stride (1, 2, 2), 4 and 8 width with stride 2,
    ``feature_dim`` with stride 1; then global average pooling. An 8 x 64 x 64 segment ends as
    2 x 4 x 4 before pooling.
    """

    def __init__(self, num_classes: int, *, width: int = 16, feature_dim: int = 256, dropout: float = 0.2):
        super().__init__()
        w = width
        self.body = nn.Sequential(_conv_bn_relu(3, w, (1, 2, 2)), _conv_bn_relu(w, 2 * w, (1, 2, 2)),
                                  _conv_bn_relu(2 * w, 4 * w, (2, 2, 2)), _conv_bn_relu(4 * w, 8 * w, (2, 2, 2)),
                                  _conv_bn_relu(8 * w, feature_dim, (1, 1, 1)))
        self.dim = feature_dim
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """The penultimate feature (N, D) of segments (N, 3, L, H, W)."""
        return self.body(x).mean(dim=(2, 3, 4))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class ContentNet(nn.Module):
    """A timm backbone (global pooled) and a linear head: frames (N, 3, H, W) in [-1, 1] -> logits (N, K)."""

    def __init__(self, num_classes: int, *, backbone: str = "mobilenetv3_small_050", pretrained: bool = False):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained=pretrained, num_classes=0)
        self.dim = int(getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features)  # pooled width
        self.head = nn.Linear(self.dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


# modules

class _ClipTagger(TaskModule):
    """What both taggers share: the single-label loss, evaluation, optimiser, teacher and ``tags``.

    A subclass sets ``kind`` (the batch key of its labels and the word's key in ``tags``), builds
    ``self.net`` and defines ``forward`` (clip logits of (B, T, 3, H, W) frames in [0, 1]) and
    ``train_view`` (what one training step shows of a batch of clips).
    """

    task = "caption"
    card_metrics = [{"metric": "top-1 accuracy (test clips)", "key": "test/top1", "split": "test"}]
    inference = ("tags",)
    kind = ""

    def _setup_head(self, classes: list[str], distillation: str, distillation_args: dict | None,
                    teacher: str | None) -> None:
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"{type(self).__name__}: classes must be >= 2 distinct names, got {classes!r}")
        self.classes = list(classes)
        self.loss_fn = Distillation(distillation, distillation_args)
        self.loss_fn.check_teacher_name(teacher, example=f"video-{self.kind}-tagger")
        self.val_top1 = MulticlassAccuracy(num_classes=len(classes), average="micro")
        self.test_top1 = MulticlassAccuracy(num_classes=len(classes), average="micro")

    @staticmethod
    def normalise(frames: Tensor) -> Tensor:
        """[0, 1] -> [-1, 1] (mean = std = 0.5, what the offline ImageNet backbones expect too)."""
        return (frames - 0.5) / 0.5

    # inference API

    @torch.no_grad()
    def probabilities(self, frames) -> Tensor:
        """Class probabilities (B, K) of clips (see :func:`as_clips` for what ``frames`` may be)."""
        with eval_mode(self):
            return self(as_clips(frames).to(self.device)).softmax(dim=-1)

    def tags(self, frames) -> list[dict]:
        """The top tag of each clip: ``[{kind: word, f"{kind}_prob": p}, ...]`` (``kind`` is
        ``"action"`` or ``"content"``); ``frames`` as :func:`as_clips` takes them."""
        probs, ids = self.probabilities(frames).max(dim=-1)
        return [{self.kind: self.classes[i], f"{self.kind}_prob": p} for i, p in zip(ids.tolist(), probs.tolist())]

    # training

    def on_fit_start(self) -> None:
        """Load the teacher (``kd`` / ``tfkd-self``) through the registry; it must know the same classes."""
        if self.loss_fn.needs_teacher and self.loss_fn.teacher is None:
            from crossmedia.core.registry import load

            self.loss_fn.attach_teacher(load(self.hparams.teacher))
        known = getattr(self.loss_fn.teacher, "classes", None)
        if known is not None and list(known) != self.classes:
            raise ValueError(f"the teacher {self.hparams.teacher!r} (model.init_args.teacher) knows the classes "
                             f"{list(known)}, not this tagger's {self.classes}: give a teacher of the same classes, "
                             f"or a method without one (distillation ce, ls or tfkd-reg)")

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        x, y = self.train_view(batch["frames"]), batch[self.kind]
        loss = self.loss_fn(self(x), y, x)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        return loss

    def _eval_step(self, batch: dict, metric: MulticlassAccuracy, stage: str) -> None:
        metric.update(self(batch["frames"]), batch[self.kind])
        self.log(f"{stage}/top1", metric, on_epoch=True, prog_bar=stage == "val", batch_size=len(batch[self.kind]))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.val_top1, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.test_top1, "test")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        steps = max(int(self.trainer.estimated_stepping_batches), 1) if self._trainer is not None else 1
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class ActionTagger(_ClipTagger):
    """The action tag network: :class:`ActionNet` over clip segments, the clip's logits the mean of its segments'.

    Args:
        classes: action names in class-id order (default: the puppets' 9 :data:`PUPPET_ACTIONS`).
        width, feature_dim, dropout: of :class:`ActionNet` (``feature_dim`` is the motion stream's Dm).
        segment_frames, segment_stride: the segments (:func:`segment_starts`).
        lr, weight_decay: AdamW's; the learning rate follows a cosine schedule to 0 over training.
        distillation, distillation_args, teacher: the loss (:class:`crossmedia.nn.distill.Distillation`) and,
            for ``kd`` / ``tfkd-self``, the zoo name of an action tagger that teaches.
    """

    summary = "action tag network of ST-XlanV: a small 3-D CNN over 8-frame clip segments (puppet actions)"
    paper = {"title": "Semantic Tag Augmented XlanV Model for Video Captioning", "arxiv": ""}
    kind = "action"

    def __init__(self, *, classes: list[str] | None = None, width: int = 16, feature_dim: int = 256,
                 dropout: float = 0.2, segment_frames: int = 8, segment_stride: int = 4, lr: float = 3e-3,
                 weight_decay: float = 1e-4, distillation: str = "ce", distillation_args: dict | None = None,
                 teacher: str | None = None):
        super().__init__()
        classes = list(classes) if classes is not None else list(PUPPET_ACTIONS)
        self.save_hyperparameters()
        self.hparams.classes = classes
        self._setup_head(classes, distillation, distillation_args, teacher)
        self.net = ActionNet(len(classes), width=width, feature_dim=feature_dim, dropout=dropout)

    @property
    def feature_dim(self) -> int:
        return self.net.dim

    def segment_view(self, frames: Tensor) -> Tensor:
        """Normalised segments (B, S, 3, L, H, W) of clips (B, T, 3, H, W) in [0, 1]."""
        return segments(self.normalise(frames), self.hparams.segment_frames, self.hparams.segment_stride)

    def segment_logits(self, frames: Tensor) -> Tensor:
        """Logits (B, S, K) of each segment of clips (B, T, 3, H, W) in [0, 1]."""
        x = self.segment_view(frames)
        return self.net(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def motion(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """The motion stream (B, S, D) — the penultimate feature of each segment — and the clip logits (B, K)."""
        x = self.segment_view(frames)
        features = self.net.features(x.flatten(0, 1))  # (B S, D)
        logits = self.net.head(features).unflatten(0, x.shape[:2]).mean(dim=1)
        return features.unflatten(0, x.shape[:2]), logits

    def forward(self, frames: Tensor) -> Tensor:
        """Clip logits (B, K): the mean of its segments' logits."""
        return self.segment_logits(frames).mean(dim=1)

    def train_view(self, frames: Tensor) -> Tensor:
        """One random segment of each clip: (B, segment_frames, 3, H, W)."""
        starts = segment_starts(frames.shape[1], self.hparams.segment_frames, self.hparams.segment_stride)
        pick = torch.randint(len(starts), (len(frames),)).tolist()
        length = self.hparams.segment_frames
        return torch.stack([clip[starts[j]:starts[j] + length] for clip, j in zip(frames, pick)])


class ContentTagger(_ClipTagger):
    """The content tag network: a frame classifier of the figure's top colour; a clip's logits are the mean
    of its frames'.

    Args:
        classes: colour names in class-id order (default: the puppets' 8 :data:`PUPPET_COLOURS`).
        backbone, pretrained: the timm backbone by name (:func:`crossmedia.core.backbones.create_backbone`;
            ``tf_efficientnet_lite0`` with ``pretrained: true`` is the offline ImageNet one).
        train_frames: frames drawn at random from each clip per training step.
        lr, weight_decay, distillation, distillation_args, teacher: as :class:`ActionTagger`'s.
    """

    summary = "content tag network of ST-XlanV: a frame classifier of the figure's top colour (puppets)"
    paper = {"title": "Semantic Tag Augmented XlanV Model for Video Captioning", "arxiv": ""}
    kind = "content"

    def __init__(self, *, classes: list[str] | None = None, backbone: str = "mobilenetv3_small_050",
                 pretrained: bool = False, train_frames: int = 2, lr: float = 2e-3, weight_decay: float = 1e-4,
                 distillation: str = "ce", distillation_args: dict | None = None, teacher: str | None = None):
        super().__init__()
        classes = list(classes) if classes is not None else list(PUPPET_COLOURS)
        self.save_hyperparameters()
        self.hparams.classes = classes
        self._setup_head(classes, distillation, distillation_args, teacher)
        self.net = ContentNet(len(classes), backbone=backbone, pretrained=pretrained)

    def frame_logits(self, frames: Tensor) -> Tensor:
        """Logits (B, T, K) of each frame of clips (B, T, 3, H, W) in [0, 1]."""
        return self.net(self.normalise(frames).flatten(0, 1)).unflatten(0, frames.shape[:2])

    def forward(self, frames: Tensor) -> Tensor:
        """Clip logits (B, K): the mean of its frames' logits."""
        return self.frame_logits(frames).mean(dim=1)

    def train_view(self, frames: Tensor) -> Tensor:
        """``train_frames`` random frames of each clip: (B, train_frames, 3, H, W)."""
        count = min(self.hparams.train_frames, frames.shape[1])
        pick = torch.rand(frames.shape[:2]).argsort(dim=1)[:, :count].to(frames.device)  # (B, count)
        return frames[torch.arange(len(frames), device=frames.device)[:, None], pick]


# data

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class ClipTagDataset(Dataset):
    """Clips held as uint8 (N, T, 3, S, S) with action and content ids (N,); items are dicts (see the DataModule)."""

    def __init__(self, frames: Tensor, action: Tensor, content: Tensor):
        self.frames, self.action, self.content = frames, action, content

    def __len__(self) -> int:
        return len(self.action)

    def __getitem__(self, index: int) -> dict:
        return {"frames": self.frames[index], "action": self.action[index], "content": self.content[index],
                "index": index}


def collate_clips(items: list[dict]) -> dict:
    """Stack items; frames become float in [0, 1]."""
    return {"frames": torch.stack([item["frames"] for item in items]).float() / 255,
            "action": torch.stack([item["action"] for item in items]),
            "content": torch.stack([item["content"] for item in items]),
            "index": torch.tensor([item["index"] for item in items])}


class VideoTagDataModule(SplitLoaders, TaskDataModule):
    """Clips of a pose-clip folder (the built-in ``puppets``) with their action and top-colour labels.

    Each batch is a dict: ``frames`` float (B, T, 3, S, S) in [0, 1] (T = ``frames`` taken evenly over
    each clip, S = ``image_size``), ``action`` long (B,) ids in :attr:`actions`, ``content`` long (B,)
    ids in :attr:`colours` (the figure's top colour), ``index`` long (B,) the clip's position in its split.

    Splits are the videos' own ``split`` fields (:func:`crossmedia.data.poseclips.clip_splits`); frames
    are decoded once into memory (uint8; all 3,240 puppets: 637 MB).

    Args:
        dataset: registry name (``puppets``) or any name when ``root`` points at a pose-clip folder whose
            ``videos`` entries have ``action`` and ``top_colour``.
        root: the folder; default ``data_root()/dataset``.
        frames, image_size: T and S.
        limit_clips: keep the first this many clips of each split (None: all), for quick runs.
    """

    collate = staticmethod(collate_clips)

    def __init__(self, *, dataset: str = "puppets", root: str | None = None, frames: int = 16, image_size: int = 64,
                 batch_size: int = 32, eval_batch_size: int = 64, num_workers: int = 0,
                 limit_clips: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root) if root is not None else data_root() / dataset
        self.datasets: dict[str, ClipTagDataset] = {}
        self.actions: list[str] = []
        self.colours: list[str] = []
        self.video_ids: dict[str, list[str]] = {}

    def prepare_data(self) -> None:
        ensure(self.hparams.dataset, self.root)

    def setup(self, stage: str | None = None) -> None:
        """Decode the splits ``stage`` needs (fit: train and val; validate: val; test / predict: test; None: all)."""
        wanted = [s for s in _STAGE_SPLITS.get(stage, ("train", "val", "test")) if s not in self.datasets]
        if not wanted:
            return
        hp = self.hparams
        clips, self.actions = read_pose_folder(self.root)
        json_path = pose_json(self.root)
        videos = {str(v.get("id")): v for v in json.loads(json_path.read_text(encoding="utf-8")).get("videos", [])}
        self.colours = list((read_meta(self.root) or {}).get("colours") or PUPPET_COLOURS)
        colour_id = {name: i for i, name in enumerate(self.colours)}
        action_id = {name: i for i, name in enumerate(self.actions)}
        for split, members in clip_splits(clips, self.root).items():
            if split not in wanted:
                continue
            chosen = [clips[i] for i in members][:hp.limit_clips]
            content = []
            for clip in chosen:
                colour = videos.get(str(clip.video_id), {}).get("top_colour")
                if colour not in colour_id:
                    raise ValueError(f"{json_path}: video {clip.video_id!r} has top_colour {colour!r}, not one of "
                                     f"{self.colours}; the content tagger needs each entry of 'videos' to name its "
                                     f"figure's top colour")
                content.append(colour_id[colour])
            self.datasets[split] = ClipTagDataset(
                _load_frames(chosen, hp.frames, hp.image_size, desc=split),
                torch.tensor([action_id[c.action] for c in chosen]), torch.tensor(content))
            self.video_ids[split] = [str(c.video_id) for c in chosen]


def _load_frames(clips: list, count: int, size: int, desc: str = "") -> Tensor:
    """``count`` frames spread evenly over each clip as uint8 (N, count, 3, size, size); a short clip is an error."""
    out = torch.empty(len(clips), count, 3, size, size, dtype=torch.uint8)
    for i, clip in enumerate(tqdm(clips, desc=f"frames {desc}", leave=False, disable=len(clips) < 200)):
        if clip.num_frames < count:
            raise ValueError(f"clip {clip.video_id!r} ({clip.frames[0].parent}) has {clip.num_frames} frames, fewer "
                             f"than frames={count}; lower --data.init_args.frames")
        for t, j in enumerate(even_frames(clip.num_frames, count)):
            out[i, t] = torch.from_numpy(load_image_array(clip.frames[j], size).copy()).permute(2, 0, 1)
    return out
