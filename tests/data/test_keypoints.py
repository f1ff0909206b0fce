"""COCO-17 constants, render_pose and the two read-backs (arg-max, soft-arg-max), checked with numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crossmedia.data.keypoints import (COCO17, COCO17_LIMBS, FLIP, NUM_JOINTS, NUM_LIMBS, heatmap_argmax,
                                       render_pose, soft_argmax)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small tensor work on one torch thread (see tests/conftest.py)."""


def _reference(keypoints: np.ndarray, size: int, sigma: float = 1.5, width: float = 1.0) -> np.ndarray:
    """Per-joint, per-limb loop over one frame (J, 3) -> (J + L, size, size), straight from the equations."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    maps = np.zeros((NUM_JOINTS + NUM_LIMBS, size, size))
    for k, (x, y, v) in enumerate(keypoints):
        if v > 0:
            maps[k] = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    for l, (i, j) in enumerate(COCO17_LIMBS):
        (ax, ay, va), (bx, by, vb) = keypoints[i], keypoints[j]
        if va > 0 and vb > 0:
            ux, uy = bx - ax, by - ay
            t = np.clip(((xx - ax) * ux + (yy - ay) * uy) / max(ux * ux + uy * uy, 1e-12), 0, 1)
            maps[NUM_JOINTS + l] = np.exp(-((xx - ax - t * ux) ** 2 + (yy - ay - t * uy) ** 2) / (2 * width**2))
    return maps


def _random_keypoints(shape: tuple[int, ...], size: int, *, margin: float = 0.0, seed: int = 0,
                      integer: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = margin + torch.rand(*shape, NUM_JOINTS, 2, generator=g) * (size - 1 - 2 * margin)
    if integer:
        xy = xy.round()
    return torch.cat([xy, torch.ones(*shape, NUM_JOINTS, 1)], dim=-1)


def test_coco17_constants() -> None:
    assert len(COCO17) == 17 and COCO17[0] == "nose" and COCO17[-1] == "right_ankle"
    assert len(COCO17_LIMBS) == 19 and COCO17_LIMBS[0] == (15, 13)  # COCO's [16, 14], 1-based
    assert all(COCO17[a].replace("left", "right") == COCO17[b] for a, b in FLIP)
    assert sorted(i for pair in FLIP for i in pair) == list(range(1, 17))  # everything but the nose


def test_render_matches_the_reference_loop() -> None:
    keypoints = _random_keypoints((6,), 32, margin=-3.0, seed=1)  # some joints off the map
    keypoints[0, 5, 2] = keypoints[1, 11, 2] = keypoints[2, 0, 2] = 0.0  # a few absent joints
    keypoints[3, 7, :2] = keypoints[3, 5, :2]  # a bone of zero length (left shoulder -> left elbow)
    maps = render_pose(keypoints, 32)
    assert maps.shape == (6, NUM_JOINTS + NUM_LIMBS, 32, 32) and maps.dtype == torch.float32
    reference = np.stack([_reference(k, 32) for k in keypoints.double().numpy()])
    np.testing.assert_allclose(maps.numpy(), reference, rtol=0, atol=2e-5)
    assert 0.0 <= maps.min() and maps.max() <= 1.0


def test_rectangular_maps_and_options() -> None:
    keypoints = _random_keypoints((2,), 20, seed=2)
    maps = render_pose(keypoints, (20, 28), sigma=2.0, limb_width=1.5)
    assert maps.shape == (2, 36, 20, 28)
    only_heat = render_pose(keypoints, (20, 28), sigma=2.0, limbs=False)
    only_limbs = render_pose(keypoints, (20, 28), limb_width=1.5, heatmaps=False)
    assert torch.equal(torch.cat([only_heat, only_limbs], dim=1), maps)
    with pytest.raises(ValueError, match="keypoints must be"):
        render_pose(torch.zeros(17, 2), 16)


def test_invisible_joints_render_empty_and_read_back_invisible() -> None:
    keypoints = _random_keypoints((), 32, margin=4.0, seed=3)
    keypoints[9] = torch.tensor([0.0, 0.0, 0.0])  # COCO's "not labelled": must not appear at (0, 0)
    keypoints[10] = torch.tensor([float("nan"), 5.0, 0.0])  # absent with garbage coordinates
    maps = render_pose(keypoints, 32)
    assert maps[9].abs().max() == 0 and maps[10].abs().max() == 0
    assert not maps.isnan().any()
    for l, (a, b) in enumerate(COCO17_LIMBS):  # elbow-wrist limbs of both arms are empty, the rest drawn
        assert (maps[NUM_JOINTS + l].max() == 0) == (a in (9, 10) or b in (9, 10))
    read = heatmap_argmax(maps)
    assert read[9].tolist() == [0.0, 0.0, 0.0] and read[10].tolist() == [0.0, 0.0, 0.0]
    assert (read[:9, 2] > math.exp(-0.5 / 1.5**2) - 1e-6).all()  # peak of a sub-pixel joint: ≤ ½ px off per axis


def test_limb_map_peaks_on_the_segment() -> None:
    keypoints = torch.zeros(17, 3)
    keypoints[5] = torch.tensor([10.0, 12.0, 2.0])  # left shoulder
    keypoints[7] = torch.tensor([20.0, 18.0, 2.0])  # left elbow; the limb (5, 7) is COCO17_LIMBS[8]
    limb = render_pose(keypoints, 32, heatmaps=False)[COCO17_LIMBS.index((5, 7))]
    assert limb[15, 15].item() == pytest.approx(1.0, abs=1e-6)  # the midpoint (15, 15)
    assert limb[12, 10].item() == pytest.approx(1.0, abs=1e-6) and limb[18, 20].item() == pytest.approx(1.0, abs=1e-6)
    # one pixel beyond the elbow along the bone: the distance is to the end point, |(1, 0)| = 1
    assert limb[18, 21].item() == pytest.approx(math.exp(-0.5), abs=1e-6)
    # pixel (x 14, y 17) projects inside the bone: its distance is to the line, |cross(p - a, u)| / |u|
    dist = abs(4 * 6 - 5 * 10) / math.hypot(10, 6)
    assert limb[17, 14].item() == pytest.approx(math.exp(-dist**2 / 2), abs=1e-6)
    assert limb.max().item() == pytest.approx(1.0) and limb[0, 31].item() == 0.0  # far corner: exactly 0
    keypoints[7, 2] = 0.0
    assert render_pose(keypoints, 32, heatmaps=False)[COCO17_LIMBS.index((5, 7))].max() == 0


def test_argmax_round_trip_on_integer_positions_with_batch_dims() -> None:
    keypoints = _random_keypoints((3, 5), 48, seed=4, integer=True)  # clips: (B, T, 17, 3)
    maps = render_pose(keypoints, 48)
    assert maps.shape == (3, 5, 36, 48, 48)
    read = heatmap_argmax(maps)
    assert read.shape == (3, 5, 17, 3)
    assert (read[..., :2] - keypoints[..., :2]).abs().max() <= 0.5  # exact here: integer positions
    assert torch.allclose(read[..., 2], torch.ones(3, 5, 17))
    frame_by_frame = torch.stack([torch.stack([render_pose(f, 48) for f in clip]) for clip in keypoints])
    assert torch.equal(frame_by_frame, maps)  # leading dims change nothing


def test_soft_argmax_is_sub_pixel_and_differentiable() -> None:
    keypoints = _random_keypoints((64,), 64, margin=6.0, seed=5)  # sub-pixel, away from the borders
    maps = render_pose(keypoints, 64, limbs=False).requires_grad_(True)
    xy = soft_argmax(maps)
    assert xy.shape == (64, 17, 2)
    error = (xy - keypoints[..., :2]).abs().max().item()
    assert error < 0.5, error
    xy.sum().backward()
    assert maps.grad is not None and maps.grad.abs().sum() > 0
    # arg-max of the same sub-pixel maps is within half a pixel per axis
    assert (heatmap_argmax(maps.detach())[..., :2] - keypoints[..., :2]).abs().max() <= 0.5 + 1e-6


def test_render_accepts_keypoints_that_require_grad_and_float64() -> None:
    keypoints = _random_keypoints((2,), 16, seed=6)
    maps = render_pose(keypoints.clone().requires_grad_(True), 16)
    assert not maps.requires_grad and torch.equal(maps, render_pose(keypoints, 16))
    double = render_pose(keypoints.double(), 16)
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), maps, rtol=0, atol=2e-5)


@pytest.mark.parametrize("size, sigma, width", [((32, 32), 1.5, 1.0), ((20, 37), 2.0, 1.5), ((41, 13), 0.8, 0.6),
                                                ((1, 9), 1.5, 1.0)])
def test_cpu_windows_equal_the_full_tensor_path(monkeypatch, size, sigma, width) -> None:
    """The CPU kernel (windows around joints and bones) against the whole-map torch path it replaces on the
    CPU: absent joints, zero-length, horizontal and vertical bones, joints off the map, float64, options."""
    import crossmedia.data.keypoints as module

    height, width_px = size
    g = torch.Generator().manual_seed(sum(size))
    keypoints = torch.rand(5, 3, NUM_JOINTS, 3, generator=g)
    keypoints[..., 0] = keypoints[..., 0] * (width_px + 16) - 8  # some joints off the map, on every side
    keypoints[..., 1] = keypoints[..., 1] * (height + 16) - 8
    keypoints[..., 2] = (keypoints[..., 2] > 0.15).float() * 2  # ~15% absent
    keypoints[0, 0, 7, :2] = keypoints[0, 0, 5, :2]  # zero-length bone (5, 7)
    keypoints[0, 1, 7, 1] = keypoints[0, 1, 5, 1]  # horizontal bone
    keypoints[0, 2, 7, 0] = keypoints[0, 2, 5, 0]  # vertical bone
    keypoints[1, 0, :, :2] = keypoints[1, 0, :, :2].round()  # integer positions
    keypoints[1, 1, 3] = torch.tensor([float("nan"), 1e30, 0.0])  # absent, garbage coordinates
    keypoints[1, 2, :, 2] = 0.0  # an empty frame
    keypoints[2, 0, 4, :2] = torch.tensor([-60.0, 90.0])  # far off the map, present: its bones cross the map
    for kp in (keypoints, keypoints.double()):
        for options in ({}, {"limbs": False}, {"heatmaps": False}, {"skeleton": [(0, 16), (3, 3)]}):
            fast = render_pose(kp, size, sigma=sigma, limb_width=width, **options)
            with monkeypatch.context() as patch:
                patch.setattr(module, "_WINDOW_DTYPES", {})  # the torch path, as for CUDA tensors
                full = render_pose(kp, size, sigma=sigma, limb_width=width, **options)
            assert fast.shape == full.shape and fast.dtype == full.dtype == kp.dtype
            torch.testing.assert_close(fast, full, rtol=0, atol=1e-5)
            assert ((fast > 0) | (full < 1e-5)).all()  # no window misses a value that counts
