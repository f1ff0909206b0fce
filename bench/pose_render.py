"""Pose maps (joint heatmaps + limb maps): our ``render_pose`` vs the per-joint loop of the references.

The reference renders the way pose-guided generation code does it, e.g. ``cords_to_map`` of Ma et
al.'s PG2 ("Pose Guided Person Image Generation", NeurIPS 2017) as reused by the pose-transfer
repositories: a Python loop over frames, and inside it over joints, each joint building the
pixel grid with ``np.meshgrid(np.arange(W), np.arange(H))`` and writing
``np.exp(-((yy - y)² + (xx - x)²) / 2σ²)`` into channel ``i`` of an (H, W, C) float32 array,
skipping absent joints. Limb maps are the same loop over the 19 COCO bones with the Gaussian of
the distance to the segment, ``t = clip(((p - a)·u) / |u|², 0, 1)``, ``d² = |p - a - t u|²``
(reference code for bone maps has this shape). Frames are stacked and moved to channels-first
at the end, so both sides return (B, T, 17 + 19, H, W) float32.

Ours (:func:`crossmedia.data.keypoints.render_pose`) on CPU float32 keypoints: one call for the whole
batch, a numba kernel (one thread) that computes and writes each joint's Gaussian only in its window
(|x - x_k|, |y - y_k| ≤ σ√24) and each limb only in the band within w√24 of its bone, into a fresh
zeroed NumPy buffer; everything below exp(-12) ≈ 6.1e-6 is an exact zero there (within the 2e-5
allowed). Its torch path (CUDA and other dtypes) renders every pixel of every map.

Data: 64 clips x 32 frames x 17 joints, 64 x 64 maps, σ = 1.5, limb width 1.0; seeded random
poses with about 10% of the joints absent (v = 0). Both sides must agree to 2e-5.

What is timed: each side's time is the best of 3 calls that each return a fresh (64, 32, 36, 64,
64) float32 array (1.2 GB), the output's allocation included on both sides (the reference's last
``np.stack``, our ``np.zeros``: both NumPy buffers, which NumPy asks the kernel to back with 2 MB
pages); ours after one warm-up call on one frame, which compiles the kernel or loads it from numba's
disk cache (~5 s when compiled). One torch thread; the reference is plain NumPy (one thread
either way) and ours one numba thread.

Numbers on our shared 2-core machine (one core busy with a training run), three runs each:
before (the whole-map torch path): loop 7.4-9.0 s, ours 1.76-1.85 s, ratio 4.07 / 4.18 / 4.94;
after: loop 9.8-10.6 s (a busier machine), ours 0.28-0.31 s, ratio 34.2 / 33.0 / 35.3, max
difference 6.1e-6. On the quieter machine's 7.4 s loop that would be ~25. Of our ~0.28 s, ~0.17 s
is the kernel zeroing the output's pages when they are first written (printed as the context line:
one write per 4 KB page of a fresh zeroed buffer; every 2 MB page holds some non-zero window, so
all of it is paid), ~0.06 s the windows themselves on already-touched memory (~0.02 s joints,
~0.045 s limbs); alone in a process, a fresh call takes ~0.21 s, the rest here goes with the ~3.6 GB
this run keeps alive. Two numba threads (prange over frames) did not help with the other core busy
(0.21-0.23 s for a fresh call either way), so the kernel stays single-threaded.
Expect outliers of 1-3 s on a run whose memory is new to the virtual machine (the host maps it on
first touch); best of 3 hides them, and the reference's allocations pay the same.

Run: ``python bench/pose_render.py``. Prints both times, the first-touch context line and
``ratio: <loop time / our time>``.
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


def first_touch(shape: tuple[int, ...]) -> None:
    """Write one float into every 4 KB page of a fresh zeroed NumPy buffer of ``shape`` (float32)."""
    np.zeros(shape, dtype=np.float32).reshape(-1)[::1024] = 1.0


def main() -> None:
    torch.set_num_threads(1)
    keypoints = make_keypoints()
    print(f"{CLIPS} clips x {FRAMES} frames x {NUM_JOINTS} joints + {len(COCO17_LIMBS)} limbs, {SIZE}x{SIZE} maps, "
          f"sigma {SIGMA}, limb width {LIMB_WIDTH}, {int((keypoints[..., 2] == 0).sum())} absent joints, "
          f"torch threads: {torch.get_num_threads()}")
    render_pose(keypoints[:1, :1], SIZE, sigma=SIGMA, limb_width=LIMB_WIDTH)  # compiles or loads the CPU kernel
    array = keypoints.numpy()
    ref, ref_time = best_time(lambda: reference(array), REPEATS)
    ours, our_time = best_time(lambda: render_pose(keypoints, SIZE, sigma=SIGMA, limb_width=LIMB_WIDTH), REPEATS)
    difference = float(np.abs(ours.numpy() - ref).max())
    shape = ref.shape
    del ref  # 1.2 GB
    _, touch_time = best_time(lambda: first_touch(shape), REPEATS)
    print(f"reference (per-frame, per-joint numpy loop): {shape}  time {ref_time:.3f} s")
    print(f"ours (render_pose, whole batch):             {tuple(ours.shape)}  time {our_time:.3f} s")
    print(f"max |ours - reference| = {difference:.2e}")
    print(f"context: first touch of every page of a fresh {ours.numel() * 4 / 1e9:.1f} GB zeroed NumPy buffer "
          f"(the floor of ours): {touch_time:.3f} s")
    assert difference <= 2e-5, f"maps differ by up to {difference}"
    print(f"ratio: {ref_time / our_time:.2f}")


if __name__ == "__main__":
    main()
