"""CPU kernel of :func:`crossmedia.data.keypoints.render_pose`, compiled with numba (cached on disk).

Imported lazily, the first time pose maps are rendered on the CPU. It writes each joint's Gaussian
only in the square window around the joint where it can exceed exp(-z_max), and each limb only in
the band around its bone where it can (the rows within the cut-off radius of the bone, and in each
row the columns within that radius of the bone's line and of its bounding box), into an output
that the caller has zero-filled. Everything outside the windows stays exactly 0.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["render_windows"]


@njit(inline="always")
def _exp_neg(z: float, z_max: float) -> float:
    """exp(-z) for 0 ≤ z ≤ z_max as (exp(-z/32))³², the inner factor by its Taylor polynomial of degree 7
    (relative error below 5e-7 for z ≤ 12, 5e-6 at z = 16: meant for z_max ≤ 16); 0 for z > z_max. Plain
    arithmetic, so that LLVM vectorises the loops that call it (calls of the C library's exp are not;
    measured on bench/pose_render.py's limb maps: ~0.045 s against ~0.065 s with math.exp)."""
    s = z * (1.0 / 32.0)
    p = 1.0 - s * (1.0 - s * (1.0 / 2.0 - s * (1.0 / 6.0 - s * (1.0 / 24.0 - s * (1.0 / 120.0 - s * (
        1.0 / 720.0 - s * (1.0 / 5040.0)))))))
    p *= p
    p *= p
    p *= p
    p *= p
    p *= p
    return p if z <= z_max else 0.0


@njit(nogil=True, cache=True, fastmath={"contract", "reassoc", "nsz", "arcp", "afn"})
def render_windows(keypoints: np.ndarray, pairs: np.ndarray, out: np.ndarray, sigma: float, limb_width: float,
                   z_max: float, num_heat: int) -> None:
    """Draw joint heatmaps and limb maps of N frames into the zeroed ``out`` in place.

    Args:
        keypoints: (N, J, 3) float64 (x, y, v); joints with v > 0 must have finite x and y.
        pairs: (L, 2) int64 limbs as joint indices (L = 0: no limb maps).
        out: (N, num_heat + L, H, W) float32 or float64, C-contiguous, all zero on entry.
        sigma, limb_width: the Gaussians' σ and w in pixels.
        z_max: values exp(-z) with z > z_max may be left at 0 (they are below exp(-z_max)).
        num_heat: J to draw the joint heatmaps into channels [0, J), 0 to draw none.
    """
    num_frames, num_joints = keypoints.shape[0], keypoints.shape[1]
    height, width = out.shape[2], out.shape[3]
    gx = np.empty(width, dtype=np.float64)
    c_joint = 0.5 / (sigma * sigma)
    r_joint = sigma * math.sqrt(2.0 * z_max)  # exp(-d² c_joint) < exp(-z_max) beyond this distance
    c_limb = 0.5 / (limb_width * limb_width)
    r_limb = limb_width * math.sqrt(2.0 * z_max)
    margin = 1e-4  # pixels; the windows only need to cover the band, computing a little more is harmless
    for n in range(num_frames):
        for k in range(num_heat):
            x, y, v = keypoints[n, k, 0], keypoints[n, k, 1], keypoints[n, k, 2]
            if not v > 0:
                continue
            x0, x1 = max(math.ceil(x - r_joint), 0.0), min(math.floor(x + r_joint), width - 1.0)
            y0, y1 = max(math.ceil(y - r_joint), 0.0), min(math.floor(y + r_joint), height - 1.0)
            if x0 > x1 or y0 > y1:  # the window misses the map
                continue
            for i in range(int(x0), int(x1) + 1):
                gx[i] = _exp_neg((i - x) * (i - x) * c_joint, z_max)
            for j in range(int(y0), int(y1) + 1):
                gy = _exp_neg((j - y) * (j - y) * c_joint, z_max)
                row = out[n, k, j]
                for i in range(int(x0), int(x1) + 1):
                    row[i] = gy * gx[i]
        for l in range(pairs.shape[0]):
            a, b = pairs[l, 0], pairs[l, 1]
            if not (keypoints[n, a, 2] > 0 and keypoints[n, b, 2] > 0):
                continue
            ax, ay = keypoints[n, a, 0], keypoints[n, a, 1]
            ux, uy = keypoints[n, b, 0] - ax, keypoints[n, b, 1] - ay
            length2 = ux * ux + uy * uy
            inv_length2 = 1.0 / length2 if length2 > 1e-12 else 0.0  # zero length: the distance to a
            length = math.sqrt(length2)
            box_x0, box_x1 = min(ax, ax + ux) - r_limb - margin, max(ax, ax + ux) + r_limb + margin
            y0 = max(math.ceil(min(ay, ay + uy) - r_limb - margin), 0.0)
            y1 = min(math.floor(max(ay, ay + uy) + r_limb + margin), height - 1.0)
            slope = ux / uy if uy != 0.0 else 0.0  # the line's x moves by `slope` per row
            spread = r_limb * length / abs(uy) if uy != 0.0 else 0.0  # half its band's width in a row
            channel = num_heat + l
            for j in range(int(y0), int(y1) + 1):
                dy = j - ay
                lo, hi = box_x0, box_x1
                if inv_length2 == 0.0:  # a disc around a
                    if dy * dy > r_limb * r_limb:
                        continue
                    half = math.sqrt(r_limb * r_limb - dy * dy) + margin
                    lo, hi = max(lo, ax - half), min(hi, ax + half)
                elif uy != 0.0:  # within r_limb of the bone's line: |(x - ax) uy - dy ux| ≤ r_limb |u|
                    centre = ax + dy * slope
                    lo, hi = max(lo, centre - spread - margin), min(hi, centre + spread + margin)
                x0, x1 = max(math.ceil(lo), 0.0), min(math.floor(hi), width - 1.0)
                if x0 > x1:
                    continue
                row = out[n, channel, j]
                for i in range(int(x0), int(x1) + 1):
                    dx = i - ax
                    t = min(max((dx * ux + dy * uy) * inv_length2, 0.0), 1.0)
                    ex, ey = dx - t * ux, dy - t * uy
                    row[i] = _exp_neg((ex * ex + ey * ey) * c_limb, z_max)
