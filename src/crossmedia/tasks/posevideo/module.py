"""PSGAN and SCGAN (Yang et al., "Pose Guided Human Video Generation", ECCV 2018, arXiv 1807.11152), and the
whole pipeline: image + action -> video.

Stage 1, :class:`PSGAN` (pose sequence GAN). G (:class:`~crossmedia.tasks.posevideo.models.PoseSequenceGenerator`)
maps the first frame's pose maps M_0 (B, 36, P, P), the action c and noise z to T = 16 joint heatmaps
Ŷ = G(M_0, c, z) (B, 17, T, P, P); the real sequence Y is the clip's poses rendered the same way. D is a
spatio-temporal PatchGAN (:class:`~crossmedia.nn.patchgan.PatchGAN`, 3-D) on heatmap sequences, conditioned
on c (one-hot, broadcast over time and space), as in the paper. With the standard losses of
:mod:`crossmedia.nn.gan_losses`::

    L_D = bce_d(D(Y | c), D(Ŷ | c))
    L_G = bce_g(D(Ŷ | c)) + λ_1 ‖Ŷ − Y‖₁ + λ_kp (‖X̂ − X‖₁ / S + BCE(v̂, [v > 0]))

‖·‖₁ is the mean absolute difference; X̂, v̂ are the positions and visibilities G's heatmaps are
drawn from (:class:`~crossmedia.tasks.posevideo.models.PoseSequenceGenerator`), X, v the real
keypoints (positions over the joints visible in Y). The paper's reconstruction term is the heatmap
L1; the keypoint term is ours: the real maps are mostly zero, and an L1 on maps alone gives a joint
a gradient only within a few σ of where it is (λ_kp in the card). ``adversarial=False``
drops D: the L1-only regressor of the same size, the baseline of the paper's claim.

Stage 2, :class:`SCGAN` (semantic consistent GAN). G (:class:`~crossmedia.tasks.posevideo.models.FrameGenerator`)
renders the target frame x̂ = G(I_s, M_t) from a source frame I_s of the clip and the target pose maps M_t.
D is a PatchGAN on (frame | M_t, I_s) as pix2pix. Semantic consistency (``semantic_consistency=True``): a
second branch of the same G renders x̃ = G(I_s, M̃_t) from an abnormal copy of the target pose
(:func:`~crossmedia.tasks.posevideo.models.abnormal_pose`: joints missing, scaled or jittered), and a
third network D_which (a PatchGAN on (frame | I_s)) learns which branch a frame came from; G learns to
make them indistinguishable and alike at D_which's high-level features φ (its last hidden layer)::

    L_D      = bce_d(D(x_t | M_t, I_s), D(x̂ | M_t, I_s)) [+ bce_d(D(x_t | M_t, I_s), D(x̃ | M_t, I_s))]
    L_which  = bce_d(D_which(x̂ | I_s), D_which(x̃ | I_s))          ("true pose" = real label)
    L_G      = bce_g(D(x̂ | M_t, I_s)) + λ_1 ‖x̂ − x_t‖₁
             [+ bce_g(D(x̃ | M_t, I_s)) + λ_1 ‖x̃ − x_t‖₁ + λ_w bce_g(D_which(x̃ | I_s)) + λ_φ ‖φ(x̃) − sg(φ(x̂))‖₁]

(sg: stop-gradient). Where the paper is silent we chose: one generator with shared weights for both
branches; D judges the abnormal branch against the TRUE pose (the frame should show the person as
they really stand); the abnormal branch is also pulled to the real frame by L1. The baseline
(``semantic_consistency=False``) is the first line alone: the same G trained on clean poses.

The pipeline (:meth:`SCGAN.generate`): pose of the input image (this task's ``pose-estimator``, or
``pose=`` keypoints) -> PSGAN (``psgan`` entry) -> T poses -> SCGAN renders each from the input image.
Both entries are loaded through the registry (sha256-verified) when first needed.

Fine-tuning on one's own actions: PSGAN's ``init_from`` (a zoo name, ``.safetensors`` or ``.ckpt``) starts fit
from those weights; data whose action list differs from the model's takes the data's actions, and when their
number differs only the action inputs (the one-hot columns of G's fuse convolution and of D's first
convolution) are rebuilt, every other weight kept and the columns of the actions both share copied, in one
line. Evaluation on other actions is refused before any step. SCGAN has no action-dependent layer: it renders
poses, and takes the actions of its ``psgan`` entry (the data's during fit).

Shapes: B items; S image side (64); P = S/2 PSGAN map side; T = 16 frames; 17 COCO joints, 19 limbs.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics import MeanMetric

from crossmedia.core.init_from import FitsDataLabels
from crossmedia.core.manual import manual_step
from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.nn.gan_losses import bce_d_loss, bce_g_loss
from crossmedia.nn.patchgan import PatchGAN
from crossmedia.tasks.posevideo.models import (ABNORMAL_KINDS, POSE_CHANNELS, FrameGenerator, PoseSequenceGenerator,
                                               abnormal_pose, pose_maps, rescale_keypoints, temporal_filter)

__all__ = ["PSGAN", "SCGAN", "item_noise"]


# helpers

def item_noise(index: Tensor, sample: int, dim: int) -> Tensor:
    """(B, dim) noise, row i from the seed ``index[i] * 1000 + sample``: an evaluation item gets the same
    noise in every run and at every batch size."""
    return torch.stack([torch.randn(dim, generator=torch.Generator().manual_seed(int(i) * 1000 + sample))
                        for i in index.tolist()]) if dim else torch.zeros(len(index), 0)


def _one_image(image, size: int) -> Tensor:
    """A PIL image, a path, or a (3, S, S) / (1, 3, S, S) tensor in [-1, 1] -> (1, 3, size, size) in [-1, 1]
    (:func:`~crossmedia.tasks.posevideo.estimator.image_batch` after opening a path)."""
    from crossmedia.tasks.posevideo.estimator import image_batch

    if isinstance(image, (str, Path)):
        from PIL import Image

        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist")
        with Image.open(path) as opened:
            return image_batch(opened.convert("RGB"), size)
    batch = image_batch(image, size)
    if len(batch) != 1:
        raise ValueError(f"generate() animates one image, got {len(batch)}")
    return batch


def _visible_keypoint_l1(pred: Tensor, real: Tensor, size: int) -> Tensor:
    """Mean |pred − real| of the (x, y) of joints visible in ``real``, divided by ``size``."""
    mask = (real[..., 2] > 0).unsqueeze(-1).to(pred.dtype)
    return ((pred[..., :2] - real[..., :2]).abs() * mask).sum() / (2 * mask.sum()).clamp_min(1.0) / size


def _remap_inputs(state: dict, target: dict, starts: dict[str, int], old: list[str],
                  new: list[str]) -> tuple[dict, int]:
    """``state`` with the label input channels of each weight in ``starts`` (key -> first label channel)
    re-indexed from the labels ``old`` to ``new``: ``target``'s fresh weight, the channels before and
    after the label block and the columns of labels both share copied from ``state``. Returns
    (the new state, the number of shared labels)."""
    position = {label: index for index, label in enumerate(old)}
    pairs = [(position[label], j) for j, label in enumerate(new) if label in position]
    out = dict(state)
    for key, first in starts.items():
        if key not in state:  # left to the strict load, which names it
            continue
        value, fresh = state[key], target[key].detach().clone()
        fresh[:, :first] = value[:, :first]
        fresh[:, first + len(new):] = value[:, first + len(old):]
        for i, j in pairs:
            fresh[:, first + j] = value[:, first + i]
        out[key] = fresh
    return out, len(pairs)


def _registry_load(name: str):
    from crossmedia.core.registry import load

    return load(name)


def _computed(metrics: dict, stage: str) -> dict[str, float]:
    """``{stage}/{name}`` of every metric that saw an update; a metric computing a dict (PCKMetric:
    pck, distance) logs each entry as ``{stage}/{entry}{name}``."""
    values = {}
    for name, metric in metrics.items():
        if not metric.update_count:
            continue
        out = metric.compute()
        if isinstance(out, dict):
            values.update({f"{stage}/{key}{name}": float(v) for key, v in out.items()})
        else:
            values[f"{stage}/{name}"] = float(out)
    return values


class _Helpers:
    """What PSGAN and SCGAN share: zoo networks used by evaluation and the pipeline (loaded once, never saved
    with the module), the validation / test hooks around each class's ``_eval_start(stage)``,
    ``_eval_step(batch)`` and ``_eval_end(stage)``, and the sample clips callback (``sample_clips``)."""

    def on_validation_epoch_start(self) -> None:
        self._eval_start("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start("test")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def configure_callbacks(self):
        from crossmedia.tasks.posevideo.callbacks import GeneratedClips

        return [GeneratedClips()]

    def _zoo(self, name: str | None):
        if not name:
            return None
        cache = self.__dict__.setdefault("_zoo_nets", {})
        if name not in cache:
            cache[name] = _registry_load(name)
        return cache[name].to(self.device)


class _Pipeline:
    """What the frame generators (SCGAN, the two-stage attribute generator) share: the image + action ->
    poses half of ``generate`` (pose estimator or ``pose=``, then the ``psgan`` entry), the actions it
    accepts, and ``save_video``. Needs ``hparams.estimator``, ``hparams.psgan``, ``hparams.image_size``."""

    @property
    def actions(self) -> list[str]:
        """The actions ``generate`` accepts: those of the ``psgan`` entry (during fit, the data's, so
        that training never needs the PSGAN entry)."""
        dm = None if self._trainer is None else self.trainer.datamodule
        if getattr(dm, "actions", None):
            return list(dm.actions)
        psgan = self._zoo(self.hparams.psgan)
        return [] if psgan is None else list(psgan.actions)

    def pipeline_poses(self, image, action: str, frames: int, *, seed: int = 0, pose=None,
                       smooth: bool = False) -> tuple[Tensor, Tensor]:
        """The input picture (1, 3, S, S) in [-1, 1] on this module's device and the poses (frames, 17, 3) PSGAN
        makes from its pose (``pose``, or the pose estimator's) for ``action`` (noise ``seed``; ``smooth``: PSGAN's
        temporal filter)."""
        psgan = self._zoo(self.hparams.psgan)
        if psgan is None:
            raise ValueError(f"this {type(self).__name__} has no psgan entry (psgan=None): pass poses to render() "
                             "instead")
        picture = _one_image(image, self.hparams.image_size).to(self.device)
        if pose is None:
            estimator = self._zoo(self.hparams.estimator)
            if estimator is None:
                raise ValueError("no pose estimator (estimator=None): pass pose=(17, 3) keypoints")
            with eval_mode(estimator):
                pose = estimator.estimate(picture)[0]
        return picture, psgan.generate_poses(pose, action, frames, seed=seed, smooth=smooth).to(self.device)

    @staticmethod
    def save_video(video: Tensor, path: str | Path, fps: float = 8.0) -> Path:
        """Write (T, 3, H, W) frames in [0, 1] to ``path``: ``.mp4`` (PyAV) or ``.gif``."""
        from crossmedia.tasks.posevideo.drawing import save_video

        return save_video(video, path, fps=fps)


# stage 1

class PSGAN(FitsDataLabels, _Helpers, TaskModule):
    """Pose sequence GAN: first-frame pose + action (+ noise) -> 16 poses. Equations: module docstring.

    Args:
        actions: the action names (class ids in order); filled in at fit from the data, saved in the card.
        image_size: S, the frame side the keypoints are given in.
        map_size: P, the side of the pose maps G reads and writes (S/2 by default).
        base, noise_dim, res_blocks: G's widths (:class:`PoseSequenceGenerator`).
        adversarial: train with D (PSGAN); False is the L1-only baseline.
        l1_weight, keypoint_weight: λ_1 and λ_kp.
        d_base, d_layers: D's widths and depth (3-D PatchGAN).
        classifier: zoo name of the action classifier that scores generated sequences (None: skip).
        diversity_items, diversity_samples: items and noises per item of the diversity metric.
        init_from: the weights fit starts from (a PSGAN zoo name, ``.safetensors`` or ``.ckpt``); read only
            when fitting. Other actions than the weights': module docstring.

    Raises:
        ValueError: at validate / test, data whose actions differ from the model's (both named).
    """

    task = "posevideo"
    summary = "PSGAN: an action-conditioned GAN of pose sequences (3-D conv decoder, 3-D PatchGAN)"
    paper = {"title": "Pose Guided Human Video Generation", "arxiv": "1807.11152"}
    card_metrics = [
        {"metric": "action accuracy (action-classifier)", "key": "test/action_accuracy", "split": "test",
         "optional": True},
        {"metric": "action accuracy of the real sequences", "key": "test/real_accuracy", "split": "test",
         "optional": True},
        {"metric": "action accuracy of the first pose held still", "key": "test/held_accuracy", "split": "test",
         "optional": True},
        {"metric": "smoothness: mean joint acceleration, px/frame²", "key": "test/smoothness", "split": "test"},
        {"metric": "smoothness of the real sequences", "key": "test/smoothness_real", "split": "test"},
        {"metric": "diversity: mean distance between noises, px", "key": "test/diversity", "split": "test"},
        {"metric": "mean keypoint distance to the real sequence, px", "key": "test/distance", "split": "test"},
    ]
    fit_hparams = ("actions",)
    data_labels = "actions"
    inference = ("generate_poses",)
    ddp_find_unused_parameters = True

    def __init__(self, *, actions: list[str] | None = None, image_size: int = 64, map_size: int = 32, base: int = 16,
                 noise_dim: int = 16, res_blocks: int = 2, adversarial: bool = True, l1_weight: float = 100.0,
                 keypoint_weight: float = 10.0, d_base: int = 32, d_layers: int = 2, lr: float = 2e-4,
                 beta1: float = 0.5, classifier: str | None = "action-classifier", diversity_items: int = 64,
                 diversity_samples: int = 3, accumulate_grad_batches: int = 1, clip: float | None = None,
                 init_from: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.actions: list[str] = []
        if actions is not None:
            self._build(actions)

    def _build(self, actions: list[str]) -> None:
        hp = self.hparams
        self.actions = list(actions)
        self.hparams.actions = list(actions)
        self.generator = PoseSequenceGenerator(len(actions), map_size=hp.map_size, base=hp.base,
                                               noise_dim=hp.noise_dim, res_blocks=hp.res_blocks)
        if hp.adversarial:
            self.discriminator = PatchGAN(in_channels=17, base=hp.d_base, layers=hp.d_layers,
                                          cond_channels=len(actions), norm="instance", dims=3)

    def configure_model(self) -> None:
        if hasattr(self, "generator"):
            return
        dm = None if self._trainer is None else self.trainer.datamodule
        if dm is None or not getattr(dm, "actions", None):
            raise ValueError("PSGAN without actions needs a PoseVideoDataModule to take them from")
        self._build(dm.actions)

    def check_labels(self, actions: list[str], where: object) -> None:
        """Evaluation (:class:`~crossmedia.core.init_from.FitsDataLabels`): refuse other actions."""
        if self.actions and actions != self.actions:
            raise ValueError(f"the pose data in {where} has the actions {actions} but this PSGAN was trained on "
                             f"{self.actions} (model.init_args.actions): evaluate it on data of its actions, or "
                             f"fine-tune it on this data first (fit rebuilds its action inputs)")

    def _action_inputs(self) -> dict[str, int]:
        """The weights whose input channels hold the one-hot action, each with the first such channel
        (G's fuse convolution reads [bottleneck features, action, noise]; D [heatmaps, action])."""
        out = {"generator.fuse.0.weight": self.generator.fuse[0].out_channels}
        if self.hparams.adversarial:
            out["discriminator.net.0.weight"] = 17
        return out

    def take_labels(self, actions: list[str], start: tuple[dict, list[str] | None] | None = None,
                    where: object = "the data") -> None:
        """Fit: take the data's ``actions``. When their number differs from the model's or the starting
        weights', G and D are rebuilt for them and every weight of ``start`` (default: the module's own)
        loaded but the action inputs (:meth:`_action_inputs`), whose columns of the actions both share are kept."""
        if not hasattr(self, "generator"):
            self._build(actions if start is None else start[1] or actions)
            if start is None:
                return
        configured = len(self.actions)
        state, old = (self.state_dict(), self.actions) if start is None else start
        key = "generator.fuse.0.weight"
        if key in state:
            old = self.start_labels(old, state[key].shape[1] - self._action_inputs()[key] - self.hparams.noise_dim)
        if len(actions) != configured:
            self._build(actions)
        self.actions, self.hparams.actions = list(actions), list(actions)
        inputs = self._action_inputs()
        self.carry_over(state, old, actions, started=start is not None, where=where, task="posevideo PSGAN",
                        what="actions", part=f"the action inputs of {' and '.join(inputs)} are",
                        configured=configured, kept="inputs",
                        remap=lambda state, old, new, target: _remap_inputs(state, target, inputs, old, new))

    # generation

    @property
    def frames(self) -> int:
        return PoseSequenceGenerator.frames

    def generated(self, first: Tensor, action: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor]:
        """G's heatmaps (B, 17, T, P, P) and keypoints (B, T, 17, 3) (x, y in image pixels, v the
        visibility probability) from first-frame keypoints (B, 17, 3) in image pixels."""
        hp = self.hparams
        first = rescale_keypoints(first.to(self.device).float(), hp.image_size, hp.map_size)
        maps, keypoints = self.generator(first, action.to(self.device), None if noise is None else noise.to(self.device))
        xy = (keypoints[..., :2] + 0.5) * (hp.image_size / hp.map_size) - 0.5
        return maps, torch.cat([xy, keypoints[..., 2:]], -1)

    def sequence(self, first: Tensor, action: Tensor, noise: Tensor | None) -> Tensor:
        """Generated keypoints (B, T, 17, 3) in image pixels; joints of visibility below ½ as (0, 0, 0)."""
        keypoints = self.generated(first, action, noise)[1]
        present = keypoints[..., 2:] >= 0.5
        return torch.where(present, torch.cat([keypoints[..., :2], torch.full_like(keypoints[..., 2:], 2.0)], -1), 0.0)

    def action_id(self, action: str | int) -> int:
        if isinstance(action, int) and 0 <= action < len(self.actions):
            return action
        if action not in self.actions:
            raise ValueError(f"unknown action {action!r}; this model knows {', '.join(self.actions)}")
        return self.actions.index(action)

    @torch.no_grad()
    def generate_poses(self, pose, action: str | int, frames: int | None = None, *, seed: int = 0,
                       smooth: bool = False) -> Tensor:
        """Keypoints (frames, 17, 3) of a person starting in ``pose`` (17, 3) and doing ``action``.

        ``frames`` beyond G's 16 chain segments: each continues from the last pose of the previous one.
        ``smooth``: the whole sequence through :func:`~crossmedia.tasks.posevideo.models.temporal_filter` (removes
        the frame-to-frame jitter the psgan card measures; not part of the paper's PSGAN, off by default)."""
        frames = self.frames if frames is None else int(frames)
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        first = torch.as_tensor(pose, dtype=torch.float32, device=self.device).reshape(1, 17, 3)
        label = torch.tensor([self.action_id(action)], device=self.device)
        out, segment = [], 0
        with eval_mode(self):
            while sum(len(o) for o in out) < frames:
                noise = item_noise(torch.tensor([seed]), segment, self.hparams.noise_dim)
                seq = self.sequence(first, label, noise)[0]  # (16, 17, 3)
                out.append(seq if not out else seq[1:])
                first, segment = seq[-1:].clone(), segment + 1
        poses = torch.cat(out)[:frames]
        return (temporal_filter(poses) if smooth else poses).cpu()

    # training

    def _real_maps(self, keypoints: Tensor) -> Tensor:
        """(B, T, 17, 3) -> (B, 17, T, P, P) joint heatmaps."""
        hp = self.hparams
        return pose_maps(keypoints, hp.image_size, hp.map_size, limbs=False).transpose(1, 2)

    def _d_cond(self, action: Tensor) -> Tensor:
        """D's condition: the one-hot class (B, A), broadcast by the PatchGAN over time and space."""
        return F.one_hot(action, len(self.actions)).float()

    def training_step(self, batch: dict, batch_idx: int) -> None:
        hp = self.hparams
        opts = self.optimizers()
        opts = list(opts) if isinstance(opts, (list, tuple)) else [opts]
        opt_g, opt_d = opts[0], opts[1] if hp.adversarial else None
        step = dict(batch_idx=batch_idx, accumulate=hp.accumulate_grad_batches, clip_val=hp.clip)
        keypoints, action = batch["keypoints"][:, : self.frames], batch["action"]
        real = self._real_maps(keypoints)
        fake, fake_kp = self.generated(keypoints[:, 0], action, None)
        logs = {}
        if hp.adversarial:
            cond = self._d_cond(action)
            d = manual_step(self, opt_d, lambda: bce_d_loss(self.discriminator(real, cond),
                                                             self.discriminator(fake.detach(), cond)), **step)
            logs["train/d_loss"] = d

        def g_loss() -> dict:
            l1 = (fake - real).abs().mean()
            kp = _visible_keypoint_l1(fake_kp, keypoints, hp.image_size)
            seen = (keypoints[..., 2] > 0).float()
            visibility = F.binary_cross_entropy(fake_kp[..., 2].clamp(1e-6, 1 - 1e-6), seen)
            total = hp.l1_weight * l1 + hp.keypoint_weight * (kp + visibility)
            out = {"l1": l1, "keypoint_l1": kp, "visibility": visibility}
            if hp.adversarial:
                out["adv"] = bce_g_loss(self.discriminator(fake, self._d_cond(action)))
                total = total + out["adv"]
            out["total"] = total
            return out

        g = manual_step(self, opt_g, g_loss, **step)
        logs.update({f"train/{k}": v for k, v in g.items() if k != "total"})
        self.log_dict(logs, prog_bar=False, batch_size=len(action))
        self.log("train/g_loss", g["total"], prog_bar=True, batch_size=len(action))

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=(hp.beta1, 0.999))
        if not hp.adversarial:
            return opt_g
        return [opt_g, torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=(hp.beta1, 0.999))]

    # evaluation

    def _eval_start(self, stage: str) -> None:
        from crossmedia.tasks.posevideo.metrics import PCKMetric, Smoothness

        self._metrics = {"smoothness": Smoothness(), "smoothness_real": Smoothness(), "": PCKMetric(),
                         **{name: MeanMetric() for name in ("diversity", "action_accuracy", "real_accuracy", "held_accuracy")}}
        self._metrics = {name: metric.to(self.device) for name, metric in self._metrics.items()}
        self._diversity_left = self.hparams.diversity_items
        classifier = self._zoo(self.hparams.classifier)
        self._classifier = classifier
        known = getattr(classifier, "actions", None)
        if known and list(known) != self.actions:
            self._classifier = None  # its class ids would name other actions: the optional accuracies are left out
            if not getattr(self, "_told_classifier", False):
                rank_zero_info(f"posevideo PSGAN: the action classifier {self.hparams.classifier!r} knows the "
                               f"actions {list(known)}, not this model's {self.actions}: the action "
                               f"accuracies are not measured (model.init_args.classifier: one trained on these)")
                self._told_classifier = True

    def _eval_step(self, batch: dict) -> None:
        from crossmedia.tasks.posevideo.metrics import sequence_diversity

        hp = self.hparams
        keypoints, action, index = batch["keypoints"][:, : self.frames], batch["action"], batch["index"]
        gen = self.sequence(keypoints[:, 0], action, item_noise(index, 0, hp.noise_dim))  # (B, T, 17, 3)
        n = len(action)
        m = self._metrics
        m["smoothness"].update(gen)
        m["smoothness_real"].update(keypoints)
        m[""].update(gen, keypoints)  # pck / distance of the generated to the real sequence
        classifier = self._classifier
        if classifier is not None:
            with eval_mode(classifier):
                m["action_accuracy"].update((classifier.logits(gen).argmax(-1) == action).float().mean(), n)
                m["real_accuracy"].update((classifier.logits(keypoints).argmax(-1) == action).float().mean(), n)
                held = keypoints[:, :1].expand_as(keypoints)  # the reference a still generator would score
                m["held_accuracy"].update((classifier.logits(held).argmax(-1) == action).float().mean(), n)
        k = min(self._diversity_left, n)
        if k > 0:
            sel = slice(0, k)
            samples = [gen[sel, ..., :2]] + [self.sequence(keypoints[sel, 0], action[sel],
                                                           item_noise(index[sel], s, hp.noise_dim))[..., :2]
                                             for s in range(1, hp.diversity_samples)]
            m["diversity"].update(sequence_diversity(torch.stack(samples, 1)), k)
            self._diversity_left -= k

    def _eval_end(self, stage: str) -> None:
        self.log_dict(_computed(self._metrics, stage), prog_bar=stage == "val")

    def sample_clips(self, batch: dict) -> dict:
        """For the sample callback: generated pose sequences (B, T, 17, 3) of a validation batch and the real ones."""
        with torch.no_grad(), eval_mode(self):
            keypoints = batch["keypoints"][:, : self.frames].to(self.device)
            gen = self.sequence(keypoints[:, 0], batch["action"].to(self.device),
                                item_noise(batch["index"], 0, self.hparams.noise_dim))
        return {"keypoints": gen, "real_keypoints": keypoints,
                "labels": [self.actions[int(a)] for a in batch["action"]]}



