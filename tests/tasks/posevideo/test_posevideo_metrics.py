"""Pose metrics of the posevideo task against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from crossmedia.tasks.posevideo.metrics import (PCKMetric, Smoothness, mean_keypoint_distance,
                                                normalise_pose_sequence, pck, sequence_diversity, smoothness)


def _pose(points, visible=None):
    """(17, 3) keypoints: ``points`` for the first joints, the rest a copy of the last point."""
    kp = torch.zeros(17, 3)
    pts = torch.tensor(points, dtype=torch.float32)
    kp[: len(pts), :2] = pts
    kp[len(pts):, :2] = pts[-1]
    kp[:, 2] = 2.0
    if visible is not None:
        kp[:, 2] = torch.tensor(visible, dtype=torch.float32)
    return kp


def test_pck_hand_built_case():
    # visible target joints span x in [0, 40], y in [0, 20]: size = 40 px, PCK@0.1 radius = 4 px
    target = _pose([(0, 0), (40, 20)])  # joint 0 at (0, 0), joints 1..16 at (40, 20)
    pred = target.clone()
    pred[0, :2] = torch.tensor([3.0, 0.0])    # 3 px: correct
    pred[1, :2] = torch.tensor([40.0, 25.0])  # 5 px: wrong
    pred[2, :2] = torch.tensor([43.0, 24.0])  # 5 px: wrong
    pred[3, :2] = torch.tensor([44.0, 20.0])  # 4 px: correct (<=)
    assert pck(pred, target).item() == pytest.approx(15 / 17)
    assert mean_keypoint_distance(pred, target).item() == pytest.approx((3 + 5 + 5 + 4) / 17)
    assert pck(pred[:, :2], target).item() == pytest.approx(15 / 17)  # (x, y) predictions too


def test_pck_ignores_invisible_target_joints_and_prediction_visibility():
    target = _pose([(0, 0), (10, 0), (20, 0)])
    target[2:, 2] = 0  # only joints 0 and 1 visible: size = 10 px -> radius 1 px
    target[5, :2] = torch.tensor([500.0, 500.0])  # invisible and far: neither in the box nor scored
    pred = target.clone()
    pred[:, :2] = 0.0  # joint 0 right, joint 1 10 px off, invisible joints wildly off (not scored)
    pred[0, 2] = 0  # the prediction's own visibility is ignored
    assert pck(pred, target).item() == pytest.approx(0.5)
    assert mean_keypoint_distance(pred, target).item() == pytest.approx(5.0)
    nothing = target.clone()
    nothing[:, 2] = 0
    assert math.isnan(pck(pred, nothing).item())


def test_pck_metric_pools_over_updates():
    t1 = _pose([(0, 0), (40, 20)])
    p1 = t1.clone()
    p1[0, :2] = 10.0  # one miss of 17
    t2 = _pose([(0, 0), (10, 10)])
    t2[1:, 2] = 0  # one visible joint: size clamps to 1 px
    p2 = t2.clone()
    p2[0, :2] = torch.tensor([0.5, 0.0])  # within 0.1 px? no: a miss
    metric = PCKMetric(0.1)
    metric.update(p1[None], t1[None])
    metric.update(p2[None], t2[None])
    out = metric.compute()
    assert out["pck"].item() == pytest.approx(16 / 18)
    assert out["distance"].item() == pytest.approx((math.hypot(10, 10) + 0.5) / 18)


def test_smoothness_constant_velocity_and_parabola():
    t = torch.arange(8, dtype=torch.float32)
    kp = torch.zeros(1, 8, 17, 3)
    kp[..., 2] = 2
    kp[..., 0] = 3.0 + 2.0 * t[:, None]  # constant velocity
    kp[..., 1] = 5.0 - 1.0 * t[:, None]
    assert smoothness(kp).item() == pytest.approx(0.0, abs=1e-5)
    a = 0.75
    kp[..., 0] = a * t[:, None] ** 2  # x = a t²: |x'' | = 2a
    assert smoothness(kp).item() == pytest.approx(2 * a)
    # a joint invisible in one frame drops the three accelerations that use that frame
    kp2 = kp.clone()
    kp2[0, 3, 0, 0] = 1000.0
    kp2[0, 3, 0, 2] = 0
    assert smoothness(kp2).item() == pytest.approx(2 * a)
    metric = Smoothness()
    metric.update(kp)
    metric.update(torch.zeros(2, 4, 17, 3))  # invisible everywhere: adds nothing
    assert metric.compute().item() == pytest.approx(2 * a)


def test_sequence_diversity_of_known_sequences():
    a = torch.zeros(1, 1, 4, 17, 2)
    b = a.clone()
    b[..., 0] = 3.0
    b[..., 1] = 4.0  # 5 px from a everywhere
    c = a.clone()
    c[..., 0] = 6.0  # 6 px from a, hypot(3, 4) = 5 from b... (3, -4): 5 px
    assert sequence_diversity(torch.cat([a, b], 1)).item() == pytest.approx(5.0)
    assert sequence_diversity(torch.cat([a, b, c], 1)).item() == pytest.approx((5 + 6 + 5) / 3)
    assert sequence_diversity(torch.cat([a, a], 1)).item() == 0.0
    with pytest.raises(ValueError, match="N >= 2"):
        sequence_diversity(a)


def test_normalise_pose_sequence_centres_on_frame0_torso():
    kp = torch.zeros(1, 2, 17, 3)
    kp[..., 2] = 2
    kp[0, 0, :, :2] = 50.0
    kp[0, 0, [5, 6, 11, 12], 0] = torch.tensor([20.0, 40.0, 20.0, 40.0])  # torso centre (30, 50)
    kp[0, 1, :, :2] = 60.0
    kp[0, 1, 3, 2] = 0  # absent joint in frame 1
    out = normalise_pose_sequence(kp, 64)
    assert out.shape == (1, 2, 17, 3)
    assert out[0, 0, 0].tolist() == pytest.approx([20 / 64, 0.0, 1.0])
    assert out[0, 1, 0].tolist() == pytest.approx([30 / 64, 10 / 64, 1.0])
    assert out[0, 1, 3].tolist() == [0.0, 0.0, 0.0]
    kp[0, 0, [5, 6, 11, 12], 2] = 0  # no torso in frame 0: the mean of its visible joints (50, 50)
    out = normalise_pose_sequence(kp, 64)
    assert out[0, 1, 0, :2].tolist() == pytest.approx([10 / 64, 10 / 64])
    assert torch.equal(normalise_pose_sequence(kp + torch.tensor([7.0, -3.0, 0.0]), 64), out)  # translation-free
