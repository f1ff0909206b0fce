"""Pose maps (joint heatmaps + limb maps): our vectorised ``render_pose`` vs the per-joint loop of the references.

The reference renders the way pose-guided generation code does it, e.g. ``cords_to_map`` of Ma et
al.'s PG2 ("Pose Guided Person Image Generation", NeurIPS 2017) as reused by the pose-transfer
repositories: a Python loop over frames, and inside it over joints, each joint building the
pixel grid with ``np.meshgrid(np.arange(W), np.arange(H))`` and writing
``np.exp(-((yy - y)² + (xx - x)²) / 2σ²)`` into channel ``i`` of an (H, W, C) float32 array,
skipping absent joints. Limb maps are the same loop over the 19 COCO bones with the Gaussian of
the distance to the segment, ``t = clip(((p - a)·u) / |u|², 0, 1)``, ``d² = |p - a - t u|²``
(reference code for bone maps has this shape). Frames are stacked and moved to channels-first
at the end, so both sides return (B, T, 17 + 19, H, W) float32.

Ours (:func:`crossmedia.data.keypoints.render_pose`) renders the whole batch at once: joint
Gaussians as outer products of two 1-D Gaussians, limb maps from outer sums in each bone's frame.

Data: 64 clips x 32 frames x 17 joints, 64 x 64 maps, σ = 1.5, limb width 1.0; seeded random
poses with about 10% of the joints absent (v = 0). Both sides must agree to 2e-5 (float32 rounding of the
limb distances).

A context line says what filling a fresh output of that size (1.2 GB) costs once: the first
touch of its memory pages, which both sides pay and no vectorisation removes. On our shared 2-core
machine that is ~0.6 s of our ~1.4 s (the loop: ~6 s), so the ratio stays near 4 here, short
of the issue's goal of 20; the rest of ours is memory traffic of ~10 full passes over the limb
maps (exp alone ~0.4 s).

Run: ``python bench/pose_render.py`` (one torch thread: steadier on a shared machine). Prints both
times and ends with ``ratio: <loop time / our time>``; each side's time is the best of 3 runs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from crossmedia.data.keypoints import COCO17_LIMBS, NUM_JOINTS, render_pose
sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test loads this file by path
from _timing import best_time  # noqa: E402

CLIPS, FRAMES, SIZE, SIGMA, LIMB_WIDTH = 64, 32, 64, 1.5, 1.0
REPEATS = 3


# helpers


def make_keypoints(seed: int = 0) -> torch.Tensor:
    """(CLIPS, FRAMES, 17, 3) float32: positions anywhere on the map, ~10% of the joints absent."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(CLIPS, FRAMES, NUM_JOINTS, 2, generator=g) * (SIZE - 1)
    visible = (torch.rand(CLIPS, FRAMES, NUM_JOINTS, 1, generator=g) > 0.1).float()
    return torch.cat([xy * visible, visible], dim=-1)  # absent joints at (0, 0, 0), as COCO writes them


def reference_frame(keypoints: np.ndarray, size: int, sigma: float, limb_width: float) -> np.ndarray:
    """One frame (17, 3) -> (H, W, 17 + 19): loops over joints and limbs, the grid built per map."""
    result = np.zeros((size, size, NUM_JOINTS + len(COCO17_LIMBS)), dtype="float32")
    for i, (x, y, v) in enumerate(keypoints):
        if v <= 0:
            continue
        xx, yy = np.meshgrid(np.arange(size), np.arange(size))
        result[..., i] = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    for l, (i, j) in enumerate(COCO17_LIMBS):
        (ax, ay, va), (bx, by, vb) = keypoints[i], keypoints[j]
        if va <= 0 or vb <= 0:
            continue
        xx, yy = np.meshgrid(np.arange(size), np.arange(size))
        ux, uy = bx - ax, by - ay
        t = np.clip(((xx - ax) * ux + (yy - ay) * uy) / max(ux * ux + uy * uy, 1e-12), 0.0, 1.0)
        d2 = (xx - ax - t * ux) ** 2 + (yy - ay - t * uy) ** 2
        result[..., NUM_JOINTS + l] = np.exp(-d2 / (2 * limb_width**2))
    return result


def reference(keypoints: np.ndarray) -> np.ndarray:
    """(B, T, 17, 3) -> (B, T, 36, H, W), frame by frame."""
    clips = []
    for clip in keypoints:
        frames = [reference_frame(frame, SIZE, SIGMA, LIMB_WIDTH) for frame in clip]
        clips.append(np.stack(frames).transpose(0, 3, 1, 2))
    return np.stack(clips)


def main() -> None:
    torch.set_num_threads(1)
    keypoints = make_keypoints()
    print(f"{CLIPS} clips x {FRAMES} frames x {NUM_JOINTS} joints + {len(COCO17_LIMBS)} limbs, {SIZE}x{SIZE} maps, "
          f"sigma {SIGMA}, limb width {LIMB_WIDTH}, {int((keypoints[..., 2] == 0).sum())} absent joints, "
          f"torch threads: {torch.get_num_threads()}")
    array = keypoints.numpy()
    ref, ref_time = best_time(lambda: reference(array), REPEATS)
    ours, our_time = best_time(lambda: render_pose(keypoints, SIZE, sigma=SIGMA, limb_width=LIMB_WIDTH), REPEATS)
    difference = float(np.abs(ours.numpy() - ref).max())
    shape = ref.shape
    del ref  # 1.2 GB
    _, touch_time = best_time(lambda: torch.empty(ours.shape).fill_(0.0), 1)
    print(f"reference (per-frame, per-joint numpy loop): {shape}  time {ref_time:.3f} s")
    print(f"ours (render_pose, whole batch):             {tuple(ours.shape)}  time {our_time:.3f} s")
    print(f"max |ours - reference| = {difference:.2e}")
    print(f"context: filling a fresh {ours.numel() * 4 / 1e9:.1f} GB float32 tensor once (first touch of its pages): "
          f"{touch_time:.3f} s")
    assert difference <= 2e-5, f"maps differ by up to {difference}"
    print(f"ratio: {ref_time / our_time:.2f}")


if __name__ == "__main__":
    main()
