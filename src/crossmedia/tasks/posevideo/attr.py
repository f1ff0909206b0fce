"""The two-stage decoupled attribute generator: appearance -> attribute code, pose maps + code -> frame, with
the clothes' colours as explicit slots of the code (``pose-attr``; the end-to-end baseline ``pose-attr-e2e``).

A follow-up of Yang et al., "Pose Guided Human Video Generation" (ECCV 2018, arXiv 1807.11152) known only
in outline (issue 12): an attribute encoder (appearance -> latent code) and a pose-aware generator (pose
maps + code -> frame) are trained separately, the encoder first, over colour-augmented frames, so that
appearance and pose disentangle and the colour of the clothes can be changed through the code while the
pose stays. What we built where the outline is silent:

The code. z = (c, A): c (B, 2, 3) are the mean RGB colours of the top and the bottom (in [-1, 1]) — the
*colour slots*, an explicit, editable part of the code — and A are the appearance features of the
source image (the image encoder of :class:`~crossmedia.tasks.posevideo.models.FrameGenerator`: 4
stride-2 convolutions, their maps passed to the decoder as U-Net skips), which carry everything else
(skin, hair, background, texture).

* Stage 1, the attribute encoder E_c (``colour_net``: 3 stride-2 DownBlocks, mean pooling, a linear
  layer, tanh) learns the colour slots alone, on colour-augmented frames (below)::

      L_1 = ‖E_c(x̃) − m(x̃, M)‖₁,    m(x, M)_l = Σ_{p: M_p = l} x_p / |{p: M_p = l}|   (l = top, bottom)

  (the garment's mean colour inside its mask M, the per-frame clothes masks of the puppets).
* Stage 2, E_c frozen, the pose-aware generator G (a FrameGenerator with ``code_dim = 6``: FiLM of its
  bottleneck and decoder levels by c, and c at its head) renders the target frame from the source frame
  and the target pose maps P_t, with the colour slots read from the (augmented) target frame::

      x̂_t = G(x̃_s, P_t, E_c(x̃_t)),    L_2 = ‖x̂_t − x̃_t‖₁

  The source and the target frames get INDEPENDENT random hue shifts, so the clothes colours of the
  source image are useless to G: it must take them from the slots, and the rest from the image. This
  is what disentangles colour from the appearance features and the pose.

Colour augmentation (:func:`hue_shift`): inside each garment's mask, every pixel's hue is rotated by the
same random angle (uniform in [0°, 360°), one per garment and frame); saturation and value stay, so
textures (stripes and dots in a darker shade of the same hue) stay; pixels outside the masks stay
exactly as they were.

Colour control: :meth:`PoseAttr.generate` (``attributes={"top": "red"}``) and :meth:`PoseAttr.render`
(``attributes=``) set the requested garment's slot to the requested hue, keeping the slot's saturation
and value (:func:`recolour`) — an edit inside the augmentation's distribution. A request is a colour
name of :data:`~crossmedia.data.builtin.puppets.PUPPET_COLOURS` or a hue in degrees. The explicit code
edit is the same thing by hand: ``c = model.colours(image)`` (B, 2, 3), change it, ``model.render(image,
keypoints, colours=c)``.

The baseline (``two_stage=False, colour_augment=False``, card ``pose-attr-e2e``): the same E_c and G of
the same size trained end to end in one stage (L_1 + L_2 from the first epoch, gradients of L_2 reaching
E_c) on the frames as they are: the slots are still there and still predict the colours, but nothing
forces G to use them, since the source image shows the same colours.

Evaluation (test split, fixed pairs): SSIM and pose error (PCK@0.1 and keypoint distance of the task's
pose estimator against the target pose) of the reconstruction; then both garments' slots are edited to
the colour of :data:`PUPPET_COLOURS` whose hue is farthest from the garment's true hue, and the hue error
(:class:`~crossmedia.tasks.posevideo.metrics.HueError`, inside the target frame's masks) of the edited
frame to the requested hue and its pose error are measured; the reference is the hue error of the
unedited frame to the same request (what a generator without colour control scores).

Shapes: B items; S image side (64); masks (B, S, S) uint8 labels (1 top, 2 bottom).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.nn.blocks import DownBlock
from crossmedia.tasks.posevideo.metrics import HueError, PCKMetric, garment_hue, hsv_to_rgb, rgb_to_hsv
from crossmedia.tasks.posevideo.models import FrameGenerator, pose_maps
from crossmedia.tasks.posevideo.module import _computed, _Helpers, _Pipeline

__all__ = ["GARMENTS", "hue_shift", "garment_colours", "recolour", "colour_hue", "ColourEncoder", "PoseAttr"]

GARMENTS = {"top": 1, "bottom": 2}  # garment -> label in the clothes masks


# colour operations

def hue_shift(images: Tensor, masks: Tensor, shifts: Tensor, labels: tuple[int, ...] = (1, 2)) -> Tensor:
    """Rotate the hue of the pixels of each label by its angle: images (B, 3, S, S) in [-1, 1], masks (B, S, S),
    shifts (B, L) degrees (one per label) -> images; pixels outside the labels' masks are returned unchanged."""
    rgb = (images.float() + 1) / 2
    hsv = rgb_to_hsv(rgb)
    masks = masks.to(images.device)
    total = torch.zeros_like(hsv[:, 0])
    inside = torch.zeros_like(masks, dtype=torch.bool)
    for j, label in enumerate(labels):
        where = masks == label
        total = total + where * shifts[:, j, None, None].to(total)
        inside |= where
    hsv = torch.stack([(hsv[:, 0] + total) % 360.0, hsv[:, 1], hsv[:, 2]], 1)
    shifted = hsv_to_rgb(hsv) * 2 - 1
    return torch.where(inside[:, None], shifted.to(images.dtype), images)


