"""COCO-17 keypoints: joint order, skeleton, flip pairs, and rendering to / reading from pose maps.

The joint order and the skeleton are those of the COCO keypoint annotations (Lin et al., "Microsoft
COCO: Common Objects in Context", ECCV 2014; the ``person`` category's ``keypoints`` and
``skeleton`` fields). COCO's skeleton is 1-based; :data:`COCO17_LIMBS` holds the same 19 pairs
0-based, in COCO's order.

Keypoints are float tensors ``(..., 17, 3)`` of ``(x, y, v)`` in pixel coordinates: pixel (row i,
column j) of an H x W map has its centre at ``x = j, y = i`` (so x runs over [0, W-1], y over
[0, H-1]). ``v > 0`` means the joint is there (COCO's v = 1 "labelled, occluded" and v = 2
"visible" both count); ``v = 0`` means it is not, whatever x and y say (COCO writes (0, 0, 0)).

Pose maps (the pose representation of PSGAN / SCGAN, Yang et al., "Pose Guided Human Video
Generation", ECCV 2018, arXiv 1807.11152) are ``(..., 17 + L, H, W)`` floats in [0, 1]: one
Gaussian heatmap per joint, then one map per limb of the skeleton (:func:`render_pose`).
:func:`heatmap_argmax` and :func:`soft_argmax` read keypoints back from the joint maps.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "COCO17",
    "COCO17_LIMBS",
    "FLIP",
    "NUM_JOINTS",
    "NUM_LIMBS",
    "render_pose",
    "heatmap_argmax",
    "soft_argmax",
]

COCO17: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# COCO's ``skeleton`` (1-based) minus one: legs, hips, torso, arms, face.
COCO17_LIMBS: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

# Left/right joint pairs swapped by a horizontal flip (indices into COCO17).
FLIP: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

NUM_JOINTS = len(COCO17)
NUM_LIMBS = len(COCO17_LIMBS)

_CUTOFF = 12.0  # exp(-x) is written as exactly 0 for x > 12, i.e. map values below exp(-12) ≈ 6.1e-6
_WINDOW_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}  # the CPU kernel's output dtypes


# helpers


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) from an int (square) or a pair; both must be positive."""
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"pose map size must be positive, got {size!r}")
    return int(height), int(width)


def _keypoints(keypoints: Tensor, what: str) -> Tensor:
    """``keypoints`` as a float tensor of shape (..., J, 3); integers become float32."""
    keypoints = torch.as_tensor(keypoints)
    if not keypoints.is_floating_point():
        keypoints = keypoints.float()
    if keypoints.dim() < 2 or keypoints.shape[-1] != 3:
        raise ValueError(f"{what}: keypoints must be (..., J, 3) as (x, y, visibility), got shape "
                         f"{tuple(keypoints.shape)}")
    return keypoints


def _exp_neg(arg: Tensor) -> Tensor:
    """exp(-arg) in place for arg ≥ 0, exactly 0 where arg > _CUTOFF (values below ~6.1e-6).

    The cut is where the CPU kernel's windows end (:func:`_render_windows`), so both paths have the
    same zeros; it also keeps float32 out of the subnormal range (exp(-arg) for arg in ~(87, 104)),
    which x86 CPUs compute and multiply tens of times slower than normal numbers, products of two
    factors (the separable heatmaps) included.
    """
    return F.threshold_(arg.neg_(), -_CUTOFF, -math.inf).exp_()


def _gauss_1d(coords: Tensor, centres: Tensor, inv_two_var: float) -> Tensor:
    """exp(-(c - centre)² / 2σ²) for every centre (..., K) and coordinate (N,) -> (..., K, N)."""
    return _exp_neg((coords - centres[..., None]).square_().mul_(inv_two_var))


def _render_windows(x: Tensor, y: Tensor, visible: Tensor, pairs: Tensor, height: int, width: int,
                    sigma: float, limb_width: float, num_heat: int) -> Tensor:
    """The CPU path of :func:`render_pose` (numba): x, y, visible (..., J) (x = y = 0 where absent, all
    finite), pairs (L, 2) -> (..., num_heat + L, H, W) in the dtype of x, float32 or float64."""
    from crossmedia.data import _pose_kernels as kernels  # numba, compiled on first use

    frames = torch.stack((x, y, visible.to(x.dtype)), dim=-1).reshape(-1, x.shape[-1], 3)  # (N, J, 3)
    # np.zeros: the pages are mapped (2 MB ones: numpy asks for transparent huge pages) and zeroed
    # when first written, and only the windows are written
    out = np.zeros((frames.shape[0], num_heat + len(pairs), height, width), dtype=_WINDOW_DTYPES[x.dtype])
    kernels.render_windows(frames.double().numpy(), pairs.numpy(), out, float(sigma), float(limb_width),
                           _CUTOFF, num_heat)
    return torch.from_numpy(out).reshape(*x.shape[:-1], *out.shape[1:])


