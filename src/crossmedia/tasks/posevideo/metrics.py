"""Pose metrics of the posevideo task: pose error, smoothness and diversity of pose sequences.

Keypoints are COCO-17 ``(x, y, v)`` in pixels (:mod:`crossmedia.data.keypoints`); v = 0 means the
joint is absent, whatever x and y say. Every function returns a float32 scalar tensor; every
:class:`torchmetrics.Metric` here accumulates sums and counts whose states are summed across DDP
processes (``dist_reduce_fx="sum"``), so ``compute()`` is the same on every process and equals the
function over the whole split (not a mean of batch means).

- **PCK@α** (percentage of correct keypoints; Yang et al., "Articulated Human Detection with
  Flexible Mixtures of Parts", TPAMI 2013, the pose error the posevideo paper — Yang et al., "Pose
  Guided Human Video Generation", ECCV 2018, arXiv 1807.11152 — reports for generated frames). For
  a target pose with visible joints V and predicted positions p̂_k::

      size   = max(max_{k∈V} x_k − min_{k∈V} x_k,  max_{k∈V} y_k − min_{k∈V} y_k)   (clamped to ≥ 1 px)
      PCK@α  = Σ_poses Σ_{k∈V} [ |p̂_k − p_k|₂ ≤ α · size ]  /  Σ_poses |V|

  i.e. the size of a pose is the larger side of the bounding box of its visible target joints, and
  the fraction is taken over all visible target joints pooled (a pose with more visible joints
  weighs more). The prediction's own visibility is ignored: its (x, y) are scored as they are, so
  an estimator reports its best guess even for a low-confidence joint (a joint predicted as
  COCO's (0, 0, 0) simply lands at the origin and is usually wrong).
- **Mean keypoint distance**: Σ |p̂_k − p_k|₂ / Σ |V| over the same visible target joints, in pixels.
- **Smoothness** (mean joint acceleration): for a sequence x_t of one joint,
  a_t = |x_{t+1} − 2 x_t + x_{t−1}|₂ (pixels / frame²), averaged over t = 1..T−2 and the joints
  visible in all three frames t−1, t, t+1. 0 for constant-velocity motion; x_t = a t² gives 2a.
- **Diversity**: sequences s_1..s_N generated from N different noises for the same input; the mean
  over pairs i < j, frames and joints of |s_i − s_j|₂ (pixels). 0 means the noise is ignored.
- **Hue error** (colour control of the two-stage attribute generator): the hue of a garment in a frame
  is the chroma-weighted circular mean of its pixels' hues inside the garment's mask (label ``l`` of
  the frame's label mask M; HSV hexcone hue h_p in degrees, chroma c_p = max(RGB) − min(RGB), so grey
  and black pixels, whose hue is undefined, do not count)::

      H(x, l) = atan2( Σ_{p: M_p = l} c_p sin h_p ,  Σ_{p: M_p = l} c_p cos h_p )
      d(a, b) = min(|a − b| mod 360, 360 − |a − b| mod 360)                 (circular distance, 0..180°)
      hue error = mean over (frame, garment) of d(H(x, l), requested hue)

  Items whose mask is empty or colourless (Σ c_p = 0) are left out (and not counted).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = [
    "pck",
    "mean_keypoint_distance",
    "pck_counts",
    "smoothness",
    "smoothness_sums",
    "sequence_diversity",
    "normalise_pose_sequence",
    "PCKMetric",
    "Smoothness",
    "rgb_to_hsv",
    "hsv_to_rgb",
    "garment_hue",
    "hue_distance",
    "HueError",
]

# COCO-17 indices of the joints that centre a pose (shoulders and hips)
_TORSO = (5, 6, 11, 12)


# helpers

def _check_pair(pred: Tensor, target: Tensor, what: str) -> tuple[Tensor, Tensor]:
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if target.dim() < 2 or target.shape[-1] != 3:
        raise ValueError(f"{what}: target must be (..., J, 3) keypoints (x, y, v), got {tuple(target.shape)}")
    if pred.shape[-1] not in (2, 3) or pred.shape[:-1] != target.shape[:-1]:
        raise ValueError(f"{what}: pred must be (..., J, 2 or 3) with the target's leading shape "
                         f"{tuple(target.shape[:-1])}, got {tuple(pred.shape)}")
    return pred.float(), target.float().to(pred.device)


def pck_counts(pred: Tensor, target: Tensor, threshold: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """(correct joints, summed distance in px, visible target joints) of ``pred`` against ``target``.

    The sums behind :func:`pck` and :func:`mean_keypoint_distance` (module docstring), each a float32
    scalar: ``pred`` (..., J, 2 or 3), ``target`` (..., J, 3); only target joints with v > 0 count.
    """
    pred, target = _check_pair(pred, target, "pck")
    visible = target[..., 2] > 0  # (..., J)
    xy = target[..., :2]
    big, small = torch.full_like(xy, float("inf")), torch.full_like(xy, float("-inf"))
    lo = torch.where(visible[..., None], xy, big).amin(dim=-2)  # (..., 2) bounding box of visible joints
    hi = torch.where(visible[..., None], xy, small).amax(dim=-2)  # (..., 2)
    size = torch.nan_to_num((hi - lo).amax(dim=-1), nan=1.0, posinf=1.0, neginf=1.0).clamp_min(1.0)  # (...,)
    dist = (pred[..., :2] - xy).norm(dim=-1)  # (..., J)
    dist = torch.where(visible, dist, torch.zeros_like(dist))
    correct = visible & (dist <= threshold * size[..., None])
    return correct.sum().float(), dist.sum(), visible.sum().float()


def pck(pred: Tensor, target: Tensor, threshold: float = 0.1) -> Tensor:
    """PCK@``threshold``: the fraction of target-visible joints predicted within threshold x the target
    pose's size (the larger side of its visible joints' bounding box; module docstring).

    ``pred`` (..., 17, 2 or 3) (its visibility is ignored), ``target`` (..., 17, 3). A float32
    scalar in [0, 1]; NaN when no target joint is visible (nothing to score).
    """
    correct, _, visible = pck_counts(pred, target, threshold)
    return correct / visible if visible > 0 else torch.full_like(visible, float("nan"))


def mean_keypoint_distance(pred: Tensor, target: Tensor) -> Tensor:
    """Mean Euclidean distance (pixels) between predicted and target joints over target-visible
    joints; ``pred`` (..., 17, 2 or 3), ``target`` (..., 17, 3). NaN when none is visible."""
    _, dist, visible = pck_counts(pred, target)
    return dist / visible if visible > 0 else torch.full_like(visible, float("nan"))


def smoothness_sums(keypoints: Tensor) -> tuple[Tensor, Tensor]:
    """(Σ a_t, count) of the joint accelerations a_t = |x_{t+1} − 2x_t + x_{t−1}|₂ of ``keypoints``
    (..., T, J, 2 or 3) over the joints visible in all three frames (all joints for 2 channels)."""
    keypoints = torch.as_tensor(keypoints).float()
    if keypoints.dim() < 3 or keypoints.shape[-1] not in (2, 3):
        raise ValueError(f"smoothness: keypoints must be (..., T, J, 2 or 3), got {tuple(keypoints.shape)}")
    if keypoints.shape[-3] < 3:
        raise ValueError(f"smoothness: needs T >= 3 frames for an acceleration, got T = {keypoints.shape[-3]}")
    xy = keypoints[..., :2]
    acc = (xy[..., 2:, :, :] - 2 * xy[..., 1:-1, :, :] + xy[..., :-2, :, :]).norm(dim=-1)  # (..., T-2, J)
    if keypoints.shape[-1] == 3:
        v = keypoints[..., 2] > 0  # (..., T, J)
        seen = v[..., 2:, :] & v[..., 1:-1, :] & v[..., :-2, :]
    else:
        seen = torch.ones_like(acc, dtype=torch.bool)
    return torch.where(seen, acc, torch.zeros_like(acc)).sum(), seen.sum().float()


def smoothness(keypoints: Tensor) -> Tensor:
    """Mean joint acceleration (pixels / frame²) of pose sequences ``keypoints`` (B, T, 17, 3)
    (or any (..., T, J, 2 or 3)): module docstring. Lower is smoother; NaN if nothing is visible."""
    total, count = smoothness_sums(keypoints)
    return total / count if count > 0 else torch.full_like(count, float("nan"))


def sequence_diversity(seqs: Tensor) -> Tensor:
    """Mean L2 distance (pixels) between sequences generated from different noises for one input.

    ``seqs`` (B, N, T, J, 2): N ≥ 2 sequences per input (3 channels: the visibility is used, a joint
    counts where both sequences have it). For every pair i < j of the N sequences of an item, the
    distance |s_i − s_j|₂ of each joint in each frame; the mean over items, pairs, frames and joints.
    """
    seqs = torch.as_tensor(seqs).float()
    if seqs.dim() != 5 or seqs.shape[-1] not in (2, 3):
        raise ValueError(f"sequence_diversity: seqs must be (B, N, T, J, 2 or 3), got {tuple(seqs.shape)}")
    n = seqs.shape[1]
    if n < 2:
        raise ValueError(f"sequence_diversity: needs N >= 2 sequences per input, got N = {n}")
    i, j = torch.triu_indices(n, n, offset=1, device=seqs.device)  # (P,) pairs i < j
    dist = (seqs[:, i, ..., :2] - seqs[:, j, ..., :2]).norm(dim=-1)  # (B, P, T, J)
    if seqs.shape[-1] == 3:
        both = (seqs[:, i, ..., 2] > 0) & (seqs[:, j, ..., 2] > 0)
        count = both.sum().float()
        total = torch.where(both, dist, torch.zeros_like(dist)).sum()
        return total / count if count > 0 else torch.full_like(count, float("nan"))
    return dist.mean()


def normalise_pose_sequence(keypoints: Tensor, image_size: int) -> Tensor:
    """Pose sequences (B, T, 17, 3) in pixels -> translation- and scale-normalised features (B, T, 17, 3).

    With c the centre of frame 0 — the mean of its visible shoulders and hips (COCO 5, 6, 11, 12);
    if none is visible, the mean of its visible joints; if none, the image centre ((S − 1)/2, (S − 1)/2)
    — and S = ``image_size``, each joint becomes::

        (x', y', v') = ((x − c_x) / S, (y − c_y) / S, 1)   if v > 0,     (0, 0, 0) otherwise

    so motion relative to the first frame (a walk's travel, a jump's rise) is kept, the position in
    the picture is not, and an absent joint is zeros plus its visibility channel 0.
    """
    keypoints = torch.as_tensor(keypoints).float()
    if keypoints.dim() != 4 or keypoints.shape[-1] != 3:
        raise ValueError(f"normalise_pose_sequence: keypoints must be (B, T, J, 3), got {tuple(keypoints.shape)}")
    if image_size < 1:
        raise ValueError(f"normalise_pose_sequence: image_size must be positive, got {image_size}")
    visible = (keypoints[..., 2] > 0).float()  # (B, T, J)
    first_v, first_xy = visible[:, 0], keypoints[:, 0, :, :2]  # (B, J), (B, J, 2)
    torso = torch.zeros_like(first_v)
    torso[:, list(_TORSO)] = 1.0
    centre = torch.full_like(first_xy[:, 0], (image_size - 1) / 2)  # (B, 2)
    for weights in (first_v, first_v * torso):  # the later, narrower choice wins where it has joints
        count = weights.sum(dim=1, keepdim=True)  # (B, 1)
        mean = (first_xy * weights[..., None]).sum(dim=1) / count.clamp_min(1.0)
        centre = torch.where(count > 0, mean, centre)
    xy = (keypoints[..., :2] - centre[:, None, None, :]) / image_size * visible[..., None]
    return torch.cat([xy, visible[..., None]], dim=-1)


# colour

def rgb_to_hsv(rgb: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> (..., 3, H, W) HSV: hue in degrees [0, 360), saturation and value in
    [0, 1] (the hexcone model; hue 0 where the chroma is 0)."""
    r, g, b = rgb.unbind(-3)
    value, arg = rgb.max(-3)
    low = rgb.min(-3).values
    chroma = value - low
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(arg == 0, ((g - b) / safe) % 6, torch.where(arg == 1, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(chroma > 0, hue * 60.0, torch.zeros_like(hue)) % 360.0
    saturation = torch.where(value > 0, chroma / torch.where(value > 0, value, torch.ones_like(value)), 0.0)
    return torch.stack([hue, saturation, value], -3)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """The inverse of :func:`rgb_to_hsv`: (..., 3, H, W) HSV (hue in degrees) -> RGB in [0, 1]."""
    hue, saturation, value = hsv.unbind(-3)
    k = torch.stack([(5 + hue / 60.0) % 6, (3 + hue / 60.0) % 6, (1 + hue / 60.0) % 6], -3)
    weight = torch.clamp(torch.minimum(k, 4 - k), 0.0, 1.0)
    return value.unsqueeze(-3) - (value * saturation).unsqueeze(-3) * weight


def garment_hue(images: Tensor, masks: Tensor, label: int) -> tuple[Tensor, Tensor]:
    """H(x, l) of the module docstring: images (B, 3, H, W) in [-1, 1], label masks (B, H, W) -> the hue
    in degrees (B,) and whether it is defined (B,) bool (a non-empty mask with some chroma)."""
    rgb = (images.float().clamp(-1, 1) + 1) / 2
    hue = rgb_to_hsv(rgb)[:, 0] * (torch.pi / 180.0)  # (B, H, W)
    chroma = rgb.amax(1) - rgb.amin(1)
    weight = chroma * (masks.to(rgb.device) == label)
    s, c = (weight * hue.sin()).flatten(1).sum(1), (weight * hue.cos()).flatten(1).sum(1)
    return torch.rad2deg(torch.atan2(s, c)) % 360.0, weight.flatten(1).sum(1) > 0


def hue_distance(a: Tensor, b: Tensor) -> Tensor:
    """Circular distance between hues in degrees, in [0, 180]."""
    d = (torch.as_tensor(a, dtype=torch.float32) - torch.as_tensor(b, dtype=torch.float32)).abs() % 360.0
    return torch.minimum(d, 360.0 - d)


# metrics

class HueError(Metric):
    """Mean circular hue error (degrees) of garments against requested hues, pooled over all updates.

    ``update(images (B, 3, H, W) in [-1, 1], masks (B, H, W) labels, hues (B, L) requested degrees)``, one
    column per label of ``labels`` (default (1, 2): top, bottom; module docstring). States (summed across
    processes): ``total``, ``count``.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, labels: tuple[int, ...] = (1, 2), **kwargs) -> None:
        super().__init__(**kwargs)
        self.labels = tuple(int(label) for label in labels)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, images: Tensor, masks: Tensor, hues: Tensor) -> None:
        hues = torch.as_tensor(hues, dtype=torch.float32, device=images.device).reshape(len(images), -1)
        if hues.shape[1] != len(self.labels):
            raise ValueError(f"HueError: hues must be (B, {len(self.labels)}) (one per label {self.labels}), "
                             f"got {tuple(hues.shape)}")
        for j, label in enumerate(self.labels):
            hue, ok = garment_hue(images, masks, label)
            self.total += hue_distance(hue, hues[:, j])[ok].double().sum().to(self.total.device)
            self.count += ok.double().sum().to(self.count.device)

    def compute(self) -> Tensor:
        nan = torch.tensor(float("nan"), device=self.total.device)
        return torch.where(self.count > 0, self.total / self.count.clamp_min(1.0), nan).float()


class PCKMetric(Metric):
    """PCK@``threshold`` and mean keypoint distance (pixels), pooled over all updates (module docstring).

    ``update(pred (..., 17, 2|3), target (..., 17, 3))``; ``compute()`` -> ``{"pck", "distance"}``
    float tensors. States (summed across processes): ``correct``, ``distance``, ``visible``.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, threshold: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        if threshold <= 0:
            raise ValueError(f"PCKMetric threshold is a fraction of the pose size (> 0), got {threshold}")
        self.threshold = float(threshold)
        for name in ("correct", "distance", "visible"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        correct, dist, visible = pck_counts(pred, target, self.threshold)
        self.correct += correct.double().to(self.correct.device)
        self.distance += dist.double().to(self.distance.device)
        self.visible += visible.double().to(self.visible.device)

    def compute(self) -> dict[str, Tensor]:
        n = self.visible.clamp_min(1.0)
        nan = torch.tensor(float("nan"), device=n.device)
        return {"pck": torch.where(self.visible > 0, self.correct / n, nan).float(),
                "distance": torch.where(self.visible > 0, self.distance / n, nan).float()}


class Smoothness(Metric):
    """Mean joint acceleration (pixels / frame²) of pose sequences, pooled over all updates.

    ``update(keypoints (B, T, 17, 3))``; ``compute()`` -> a float scalar (:func:`smoothness` over
    every sequence seen). States (summed across processes): ``total``, ``count``.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, keypoints: Tensor) -> None:
        total, count = smoothness_sums(keypoints)
        self.total += total.double().to(self.total.device)
        self.count += count.double().to(self.count.device)

    def compute(self) -> Tensor:
        nan = torch.tensor(float("nan"), device=self.total.device)
        return torch.where(self.count > 0, self.total / self.count.clamp_min(1.0), nan).float()