def garment_colours(images: Tensor, masks: Tensor, labels: tuple[int, ...] = (1, 2)) -> tuple[Tensor, Tensor]:
    """m(x, M) of the module docstring: the mean colour (B, L, 3) in [-1, 1] of each label's pixels, and (B, L)
    bool whether the label has any pixel (else its colour is 0)."""
    masks = masks.to(images.device)
    weights = torch.stack([(masks == label) for label in labels], 1).to(images.dtype)  # (B, L, S, S)
    count = weights.flatten(2).sum(-1)  # (B, L)
    total = torch.einsum("blhw,bchw->blc", weights, images)
    return total / count.clamp_min(1.0)[..., None], count > 0


def colour_hue(request) -> float:
    """A colour request -> hue in degrees: a name of :data:`~crossmedia.data.builtin.puppets.PUPPET_COLOURS` or a
    number (degrees)."""
    from crossmedia.data.builtin.puppets import PUPPET_COLOURS

    if isinstance(request, (int, float)) and not isinstance(request, bool):
        return float(request) % 360.0
    if isinstance(request, str) and request in PUPPET_COLOURS:
        rgb = torch.tensor(PUPPET_COLOURS[request], dtype=torch.float32).view(1, 3, 1, 1) / 255.0
        return float(rgb_to_hsv(rgb)[0, 0, 0, 0])
    raise ValueError(f"unknown colour {request!r}; ask for one of {', '.join(PUPPET_COLOURS)} or a hue in degrees")


def recolour(colours: Tensor, hues: Tensor) -> Tensor:
    """Colour slots (B, L, 3) in [-1, 1] with their hue set to ``hues`` (B, L) degrees (NaN: keep the slot),
    saturation and value kept."""
    hsv = rgb_to_hsv(((colours.float() + 1) / 2).transpose(1, 2).unsqueeze(-1))  # (B, 3, L, 1)
    hues = hues.to(hsv)
    hue = torch.where(torch.isnan(hues), hsv[:, 0, :, 0], hues % 360.0)
    hsv = torch.stack([hue[..., None], hsv[:, 1], hsv[:, 2]], 1)
    return (hsv_to_rgb(hsv)[..., 0].transpose(1, 2) * 2 - 1).to(colours.dtype)