# stage 2

class SCGAN(_Pipeline, _Helpers, TaskModule):
    """Semantic consistent GAN: appearance image + target pose -> frame; and the image -> video pipeline.

    Args:
        image_size: S.
        base, res_blocks: G's widths (:class:`FrameGenerator`).
        d_base, d_layers: widths and depth of D and D_which (PatchGANs).
        semantic_consistency: the abnormal-pose branch, D_which and the feature term (False: the baseline).
        l1_weight, which_weight, feature_weight: λ_1, λ_w, λ_φ.
        abnormal_kinds: the corruptions the abnormal branch trains on (any of ``ABNORMAL_KINDS``: missing,
            scaled, jittered; one drawn per item). Evaluation's abnormal poses always use all three.
        estimator: zoo name of the pose estimator (pose error and FID features in evaluation; the input
            pose in :meth:`generate`); psgan: zoo name of the PSGAN entry of the pipeline.
    """

    task = "posevideo"
    summary = "SCGAN: pose-guided frame generation robust to abnormal poses; image + action -> video with PSGAN"
    paper = {"title": "Pose Guided Human Video Generation", "arxiv": "1807.11152"}
    card_metrics = [
        {"metric": "SSIM", "key": "test/ssim", "split": "test"},
        {"metric": "PSNR", "key": "test/psnr", "split": "test"},
        {"metric": "PCK@0.1 (pose-estimator)", "key": "test/pck", "split": "test", "optional": True},
        {"metric": "keypoint distance, px", "key": "test/distance", "split": "test", "optional": True},
        {"metric": "SSIM, abnormal poses", "key": "test/ssim_abnormal", "split": "test"},
        {"metric": "PSNR, abnormal poses", "key": "test/psnr_abnormal", "split": "test"},
        {"metric": "PCK@0.1, abnormal poses", "key": "test/pck_abnormal", "split": "test", "optional": True},
        {"metric": "keypoint distance, abnormal poses, px", "key": "test/distance_abnormal", "split": "test",
         "optional": True},
        {"metric": "FID (pose-estimator features)", "key": "test/fid", "split": "test", "optional": True},
        {"metric": "SSIM of the source frame itself (copy baseline)", "key": "test/ssim_copy", "split": "test"},
        {"metric": "PCK@0.1 of the source frame itself (copy baseline)", "key": "test/pck_copy", "split": "test",
         "optional": True},
    ]
    inference = ("generate", "render", "save_video")
    ddp_find_unused_parameters = True

    def __init__(self, *, image_size: int = 64, base: int = 32, res_blocks: int = 2, d_base: int = 32,
                 d_layers: int = 3, semantic_consistency: bool = True, l1_weight: float = 100.0,
                 which_weight: float = 1.0, feature_weight: float = 10.0,
                 abnormal_kinds: Sequence[str] = ABNORMAL_KINDS, lr: float = 2e-4, beta1: float = 0.5,
                 estimator: str | None = "pose-estimator", psgan: str | None = "psgan",
                 accumulate_grad_batches: int = 1, clip: float | None = None):
        super().__init__()
        abnormal_kinds = list(abnormal_kinds)  # a list in the saved hyperparameters (plain YAML)
        if not abnormal_kinds or any(kind not in ABNORMAL_KINDS for kind in abnormal_kinds):
            raise ValueError(f"SCGAN: abnormal_kinds must be some of {list(ABNORMAL_KINDS)}, got {abnormal_kinds} "
                             f"(model.init_args.abnormal_kinds)")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = FrameGenerator(base=base, res_blocks=res_blocks)
        self.discriminator = PatchGAN(in_channels=3, base=d_base, layers=d_layers, cond_channels=POSE_CHANNELS + 3,
                                      norm="instance")
        if semantic_consistency:
            self.which = PatchGAN(in_channels=3, base=d_base, layers=d_layers, cond_channels=3, norm="instance")
        self._abnormal_rng = torch.Generator().manual_seed(0)

    # rendering

    def maps(self, keypoints: Tensor) -> Tensor:
        return pose_maps(keypoints.to(self.device), self.hparams.image_size, self.hparams.image_size)

    def render(self, image: Tensor, keypoints: Tensor) -> Tensor:
        """Frames (B, 3, S, S) in [-1, 1] of the person in ``image`` (B or 1, 3, S, S) in [-1, 1] at ``keypoints``
        (B, 17, 3) (image pixels)."""
        image = image.to(self.device)
        if image.shape[0] == 1 and keypoints.shape[0] > 1:
            image = image.expand(keypoints.shape[0], -1, -1, -1)
        return self.generator(image, self.maps(keypoints))

    def _which_features(self, frame: Tensor, source: Tensor) -> Tensor:
        return self.which.net[:-1](torch.cat([frame, source], 1))

    # training

    def training_step(self, batch: dict, batch_idx: int) -> None:
        hp = self.hparams
        opts = self.optimizers()
        opt_g, opt_d = opts[0], opts[1]
        opt_w = opts[2] if hp.semantic_consistency else None
        step = dict(batch_idx=batch_idx, accumulate=hp.accumulate_grad_batches, clip_val=hp.clip)
        source, target, kp = batch["source"], batch["target"], batch["target_keypoints"]
        maps = self.maps(kp)
        cond = torch.cat([maps, source], 1)
        fake = self.generator(source, maps)
        bad = None
        if hp.semantic_consistency:
            bad_kp = abnormal_pose(kp, self._abnormal_rng, kinds=tuple(self.hparams.abnormal_kinds))
            bad = self.generator(source, self.maps(bad_kp))

        def d_loss() -> Tensor:
            real_logits = self.discriminator(target, cond)
            loss = bce_d_loss(real_logits, self.discriminator(fake.detach(), cond))
            if bad is not None:
                loss = 0.5 * (loss + bce_d_loss(real_logits, self.discriminator(bad.detach(), cond)))
            return loss

        logs = {"train/d_loss": manual_step(self, opt_d, d_loss, **step)}
        if bad is not None:
            logs["train/which_loss"] = manual_step(self, opt_w, lambda: bce_d_loss(
                self.which(fake.detach(), source), self.which(bad.detach(), source)), **step)

        def g_loss() -> dict:
            out = {"adv": bce_g_loss(self.discriminator(fake, cond)), "l1": (fake - target).abs().mean()}
            total = out["adv"] + hp.l1_weight * out["l1"]
            if bad is not None:
                out["adv_abnormal"] = bce_g_loss(self.discriminator(bad, cond))
                out["l1_abnormal"] = (bad - target).abs().mean()
                out["which"] = bce_g_loss(self.which(bad, source))
                out["feature"] = (self._which_features(bad, source)
                                  - self._which_features(fake, source).detach()).abs().mean()
                total = total + out["adv_abnormal"] + hp.l1_weight * out["l1_abnormal"] + \
                    hp.which_weight * out["which"] + hp.feature_weight * out["feature"]
            out["total"] = total
            return out

        g = manual_step(self, opt_g, g_loss, **step)
        logs.update({f"train/{k}": v for k, v in g.items() if k != "total"})
        self.log_dict(logs, batch_size=len(source))
        self.log("train/g_loss", g["total"], prog_bar=True, batch_size=len(source))

    def configure_optimizers(self):
        hp = self.hparams
        betas = (hp.beta1, 0.999)
        opts = [torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=betas)]
        if hp.semantic_consistency:
            opts.append(torch.optim.Adam(self.which.parameters(), lr=hp.lr, betas=betas))
        return opts

    # evaluation

    def _eval_start(self, stage: str) -> None:
        from crossmedia.metrics.image import FID, PSNR, SSIM
        from crossmedia.tasks.posevideo.metrics import PCKMetric

        self._metrics = {}
        for suffix in ("", "_abnormal"):
            self._metrics[f"ssim{suffix}"] = SSIM(input_range=(-1, 1)).to(self.device)
            self._metrics[f"psnr{suffix}"] = PSNR(input_range=(-1, 1)).to(self.device)
            self._metrics[suffix] = PCKMetric().to(self.device)  # logged as pck{suffix}, distance{suffix}
        self._metrics["ssim_copy"] = SSIM(input_range=(-1, 1)).to(self.device)
        self._metrics["_copy"] = PCKMetric().to(self.device)
        self._fid = None
        estimator = self._zoo(self.hparams.estimator)
        if estimator is not None:
            size = self.hparams.image_size
            self._fid = FID(feature_net=_EstimatorFeatures(estimator), image_shape=(3, size, size),
                            input_range=(-1, 1), feature_range=(-1, 1)).to(self.device)

    def abnormal_eval_pose(self, keypoints: Tensor, index: Tensor, target_frame: Tensor) -> Tensor:
        """The evaluation's abnormal pose of each item: seeded by (clip, target frame), so it repeats."""
        rows = [abnormal_pose(keypoints[i:i + 1], torch.Generator().manual_seed(int(c) * 100 + int(t)))
                for i, (c, t) in enumerate(zip(index.tolist(), target_frame.tolist()))]
        return torch.cat(rows)

    def _eval_step(self, batch: dict) -> None:
        source, target, kp = batch["source"], batch["target"], batch["target_keypoints"]
        bad_kp = self.abnormal_eval_pose(kp, batch["index"], batch["target_frame"])
        estimator = self._zoo(self.hparams.estimator)
        for suffix, pose in (("", kp), ("_abnormal", bad_kp)):
            fake = self.render(source, pose).float().clamp(-1, 1)
            self._metrics[f"ssim{suffix}"].update(fake, target)
            self._metrics[f"psnr{suffix}"].update(fake, target)
            if estimator is not None:
                with eval_mode(estimator):
                    found = estimator.estimate(fake)
                self._metrics[suffix].update(found, kp)  # against the TRUE pose
                if not suffix:
                    self._fid.update(target, real=True)
                    self._fid.update(fake, real=False)
        # the reference any generator must beat: the source frame as the prediction of the target frame
        self._metrics["ssim_copy"].update(source, target)
        if estimator is not None:
            with eval_mode(estimator):
                self._metrics["_copy"].update(estimator.estimate(source), kp)

    def _eval_end(self, stage: str) -> None:
        values = _computed(self._metrics, stage)
        if self._fid is not None and self._fid.update_count:
            values[f"{stage}/fid"] = float(self._fid.compute())
        self.log_dict(values, prog_bar=stage == "val")

    def sample_clips(self, batch: dict) -> dict:
        """For the sample callback: each item's whole real pose sequence rendered from its source frame."""
        with torch.no_grad(), eval_mode(self):
            keypoints = batch["keypoints"].to(self.device)  # (B, T, 17, 3)
            b, t = keypoints.shape[:2]
            source = batch["source"].to(self.device)
            frames = self.render(source.repeat_interleave(t, 0), keypoints.reshape(b * t, 17, 3))
        return {"keypoints": keypoints, "frames": frames.reshape(b, t, *frames.shape[1:])}


    # the pipeline

    @torch.no_grad()
    def generate(self, image, action: str, frames: int = 16, *, seed: int = 0, pose=None,
                 smooth: bool = False) -> Tensor:
        """A video (frames, 3, S, S) in [0, 1] of the person in ``image`` doing ``action``.

        ``image``: a PIL image, a path, or a (3, S, S) tensor in [-1, 1]; ``pose``: its keypoints (17, 3)
        in the pixels of the S x S image (default: this task's pose estimator finds them); ``seed``: the
        PSGAN noise; ``smooth``: filter PSGAN's poses over time (:meth:`PSGAN.generate_poses`)."""
        picture, poses = self.pipeline_poses(image, action, frames, seed=seed, pose=pose, smooth=smooth)
        with eval_mode(self):
            video = self.render(picture, poses)
        return ((video.float().clamp(-1, 1) + 1) / 2).cpu()


class _EstimatorFeatures(nn.Module):
    """The pose estimator's pooled features as FID's feature network (held by reference)."""

    def __init__(self, estimator) -> None:
        super().__init__()
        object.__setattr__(self, "estimator", estimator)

    def forward(self, images: Tensor) -> Tensor:
        return self.estimator.features(images)