# functions


def render_pose(keypoints: Tensor, size: int | Sequence[int], *, sigma: float = 1.5, limb_width: float = 1.0,
                heatmaps: bool = True, limbs: bool = True,
                skeleton: Sequence[tuple[int, int]] = COCO17_LIMBS) -> Tensor:
    """Render keypoints ``(..., J, 3)`` to pose maps ``(..., J + L, H, W)`` (float, in [0, 1]).

    For joint k at (x_k, y_k) and pixel p = (x, y) (the pixel centres of the module docstring)::

        heatmap_k(p) = [v_k > 0] · exp(-|p - (x_k, y_k)|² / 2σ²)

    (the 2-D Gaussian is separable: the outer product of two 1-D ones). For limb l joining joints a
    and b, with u = b - a and the distance from p to the *segment* [a, b]::

        t(p) = clamp(((p - a) · u) / |u|², 0, 1),     d_l(p)² = |p - a - t(p) u|²
        limb_l(p) = [v_a > 0][v_b > 0] · exp(-d_l(p)² / 2w²)        (w = limb_width)

    so a limb map is 1 along the bone and falls off as a Gaussian of the distance to it; it is
    all zero unless both its joints are visible (a bone of zero length is a Gaussian around a). A
    joint with v = 0 gives an all-zero heatmap (its x and y are ignored, even NaN; it is never drawn
    at (0, 0)). Joints may lie outside the map; their Gaussian tails are drawn where they reach in.
    Values below exp(-12) ≈ 6.1e-6 are written as exact zeros: a joint's Gaussian is drawn in the
    square window |x - x_k|, |y - y_k| ≤ σ√24 around it (a product of two factors above exp(-12)),
    a limb where exp(-d²/2w²) ≥ exp(-12), i.e. within w√24 of the bone.

    Two implementations, equal to within ~3e-6 (float32 rounding; tested to 1e-5):

    * CPU, float32 / float64 keypoints with finite positions wherever v > 0 (a numba kernel,
      :mod:`crossmedia.data._pose_kernels`, compiled on the first call and cached on disk): the output
      is a zero-filled NumPy buffer (pages mapped lazily, as huge pages where the kernel allows) and
      only the windows are computed and written, in float64: per joint two 1-D Gaussians and their
      outer product over the window, per limb the rows within w√24 of the bone and in each row the
      columns within w√24 of its line. One thread. On 64 clips x 32 frames of 64 x 64 COCO maps
      (bench/pose_render.py) it takes ~0.25-0.3 s on our shared 2-core machine, of which ~0.17 s
      is the kernel zeroing the fresh 1.2 GB output's pages when they are first written and ~0.06 s
      the windows themselves.
    * Otherwise (CUDA and other devices, float16 / bfloat16, non-finite positions of visible
      joints), vectorised tensor operations: joint Gaussians as outer products of two 1-D Gaussians;
      the limb distance computed in the bone's frame (``q`` along, ``r`` across, both outer sums of
      a row and a column term), so the whole batch costs a handful of in-place full-size tensor
      operations with no loop over frames, joints or limbs; the limb maps are rendered first,
      using the joint maps' part of the output as scratch space, so that apart from the output
      only max(L - J, 0) maps per frame are allocated. In float32 its limb maps lose precision
      when a bone's joint lies far off the map (errors 7e-5 at 1000 px away, 7e-4 at 10⁴ px; the
      CPU kernel stays at 6e-6).

    Args:
        keypoints: ``(..., J, 3)`` as (x, y, visibility) in pixels, any leading dims (a frame
            ``(17, 3)``, a batch ``(B, 17, 3)``, clips ``(B, T, 17, 3)``); J = 17 for COCO-17.
        size: H = W = ``size``, or ``(H, W)``.
        sigma: σ of the joint Gaussians, in pixels.
        limb_width: w, the σ of the limb maps' fall-off across the bone, in pixels.
        heatmaps, limbs: which maps to return (joint heatmaps first, then limb maps).
        skeleton: the limbs as 0-based joint index pairs; :data:`COCO17_LIMBS` by default (L = 19).

    Returns:
        ``(..., J·heatmaps + L·limbs, H, W)`` in the dtype of ``keypoints`` (float32 for integers),
        on its device, contiguous (on the CPU a tensor over a NumPy buffer, so ``resize_`` is refused
        on it). The maps carry no gradient to the keypoints (they are written in place);
        :func:`soft_argmax` is the differentiable direction, maps -> keypoints.
    """
    keypoints = _keypoints(keypoints, "render_pose").detach()
    height, width = _size(size)
    if sigma <= 0 or limb_width <= 0:
        raise ValueError(f"render_pose: sigma and limb_width must be positive, got {sigma} and {limb_width}")
    if not (heatmaps or limbs):
        raise ValueError("render_pose: nothing to render; set heatmaps=True or limbs=True")
    pairs = torch.as_tensor(skeleton, dtype=torch.long, device=keypoints.device).reshape(-1, 2)  # (L, 2)
    num_joints = keypoints.shape[-2]
    if limbs and (pairs.numel() == 0 or int(pairs.min()) < 0 or int(pairs.max()) >= num_joints):
        raise ValueError(f"render_pose: skeleton must be (joint, joint) pairs of indices below {num_joints}, "
                         f"got {list(skeleton)!r}")
    x, y, v = keypoints.unbind(-1)  # (..., J) each
    visible = v > 0  # (..., J)
    x, y = torch.where(visible, x, 0.0), torch.where(visible, y, 0.0)  # absent joints: any x, y (even NaN) is ignored
    dtype, device = keypoints.dtype, keypoints.device
    num_heat = num_joints if heatmaps else 0
    num_limbs = len(pairs) if limbs else 0
    if (device.type == "cpu" and dtype in _WINDOW_DTYPES
            and bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
        return _render_windows(x, y, visible, pairs[:num_limbs].cpu(), height, width, sigma, limb_width, num_heat)
    xs = torch.arange(width, dtype=dtype, device=device)  # (W,)
    ys = torch.arange(height, dtype=dtype, device=device)  # (H,)
    out = torch.empty(*keypoints.shape[:-2], num_heat + num_limbs, height, width, dtype=dtype, device=device)
    if limbs:  # first, so that the joint maps' part of `out` can serve as their scratch space
        # In the bone's frame, scaled by k = 1/(√2 w), with m the bone's midpoint and h = k|u|/2:
        # q = k (p - m)·û along the bone, r = k (p - m)·n̂ across it (n̂ = û turned by 90°). Then
        # k² d² = r² + max(|q| - h, 0)² and the map is exp(-k² d²). q and r are outer sums of a
        # row term and a column term.
        scale = 1.0 / (math.sqrt(2.0) * limb_width)
        ax, ay = x[..., pairs[:, 0]], y[..., pairs[:, 0]]  # (..., L)
        ux, uy = x[..., pairs[:, 1]] - ax, y[..., pairs[:, 1]] - ay  # (..., L) the bone vector u
        length = torch.sqrt(ux.square() + uy.square())  # (..., L)
        point = length <= 1e-6  # a bone of zero length: the distance to a
        cos = torch.where(point, 1.0, ux / length.clamp_min(1e-6)) * scale  # (..., L)  k û_x
        sin = torch.where(point, 0.0, uy / length.clamp_min(1e-6)) * scale  # (..., L)  k û_y
        both = visible[..., pairs[:, 0]] & visible[..., pairs[:, 1]]  # (..., L)
        off = torch.where(both, 0.0, 1e4)  # an absent limb is moved far off the map: exp(-1e8) = 0
        dx = xs - (ax + 0.5 * ux)[..., None]  # (..., L, W)  x - m_x
        dy = ys - (ay + 0.5 * uy)[..., None]  # (..., L, H)  y - m_y
        q_rows, q_cols = dy * sin[..., None], dx * cos[..., None]  # (..., L, H), (..., L, W)
        r_rows, r_cols = dy * cos[..., None] + off[..., None], dx * -sin[..., None]
        half = (0.5 * scale * length)[..., None, None]  # (..., L, 1, 1)
        limb = out[..., num_heat:, :, :]  # (..., L, H, W), written in place
        shared = min(num_heat, num_limbs)  # limbs [0, shared) use the joint maps' space as scratch
        groups = [(slice(0, shared), out[..., :shared, :, :]),
                  (slice(shared, num_limbs), torch.empty_like(limb[..., shared:, :, :]))]
        for group, work in groups:  # at most two groups (not a loop over limbs)
            if group.start == group.stop:
                continue
            view = limb[..., group, :, :]
            torch.add(q_rows[..., group, :, None], q_cols[..., group, None, :], out=view)  # q
            view.abs_().sub_(half[..., group, :, :]).clamp_(min=0.0).square_()  # max(|q| - h, 0)²
            torch.add(r_rows[..., group, :, None], r_cols[..., group, None, :], out=work)  # r
            _exp_neg(view.addcmul_(work, work))  # exp(-(r² + max(|q| - h, 0)²))
    if heatmaps:
        gx = _gauss_1d(xs, x, 0.5 / sigma**2)  # (..., J, W)
        gy = _gauss_1d(ys, y, 0.5 / sigma**2) * visible[..., None]  # (..., J, H), zero for v = 0
        torch.mul(gy[..., :, None], gx[..., None, :], out=out[..., :num_heat, :, :])  # (..., J, H, W)
    return out


def heatmap_argmax(maps: Tensor, *, num_joints: int = NUM_JOINTS, threshold: float = 0.1) -> Tensor:
    """Keypoints ``(..., J, 3)`` from the joint heatmaps: the arg-max pixel and its value.

    ``maps`` is ``(..., C, H, W)`` with the J joint heatmaps first (C ≥ J; limb maps after them, as
    :func:`render_pose` writes, are ignored). For joint k: (x_k, y_k) = the column and row of the
    largest value of map k (the first in row-major order on ties), c_k = that value. Joints with
    c_k < ``threshold`` are reported as (0, 0, 0), COCO's "not there"; the others as
    (x_k, y_k, c_k), so the third column is both the confidence and a visibility > 0.
    Integer positions only (no sub-pixel refinement): a joint rendered at integer coordinates is
    recovered exactly, any other within half a pixel per axis (see :func:`soft_argmax`).
    """
    if maps.dim() < 3 or maps.shape[-3] < num_joints:
        raise ValueError(f"heatmap_argmax: maps must be (..., C ≥ {num_joints}, H, W), got {tuple(maps.shape)}")
    joints = maps[..., :num_joints, :, :]  # (..., J, H, W)
    width = joints.shape[-1]
    peak, index = joints.flatten(-2).max(dim=-1)  # (..., J) each
    present = peak >= threshold  # (..., J)
    xy = torch.stack((index % width, torch.div(index, width, rounding_mode="floor")), dim=-1).to(joints.dtype)
    out = torch.cat((xy, peak[..., None]), dim=-1)  # (..., J, 3)
    return out * present[..., None].to(out.dtype)


def soft_argmax(maps: Tensor, *, beta: float = 20.0, num_joints: int = NUM_JOINTS) -> Tensor:
    """Differentiable keypoint coordinates ``(..., J, 2)``: the expected pixel under softmax(β · map).

    For joint map m_k over pixels p = (x, y)::

        P_k(p) = exp(β m_k(p)) / Σ_q exp(β m_k(q)),     (x̂_k, ŷ_k) = Σ_p P_k(p) · p

    (integral regression). β trades two errors: every background pixel keeps weight e⁰ = 1 against
    e^β at the peak, pulling the estimate towards the map centre unless e^β ≫ H·W; and near the
    peak of a Gaussian heatmap of width σ the weights are a Gaussian of width ≈ σ/√β, which,
    sampled on the pixel grid, snaps towards the nearest pixel when σ/√β ≪ 1 px. β = 20 suits
    σ = 1.5 maps of 64 x 64 (sub-pixel error ≤ 0.15 px; β = 10 is too small there); scale β with the map values
    if they are not in [0, 1]. An all-zero map (an invisible joint) gives the map centre.

    ``maps`` is ``(..., C, H, W)`` with the J joint heatmaps first; the result has the dtype of ``maps``.
    """
    if maps.dim() < 3 or maps.shape[-3] < num_joints:
        raise ValueError(f"soft_argmax: maps must be (..., C ≥ {num_joints}, H, W), got {tuple(maps.shape)}")
    joints = maps[..., :num_joints, :, :]  # (..., J, H, W)
    height, width = joints.shape[-2:]
    weights = torch.softmax(beta * joints.flatten(-2), dim=-1).unflatten(-1, (height, width))  # (..., J, H, W)
    xs = torch.arange(width, dtype=weights.dtype, device=weights.device)  # (W,)
    ys = torch.arange(height, dtype=weights.dtype, device=weights.device)  # (H,)
    x_hat = (weights.sum(dim=-2) * xs).sum(dim=-1)  # (..., J) marginal over rows, then E[x]
    y_hat = (weights.sum(dim=-1) * ys).sum(dim=-1)  # (..., J)
    return torch.stack((x_hat, y_hat), dim=-1)