# networks

class ColourEncoder(nn.Module):
    """E_c: image (B, 3, S, S) in [-1, 1] -> colour slots (B, L, 3) in [-1, 1] (3 DownBlocks, mean pool, linear, tanh)."""

    def __init__(self, *, base: int = 16, garments: int = 2) -> None:
        super().__init__()
        self.garments = garments
        self.net = nn.Sequential(DownBlock(3, base, norm=False), DownBlock(base, 2 * base), DownBlock(2 * base, 4 * base))
        self.head = nn.Linear(4 * base, 3 * garments)

    def forward(self, images: Tensor) -> Tensor:
        return torch.tanh(self.head(self.net(images).mean((2, 3)))).view(len(images), self.garments, 3)


# the module

class PoseAttr(_Pipeline, _Helpers, TaskModule):
    """Two-stage attribute generator: appearance -> (colour slots, appearance features); pose + code -> frame.

    Equations and choices: module docstring. Trained with automatic optimisation (no adversary: L1 terms
    only), one Adam; in stage 1 only E_c has a loss, in stage 2 E_c is frozen.

    Args:
        image_size: S.
        base, res_blocks: G's widths (:class:`~crossmedia.tasks.posevideo.models.FrameGenerator`).
        colour_base: E_c's first width.
        two_stage: stage 1 (E_c alone, ``encoder_epochs`` epochs) then stage 2 (G, E_c frozen); False: the
            end-to-end baseline (L_1 + L_2 together from the start, E_c trained by both).
        colour_augment: independent random hue shifts of the source and target clothes in training.
        encoder_epochs: the epochs of stage 1 (4, the pose-attr card's: after 1 the slots were imprecise, L1 0.33
            against 0.15, and the generator can only render what they say).
        colour_weight: the weight of L_1 in the end-to-end baseline.
        lr: Adam's learning rate.
        estimator: zoo name of the pose estimator (pose error in evaluation; the input pose in ``generate``);
            psgan: zoo name of the PSGAN entry of ``generate``.
    """

    task = "posevideo"
    summary = "Two-stage attribute generator: pose + appearance code -> frame; clothes colour set on request"
    paper = {"title": "Pose Guided Human Video Generation", "arxiv": "1807.11152"}
    card_metrics = [
        {"metric": "hue error of the edited clothes to the requested colour, degrees", "key": "test/hue_error",
         "split": "test"},
        {"metric": "hue error of the unedited frame to the same request (no control), degrees",
         "key": "test/hue_error_unedited", "split": "test"},
        {"metric": "hue error of the reconstruction to the true clothes, degrees", "key": "test/hue_error_recon",
         "split": "test"},
        {"metric": "SSIM of the reconstruction", "key": "test/ssim", "split": "test"},
        {"metric": "PCK@0.1 (pose-estimator), reconstruction", "key": "test/pck", "split": "test", "optional": True},
        {"metric": "PCK@0.1 (pose-estimator), colour edited", "key": "test/pck_edit", "split": "test",
         "optional": True},
        {"metric": "keypoint distance, reconstruction, px", "key": "test/distance", "split": "test", "optional": True},
        {"metric": "keypoint distance, colour edited, px", "key": "test/distance_edit", "split": "test",
         "optional": True},
    ]
    inference = ("generate", "render", "colours", "save_video")
    ddp_find_unused_parameters = True  # stage 1 leaves G without gradients, stage 2 E_c

    def __init__(self, *, image_size: int = 64, base: int = 16, res_blocks: int = 1, colour_base: int = 16,
                 two_stage: bool = True, colour_augment: bool = True, encoder_epochs: int = 4,
                 colour_weight: float = 1.0, lr: float = 1e-3, estimator: str | None = "pose-estimator",
                 psgan: str | None = "psgan"):
        super().__init__()
        self.save_hyperparameters()
        self.colour_net = ColourEncoder(base=colour_base, garments=len(GARMENTS))
        self.generator = FrameGenerator(base=base, res_blocks=res_blocks, code_dim=3 * len(GARMENTS))
        self._augment_rng = torch.Generator().manual_seed(0)

    # the code and rendering

    def maps(self, keypoints: Tensor) -> Tensor:
        return pose_maps(keypoints.to(self.device), self.hparams.image_size, self.hparams.image_size)

    def colours(self, image: Tensor) -> Tensor:
        """The colour slots (B, 2, 3) (top, bottom; RGB in [-1, 1]) of images (B, 3, S, S) in [-1, 1]."""
        return self.colour_net(image.to(self.device))

    def edited(self, colours: Tensor, attributes: dict | None) -> Tensor:
        """Colour slots (B, 2, 3) with the hue of each garment named in ``attributes`` (``{"top": "red",
        "bottom": 200.0}``: a colour name or a hue in degrees) set to the request."""
        if not attributes:
            return colours
        unknown = sorted(set(attributes) - set(GARMENTS))
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; this model edits {', '.join(GARMENTS)}")
        hues = torch.full(colours.shape[:2], float("nan"))
        for j, garment in enumerate(GARMENTS):
            if garment in attributes:
                hues[:, j] = colour_hue(attributes[garment])
        return recolour(colours, hues.to(colours.device))

    def render(self, image: Tensor, keypoints: Tensor, *, attributes: dict | None = None,
               colours: Tensor | None = None) -> Tensor:
        """Frames (B, 3, S, S) in [-1, 1] of the person in ``image`` (B or 1, 3, S, S) at ``keypoints`` (B, 17, 3),
        with the colour slots ``colours`` (default: read from ``image``) edited by ``attributes``."""
        image = image.to(self.device)
        if colours is None:
            colours = self.colours(image)
        colours = self.edited(colours.to(self.device), attributes)
        if image.shape[0] == 1 and keypoints.shape[0] > 1:
            image = image.expand(keypoints.shape[0], -1, -1, -1)
            colours = colours.expand(keypoints.shape[0], -1, -1)
        return self.generator(image, self.maps(keypoints), colours.flatten(1))

    @torch.no_grad()
    def generate(self, image, action: str, frames: int = 16, *, seed: int = 0, pose=None,
                 attributes: dict | None = None, smooth: bool = False) -> Tensor:
        """A video (frames, 3, S, S) in [0, 1] of the person in ``image`` doing ``action``, the clothes recoloured
        by ``attributes`` (``{"top": "red"}``; names of PUPPET_COLOURS or hues in degrees).

        ``image``: a PIL image, a path, or a (3, S, S) tensor in [-1, 1]; ``pose``: its keypoints (17, 3)
        (default: the pose estimator's); ``seed``: PSGAN's noise; ``smooth``: filter PSGAN's poses over time
        (:meth:`~crossmedia.tasks.posevideo.module.PSGAN.generate_poses`). Pipeline: pose estimator -> psgan -> this."""
        picture, poses = self.pipeline_poses(image, action, frames, seed=seed, pose=pose, smooth=smooth)
        with eval_mode(self):
            video = self.render(picture, poses, attributes=attributes)
        return ((video.float().clamp(-1, 1) + 1) / 2).cpu()

    # training

    def _augmented(self, frames: Tensor, masks: Tensor) -> Tensor:
        if not self.hparams.colour_augment:
            return frames
        shifts = torch.rand(len(frames), len(GARMENTS), generator=self._augment_rng) * 360.0
        return hue_shift(frames, masks, shifts.to(frames.device))

    def _stage1(self) -> bool:
        return self.hparams.two_stage and self.current_epoch < self.hparams.encoder_epochs

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        hp = self.hparams
        source = self._augmented(batch["source"], batch["source_mask"])
        target = self._augmented(batch["target"], batch["target_mask"])
        logs = {}
        if not hp.two_stage or self._stage1():
            frames = torch.cat([source, target])
            real, present = garment_colours(frames, torch.cat([batch["source_mask"], batch["target_mask"]]))
            pred = self.colour_net(frames)
            logs["colour"] = ((pred - real).abs().mean(-1) * present).sum() / present.sum().clamp_min(1)
            if hp.two_stage:  # stage 1: the encoder alone
                self.log("train/colour", logs["colour"], batch_size=len(source))
                self.log("train/loss", logs["colour"], prog_bar=True, batch_size=len(source))
                return logs["colour"]
            slots = pred[len(source):]  # end to end: the target's slots, gradients reach E_c
        else:
            with torch.no_grad(), eval_mode(self.colour_net):
                slots = self.colour_net(target)  # stage 2: E_c frozen
        fake = self.generator(source, self.maps(batch["target_keypoints"]), slots.flatten(1))
        logs["l1"] = (fake - target).abs().mean()
        loss = logs["l1"] + (hp.colour_weight * logs["colour"] if "colour" in logs else 0.0)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=len(source))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(source))
        return loss

    def on_train_epoch_start(self) -> None:
        if self.hparams.two_stage:  # stage 2 freezes E_c (no gradient, so Adam leaves it as it is)
            self.colour_net.requires_grad_(self._stage1())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=(0.5, 0.999))

    # evaluation

    def _eval_start(self, stage: str) -> None:
        from crossmedia.metrics.image import SSIM

        self._metrics = {"ssim": SSIM(input_range=(-1, 1)).to(self.device), "": PCKMetric().to(self.device),
                         "_edit": PCKMetric().to(self.device)}
        for name in ("hue_error", "hue_error_unedited", "hue_error_recon"):
            self._metrics[name] = HueError(labels=tuple(GARMENTS.values())).to(self.device)

    def requested_hues(self, target: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """The evaluation's request per item and garment (B, 2) degrees: the PUPPET_COLOURS hue farthest from the
        garment's true hue in the real target frame; and that true hue (B, 2)."""
        from crossmedia.data.builtin.puppets import PUPPET_COLOURS

        palette = torch.tensor([colour_hue(name) for name in PUPPET_COLOURS])
        true = torch.stack([garment_hue(target, masks, label)[0] for label in GARMENTS.values()], 1).cpu()
        d = (true[..., None] - palette).abs() % 360.0
        far = torch.minimum(d, 360.0 - d).argmax(-1)  # (B, 2)
        return palette[far].to(target.device), true.to(target.device)

    def _eval_step(self, batch: dict) -> None:
        source, target, kp, masks = batch["source"], batch["target"], batch["target_keypoints"], batch["target_mask"]
        request, true = self.requested_hues(target, masks)
        colours = self.colours(source)
        recon = self.render(source, kp, colours=colours).float().clamp(-1, 1)
        edit = self.render(source, kp, colours=recolour(colours, request)).float().clamp(-1, 1)
        m = self._metrics
        m["ssim"].update(recon, target)
        m["hue_error"].update(edit, masks, request)
        m["hue_error_unedited"].update(recon, masks, request)
        m["hue_error_recon"].update(recon, masks, true)
        estimator = self._zoo(self.hparams.estimator)
        if estimator is not None:
            with eval_mode(estimator):
                m[""].update(estimator.estimate(recon), kp)
                m["_edit"].update(estimator.estimate(edit), kp)

    def _eval_end(self, stage: str) -> None:
        self.log_dict(_computed(self._metrics, stage), prog_bar=stage == "val")

    def sample_clips(self, batch: dict) -> dict:
        """For the sample callback: each item's real pose sequence rendered from its source frame, the clothes
        recoloured to the evaluation's requests."""
        with torch.no_grad(), eval_mode(self):
            keypoints = batch["keypoints"].to(self.device)  # (B, T, 17, 3)
            b, t = keypoints.shape[:2]
            source = batch["source"].to(self.device)
            request, _ = self.requested_hues(batch["target"].to(self.device), batch["target_mask"])
            colours = recolour(self.colours(source), request).repeat_interleave(t, 0)
            frames = self.render(source.repeat_interleave(t, 0), keypoints.reshape(b * t, 17, 3), colours=colours)
        return {"keypoints": keypoints, "frames": frames.reshape(b, t, *frames.shape[1:])}
