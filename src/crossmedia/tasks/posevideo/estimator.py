"""The two measuring networks of the posevideo task: a pose estimator and an action classifier.

Neither is a method of the paper (Yang et al., "Pose Guided Human Video Generation", ECCV 2018,
arXiv 1807.11152); they are the instruments its evaluation needs, trained here on real data (the
built-in ``puppets``) as zoo entries of their own:

* :class:`PoseEstimator` — heatmap regression (Xiao et al., "Simple Baselines for Human Pose
  Estimation and Tracking", ECCV 2018, arXiv 1804.06208): a fully convolutional net maps a 64 x 64
  RGB frame to 17 joint heatmaps Ĥ at 32 x 32, trained by

      L = mean_{k, p} (Ĥ_k(p) − H_k(p))²,    H = render_pose(keypoints at 32 x 32, σ = 1, joints only)

  Keypoints of the 64 x 64 frame go to the 32 x 32 map pixel centre to pixel centre (the
  convention of :mod:`crossmedia.data.keypoints`): x₃₂ = (x₆₄ + ½)/2 − ½. It gives the pose error
  of generated frames (PCK@0.1, mean distance: :mod:`crossmedia.tasks.posevideo.metrics`) and its
  pooled bottleneck features are the task's FID feature network.
* :class:`ActionClassifier` — a temporal convolutional network over skeleton sequences (Kim &
  Reiter, "Interpretable 3D Human Action Analysis with Temporal Convolutional Networks", CVPRW 2017,
  arXiv 1704.04516): 1-D convolutions over time of the normalised joints
  (:func:`~crossmedia.tasks.posevideo.metrics.normalise_pose_sequence`), global average pooling,
  a linear layer to the action logits, cross-entropy loss. It scores PSGAN's generated sequences.

Shapes: B items, T frames, S = 64 input side; images (B, 3, S, S) in [-1, 1]; keypoints (x, y, v)
in input pixels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from crossmedia.core.init_from import FitsDataLabels
from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.data.keypoints import NUM_JOINTS, render_pose
from crossmedia.nn.distill import Distillation
from crossmedia.tasks.posevideo.metrics import PCKMetric, normalise_pose_sequence
from crossmedia.tasks.posevideo.models import rescale_keypoints

__all__ = ["PoseEstimator", "ActionClassifier", "HeatmapNet", "TemporalConvNet", "read_heatmaps", "image_batch"]


# helpers

def image_batch(images, size: int) -> Tensor:
    """PIL image(s) or a (B, 3, H, W) tensor in [-1, 1] -> (B, 3, size, size) float in [-1, 1]."""
    if isinstance(images, Tensor):
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W) in [-1, 1], got shape {tuple(images.shape)}")
        images = images.float()
        if images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return images
    from PIL import Image

    from crossmedia.data.pixels import image_pixels

    items = images if isinstance(images, (list, tuple)) else [images]
    if not items or not all(isinstance(im, Image.Image) for im in items):
        raise TypeError(f"expected PIL images or a (B, 3, S, S) tensor in [-1, 1], got {type(images).__name__}")
    return torch.stack([image_pixels(im, size) for im in items]).float() / 127.5 - 1.0


def read_heatmaps(heatmaps: Tensor, *, threshold: float = 0.2) -> Tensor:
    """Joint heatmaps (B, 17, P, P) -> keypoints (B, 17, 3) in map pixels.

    Position: the arg-max pixel m, refined to sub-pixel precision by the centroid of
    max(Ĥ, 0) over its 3 x 3 neighbourhood (Σ_q w_q q / Σ_q w_q; a whole-map soft-arg-max would be
    pulled towards the centre by the small positive background of a regressed map). Visibility:
    v = 2 where the peak Ĥ(m) ≥ ``threshold`` (a rendered joint peaks at 1), else v = 0 — with the
    best-guess (x, y) kept, as the pose metrics score positions regardless of v.
    """
    b, j, h, w = heatmaps.shape
    maps = heatmaps.float()
    peak, index = maps.flatten(-2).max(dim=-1)  # (B, J)
    my, mx = torch.div(index, w, rounding_mode="floor"), index % w
    padded = F.pad(maps.clamp_min(0.0), (1, 1, 1, 1))  # (B, J, P+2, P+2)
    offs = torch.arange(-1, 2, device=maps.device)
    ys = (my[..., None, None] + 1 + offs[:, None]).expand(b, j, 3, 3)  # padded rows of the window
    xs = (mx[..., None, None] + 1 + offs[None, :]).expand(b, j, 3, 3)
    window = padded.flatten(-2).gather(-1, (ys * (w + 2) + xs).flatten(-2)).view(b, j, 3, 3)
    total = window.sum(dim=(-2, -1)).clamp_min(1e-8)
    dx = (window.sum(dim=-2) * offs).sum(-1) / total
    dy = (window.sum(dim=-1) * offs).sum(-1) / total
    v = torch.where(peak >= threshold, 2.0, 0.0)
    return torch.stack([mx.float() + dx, my.float() + dy, v], dim=-1)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


# networks

class HeatmapNet(nn.Module):
    """64 x 64 RGB -> 17 heatmaps at 32 x 32, and pooled bottleneck features.

    Encoder (b = ``base`` channels; each stage two 3 x 3 conv + BN + ReLU, the first of stride 2)::

        e1 = stage(x)  b  x 32²,   e2 = stage(e1)  2b x 16²,   e3 = stage(e2)  4b x 8²
        d2 = conv([up(e3); e2])  2b x 16²,   d1 = conv([up(d2); e1])  b x 32²,   Ĥ = conv1x1(d1)

    (up = bilinear x2; the skips are U-Net style). ``features``: the spatial mean of e3, (B, 4b).
    """

    def __init__(self, base: int = 32, joints: int = NUM_JOINTS) -> None:
        super().__init__()
        b = base
        self.e1 = nn.Sequential(_conv(3, b, 2), _conv(b, b))
        self.e2 = nn.Sequential(_conv(b, 2 * b, 2), _conv(2 * b, 2 * b))
        self.e3 = nn.Sequential(_conv(2 * b, 4 * b, 2), _conv(4 * b, 4 * b))
        self.d2 = _conv(6 * b, 2 * b)
        self.d1 = nn.Sequential(_conv(3 * b, b), _conv(b, b))
        self.head = nn.Conv2d(b, joints, 1)
        self.feature_dim = 4 * b

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        e1 = self.e1(x)
        e2 = self.e2(e1)
        return e1, e2, self.e3(e2)

    def forward(self, x: Tensor) -> Tensor:
        e1, e2, e3 = self.encode(x)
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
        d2 = self.d2(torch.cat([up(e3), e2], 1))
        return self.head(self.d1(torch.cat([up(d2), e1], 1)))

    def features(self, x: Tensor) -> Tensor:
        return self.encode(x)[2].mean(dim=(-2, -1))


class TemporalConvNet(nn.Module):
    """(B, T, 17, 3) normalised poses -> (B, A) logits: three 1-D conv + BN + ReLU layers over time
    (kernel 5, 5, 3; ``width`` channels), dropout, global average pooling over time, a linear layer."""

    def __init__(self, num_classes: int, width: int = 64, dropout: float = 0.2, joints: int = NUM_JOINTS) -> None:
        super().__init__()
        layers, cin = [], joints * 3
        for k in (5, 5, 3):
            layers += [nn.Conv1d(cin, width, k, padding=k // 2, bias=False), nn.BatchNorm1d(width),
                       nn.ReLU(inplace=True)]
            cin = width
        self.body = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        h = self.body(x.reshape(b, t, -1).transpose(1, 2))  # (B, width, T)
        return self.head(self.drop(h.mean(dim=-1)))


# modules

class PoseEstimator(TaskModule):
    """Pose estimator: a frame (B, 3, 64, 64) in [-1, 1] -> COCO-17 keypoints (B, 17, 3); equations: module docstring.

    Trained on ``"frames"`` batches of :class:`~crossmedia.tasks.posevideo.data.PoseVideoDataModule`
    (both the source and the target frame of each pair); validated and tested on the target frames
    of the fixed evaluation pairs (the sources are always frame 0, repeated per pair).

    Args:
        base: b, the channel width of :class:`HeatmapNet`.
        sigma: σ of the target heatmaps, in 32 x 32 map pixels.
        threshold: the heatmap peak from which a joint is reported visible (:func:`read_heatmaps`).
        lr, weight_decay: AdamW's (peak lr).
        cosine: one-cycle schedule over the run (10 % linear warm-up to ``lr``, cosine decay); else constant.
    """

    task = "posevideo"
    summary = "pose estimator (heatmap regression, 64x64 frame -> COCO-17 keypoints): pose error and FID features"
    paper = {"title": "Simple Baselines for Human Pose Estimation and Tracking", "arxiv": "1804.06208"}
    card_metrics = [{"metric": "PCK@0.1", "key": "test/pck", "split": "test"},
                    {"metric": "mean keypoint distance (px)", "key": "test/distance", "split": "test"}]
    inference = ("estimate", "features")

    input_size = 64
    map_size = 32

    def __init__(self, *, base: int = 32, sigma: float = 1.0, threshold: float = 0.2, lr: float = 2e-3,
                 weight_decay: float = 1e-4, cosine: bool = True):
        super().__init__()
        self.save_hyperparameters()
        self.net = HeatmapNet(base)
        self.val_pck = PCKMetric(0.1)
        self.test_pck = PCKMetric(0.1)

    def target_maps(self, keypoints: Tensor) -> Tensor:
        """Keypoints (B, 17, 3) in 64 x 64 pixels -> target heatmaps (B, 17, 32, 32)."""
        kp = rescale_keypoints(keypoints.float(), self.input_size, self.map_size)
        return render_pose(kp, self.map_size, sigma=self.hparams.sigma, limbs=False)

    # inference API

    def forward(self, images: Tensor) -> Tensor:
        """Heatmaps (B, 17, 32, 32) of frames (B, 3, 64, 64) in [-1, 1]."""
        return self.net(images)

    def estimate(self, images) -> Tensor:
        """Keypoints (B, 17, 3) (x, y, v) in the pixels of the input (S x S tensor in [-1, 1] or PIL images,
        resized to 64 x 64). v = 2 where the joint's heatmap peak reaches ``threshold``, else v = 0 with
        the best-guess (x, y) kept. The puppets face the camera, so left and right are the figure's own,
        as in the training keypoints."""
        size = images.shape[-1] if isinstance(images, Tensor) else None
        if size is None:
            items = images if isinstance(images, (list, tuple)) else [images]
            size = items[0].size[0] if items and hasattr(items[0], "size") else self.input_size
        x = image_batch(images, self.input_size).to(self.device)
        with eval_mode(self), torch.no_grad():
            kp = read_heatmaps(self.net(x), threshold=self.hparams.threshold)
        xy = (kp[..., :2] + 0.5) * (size / self.map_size) - 0.5
        return torch.cat([xy, kp[..., 2:]], dim=-1)

    def features(self, images) -> Tensor:
        """Pooled bottleneck features (B, 4·base) of frames (tensor in [-1, 1] or PIL images); the FID features."""
        x = image_batch(images, self.input_size).to(self.device)
        with eval_mode(self), torch.no_grad():
            return self.net.features(x).float()

    # training

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        images = torch.cat([batch["source"], batch["target"]])
        keypoints = torch.cat([batch["source_keypoints"], batch["target_keypoints"]])
        loss = F.mse_loss(self.net(images).float(), self.target_maps(keypoints))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    def _eval_step(self, batch: dict, stage: str) -> None:
        images, keypoints = batch["target"], batch["target_keypoints"]
        maps = self.net(images)
        loss = F.mse_loss(maps.float(), self.target_maps(keypoints))
        kp = read_heatmaps(maps, threshold=self.hparams.threshold)
        kp = torch.cat([(kp[..., :2] + 0.5) * (images.shape[-1] / self.map_size) - 0.5, kp[..., 2:]], -1)
        metric = self.val_pck if stage == "val" else self.test_pck
        metric.update(kp, keypoints)
        self.log(f"{stage}/loss", loss, batch_size=len(images), sync_dist=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_end(self, stage: str) -> None:
        metric = self.val_pck if stage == "val" else self.test_pck
        values = metric.compute()
        metric.reset()
        self.log_dict({f"{stage}/pck": float(values["pck"]), f"{stage}/distance": float(values["distance"])},
                      prog_bar=stage == "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if not self.hparams.cosine or self._trainer is None:
            return opt
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=steps, pct_start=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class ActionClassifier(FitsDataLabels, TaskModule):
    """Action classifier of pose sequences (B, T, 17, 3) -> one of the data's actions; equations: module docstring.

    Training augmentation (so that generated sequences, which are noisier than real ones, are read
    fairly): per sequence a global scale s ~ U(1 − a, 1 + a) about the image centre and a translation
    ~ U(−τ, τ) px, and per joint and frame Gaussian jitter N(0, σ²) px (σ = ``jitter``). Nothing
    flips time or mirrors the figure: actions such as a walk or a punch depend on direction.

    Args:
        actions: action names in class-id order; filled in at fit from the DataModule (saved in the card).
        image_size: S, the frame side the keypoints are given in (the normalisation divides by it).
        width, dropout: of :class:`TemporalConvNet`.
        jitter, scale, shift: the augmentation's σ (px), a and τ (px); 0 turns each off.
        lr, weight_decay: AdamW's.
        distillation: the training loss of this single-label head, one of ``ce`` (the default, and
            what the zoo entry was trained with), ``ls``, ``kd``, ``tfkd-self``, ``tfkd-reg``
            (Yuan et al. 2020, :mod:`crossmedia.nn.distill`); ``distillation_args`` overrides its
            reference defaults.
        teacher: zoo name of the action classifier that teaches (``kd``, ``tfkd-self``), loaded at
            fit start, frozen and kept out of this module's weights; it must know the data's actions.
        init_from: the weights fit starts from (an action-classifier zoo name, ``.safetensors`` or ``.ckpt``);
            read only when fitting.

    Fine-tuning on other actions: fit takes the data's actions; when their number differs the linear
    head (``net.head``) is rebuilt for them, every other weight kept (and the head rows of the actions
    both share), in one line. Validate / test on data of other actions raise ValueError naming both.
    """

    task = "posevideo"
    summary = "action classifier of pose sequences (temporal conv net): scores PSGAN's generated sequences"
    paper = {"title": "Interpretable 3D Human Action Analysis with Temporal Convolutional Networks",
             "arxiv": "1704.04516"}
    card_metrics = [{"metric": "action accuracy (real test sequences)", "key": "test/accuracy", "split": "test"}]
    fit_hparams = ("actions",)
    data_labels = "actions"
    inference = ("classify", "logits")

    def __init__(self, *, actions: list[str] | None = None, image_size: int = 64, width: int = 64,
                 dropout: float = 0.2, jitter: float = 1.0, scale: float = 0.1, shift: float = 3.0,
                 lr: float = 3e-3, weight_decay: float = 1e-4, distillation: str = "ce",
                 distillation_args: dict | None = None, teacher: str | None = None, init_from: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.loss_fn = Distillation(distillation, distillation_args)  # no parameters: the weights are unchanged
        self.loss_fn.check_teacher_name(teacher, example="action-classifier")
        self.actions: list[str] | None = None
        self.net = None
        if actions is not None:
            self._build(actions)

    def _build(self, actions: list[str]) -> None:
        if len(actions) < 2 or len(set(actions)) != len(actions):
            raise ValueError(f"ActionClassifier: actions must be >= 2 distinct names, got {actions!r}")
        self.actions = list(actions)
        self.hparams.actions = list(actions)
        self.net = TemporalConvNet(len(actions), width=self.hparams.width, dropout=self.hparams.dropout)
        self.val_accuracy = MulticlassAccuracy(num_classes=len(actions), average="micro")
        self.test_accuracy = MulticlassAccuracy(num_classes=len(actions), average="micro")

    def configure_model(self) -> None:
        if self.net is None:
            trainer = self._trainer
            dm = None if trainer is None else trainer.datamodule
            if dm is None or not getattr(dm, "actions", None):
                raise ValueError("ActionClassifier without actions needs a PoseVideoDataModule (after setup) to "
                                 "take them from; or pass model.init_args.actions")
            self._build(list(dm.actions))

    def check_labels(self, actions: list[str], where: object) -> None:
        """Evaluation (:class:`~crossmedia.core.init_from.FitsDataLabels`): refuse other actions."""
        if self.actions and actions != self.actions:
            raise ValueError(f"the pose data in {where} has the actions {actions} but this action classifier "
                             f"was trained on {self.actions} (model.init_args.actions): evaluate it on data of "
                             f"its actions, or fine-tune it on this data first (fit rebuilds its head)")

    def take_labels(self, actions: list[str], start: tuple[dict, list[str] | None] | None = None,
                    where: object = "the data") -> None:
        """Fit: take the data's ``actions``; a head of another size is rebuilt for them, every other weight
        of ``start`` (default: the module's own) kept, and the head rows of the actions both share."""
        if self.net is None:
            self._build(actions if start is None else start[1] or actions)
            if start is None:
                return
        configured = len(self.actions)
        state, old = (self.state_dict(), self.actions) if start is None else start
        head = state.get("net.head.weight")  # None: left to the strict load, which names it
        old = self.start_labels(old, len(old or []) if head is None else head.shape[0])
        if len(actions) != configured:
            self._build(actions)  # a fresh net: every weight but the head's comes back from ``state``
        self.actions, self.hparams.actions = list(actions), list(actions)
        self.carry_over(state, old, actions, started=start is not None, where=where,
                        task="posevideo action classifier", what="actions", part="the head (net.head) is",
                        configured=configured, kept="head rows")

    # inference API

    def logits(self, keypoints: Tensor) -> Tensor:
        """Action logits (B, A) of pose sequences (B, T, 17, 3) (or one (T, 17, 3)) in ``image_size`` pixels;
        differentiable (call under :func:`~crossmedia.core.modes.eval_mode` to read)."""
        keypoints = torch.as_tensor(keypoints)
        if keypoints.dim() == 3:
            keypoints = keypoints[None]
        if keypoints.dim() != 4 or keypoints.shape[-2:] != (NUM_JOINTS, 3):
            raise ValueError(f"logits: keypoints must be (B, T, 17, 3), got shape {tuple(keypoints.shape)}")
        x = normalise_pose_sequence(keypoints.to(self.device), self.hparams.image_size)
        return self.net(x)

    def classify(self, keypoints: Tensor) -> list[str]:
        """The action name of each pose sequence (B, T, 17, 3) (or one (T, 17, 3))."""
        with eval_mode(self), torch.no_grad():
            return [self.actions[i] for i in self.logits(keypoints).argmax(-1).tolist()]

    # training

    def augment(self, keypoints: Tensor) -> Tensor:
        """The training augmentation of the class docstring (visibility unchanged, absent joints stay 0)."""
        hp = self.hparams
        b = keypoints.shape[0]
        xy, v = keypoints[..., :2], keypoints[..., 2:]
        centre = (hp.image_size - 1) / 2
        s = 1 + hp.scale * (2 * torch.rand(b, 1, 1, 1, device=xy.device) - 1)
        t = hp.shift * (2 * torch.rand(b, 1, 1, 2, device=xy.device) - 1)
        xy = (xy - centre) * s + centre + t + hp.jitter * torch.randn_like(xy)
        return torch.cat([xy * (v > 0), v], dim=-1)

    def on_fit_start(self) -> None:
        if self.loss_fn.needs_teacher and self.loss_fn.teacher is None:
            from crossmedia.core.registry import load

            teacher = load(self.hparams.teacher)
            self.loss_fn.attach_teacher(teacher, teacher.logits)
        known = getattr(self.loss_fn.teacher, "actions", None)
        if known and list(known) != self.actions:
            card = getattr(getattr(self.loss_fn.teacher, "zoo_card", None), "name", None) or self.hparams.teacher
            raise ValueError(f"the teacher {card!r} (model.init_args.teacher) knows the actions {list(known)}, not the "
                             f"data's {self.actions}: give a teacher trained on this data, or a method without one "
                             f"(distillation ce, ls or tfkd-reg)")

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        keypoints = self.augment(batch["keypoints"].float())
        loss = self.loss_fn(self.logits(keypoints), batch["action"], keypoints)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["action"]))
        return loss

    def _eval_step(self, batch: dict, stage: str) -> None:
        logits = self.logits(batch["keypoints"])
        metric = self.val_accuracy if stage == "val" else self.test_accuracy
        metric.update(logits, batch["action"])
        self.log(f"{stage}/loss", F.cross_entropy(logits, batch["action"]), batch_size=len(logits), sync_dist=True)
        self.log(f"{stage}/accuracy", metric, on_epoch=True, prog_bar=stage == "val")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
