"""PSGAN / SCGAN networks, pose maps and abnormal poses, with numbers."""
from __future__ import annotations

import pytest
import torch

from crossmedia.data.keypoints import NUM_JOINTS
from crossmedia.tasks.posevideo.models import (ABNORMAL_KINDS, FrameGenerator, PoseSequenceGenerator, abnormal_pose,
                                               temporal_filter,
                                               pose_maps, rescale_keypoints, sequence_keypoints)


def _pose(batch: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, NUM_JOINTS, 2, generator=g) * 40 + 12  # inside a 64 x 64 frame
    return torch.cat([xy, torch.full((batch, NUM_JOINTS, 1), 2.0)], -1)


def test_rescale_maps_pixel_centres_and_keeps_absent_joints_at_zero():
    kp = torch.tensor([[[0.0, 63.0, 2.0]] + [[5.0, 5.0, 0.0]] * 16])
    half = rescale_keypoints(kp, 64, 32)
    assert torch.allclose(half[0, 0], torch.tensor([-0.25, 31.25, 2.0]))  # (x + .5) / 2 - .5
    assert torch.equal(half[0, 1:], torch.zeros(16, 3))
    assert torch.allclose(rescale_keypoints(half, 32, 64), torch.cat([kp[:, :1], torch.zeros(1, 16, 3)], 1))


def test_pose_maps_read_back_to_the_keypoints_within_a_fraction_of_a_pixel():
    kp = _pose()
    kp[0, 3, 2] = 0  # one absent joint
    maps = pose_maps(kp, 64, 32)
    assert maps.shape == (4, 36, 32, 32) and maps[0, 3].abs().max() == 0
    back = sequence_keypoints(maps[:, :17], 64)
    present = kp[..., 2] > 0
    assert (back[..., :2] - kp[..., :2])[present].abs().max() < 0.5  # 32x32 maps: 0.25 px there x 2
    assert torch.equal(back[0, 3], torch.zeros(3))


def test_psgan_generator_starts_by_holding_the_input_pose():
    g = PoseSequenceGenerator(9, map_size=32, base=8, noise_dim=4)
    kp = rescale_keypoints(_pose(2), 64, 32)
    kp[1, 4] = 0.0  # absent in the first frame: starts absent
    maps, seq = g(kp, torch.tensor([0, 5]), torch.randn(2, 4))
    assert maps.shape == (2, 17, 16, 32, 32) and 0 <= maps.min() and maps.max() <= 1
    assert seq.shape == (2, 16, 17, 3)
    present = kp[..., 2] > 0
    assert torch.allclose(seq[..., :2][present[:, None].expand(-1, 16, -1)],
                          kp[:, None, :, :2].expand(-1, 16, -1, -1)[present[:, None].expand(-1, 16, -1)])
    assert (seq[..., 2][present[:, None].expand(-1, 16, -1)] > 0.98).all() and (seq[1, :, 4, 2] < 0.02).all()
    back = sequence_keypoints(maps.transpose(1, 2), 32)  # the heatmaps are drawn at the keypoints
    assert (back[..., :2] - seq[..., :2])[present[:, None].expand(-1, 16, -1)].abs().max() < 0.25


def test_psgan_generator_is_finite_for_a_visible_joint_far_off_the_map():
    g = PoseSequenceGenerator(9, map_size=32, base=8, noise_dim=4)
    kp = rescale_keypoints(_pose(1), 64, 32)
    kp[0, 9, :2] = torch.tensor([-40.0, 200.0])  # visible, but its heatmap does not reach the map
    maps, seq = g(kp, torch.tensor([3]), torch.randn(1, 4))
    assert torch.isfinite(maps).all() and torch.isfinite(seq).all()


def test_psgan_generator_moves_joints_with_gradients_and_uses_label_and_noise():
    g = PoseSequenceGenerator(9, map_size=32, base=8, noise_dim=4)
    kp = rescale_keypoints(_pose(1), 64, 32)
    target = kp[:, None, :, :2] + 3.0  # every joint 3 px down and right in every frame
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    for _ in range(30):
        _, seq = g(kp, torch.tensor([0]), torch.zeros(1, 4))
        loss = (seq[..., :2] - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss < 1.5  # from 3 px
    g = PoseSequenceGenerator(9, map_size=32, base=8, noise_dim=4)
    torch.nn.init.normal_(g.head.weight, std=0.5)  # away from the zero init, so the decoder matters
    z = torch.randn(1, 4)
    a, b, c = g(kp, torch.tensor([0]), z)[1], g(kp, torch.tensor([1]), z)[1], g(kp, torch.tensor([0]), -z)[1]
    assert (a - b).abs().max() > 1e-3 and (a - c).abs().max() > 1e-3


def test_frame_generator_shape_and_range():
    g = FrameGenerator(base=8, res_blocks=1)
    out = g(torch.rand(2, 3, 64, 64) * 2 - 1, pose_maps(_pose(2), 64, 64))
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1


@pytest.mark.parametrize("kind", ABNORMAL_KINDS)
def test_abnormal_pose_does_what_its_kind_says(kind):
    kp = _pose(64)
    kp[:, 0, :] = 0.0  # an absent joint stays absent
    bad = abnormal_pose(kp, torch.Generator().manual_seed(1), kinds=(kind,))
    assert torch.equal(bad[:, 0], torch.zeros(64, 3))
    present = kp[..., 2] > 0
    if kind == "missing":
        dropped = present & (bad[..., 2] == 0)
        assert 0.2 < dropped.sum() / present.sum() < 0.4  # p = 0.3
        kept = present & (bad[..., 2] > 0)
        assert torch.equal(bad[kept], kp[kept])
        assert (bad[dropped] == 0).all()
    elif kind == "scaled":
        centre = kp[:, 1:, :2].mean(1, keepdim=True)
        ratio = ((bad[:, 1:, :2] - centre).norm(dim=-1) / (kp[:, 1:, :2] - centre).norm(dim=-1))
        assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4)  # one scale per pose
        assert ((ratio[:, 0] - 1).abs() >= 0.1 - 1e-4).all() and ((ratio[:, 0] - 1).abs() <= 0.25 + 1e-4).all()
    else:
        moved = bad[..., :2][present] - kp[..., :2][present]
        assert 1.7 < moved.std() < 2.3  # σ = 2 px
        assert torch.equal(bad[..., 2], kp[..., 2])


def test_abnormal_pose_repeats_with_the_same_seed_and_mixes_kinds():
    kp = _pose(32)
    one = abnormal_pose(kp, torch.Generator().manual_seed(3))
    assert torch.equal(one, abnormal_pose(kp, torch.Generator().manual_seed(3)))
    assert not torch.equal(one, abnormal_pose(kp, torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="kinds"):
        abnormal_pose(kp, kinds=("upside-down",))


def test_temporal_filter_by_hand_and_around_absent_joints():
    kp = torch.zeros(1, 5, 17, 3)
    kp[0, :, 3, 0] = torch.tensor([0.0, 4.0, 0.0, 4.0, 0.0])  # joint 3 zig-zags in x, visible throughout
    kp[0, :, 3, 2] = 2.0
    kp[0, :, 5] = torch.tensor([[1.0, 1.0, 2.0], [5.0, 1.0, 2.0], [0.0, 0.0, 0.0], [9.0, 1.0, 2.0], [9.0, 1.0, 2.0]])
    out = temporal_filter(kp)
    assert torch.allclose(out[0, :, 3, 0], torch.tensor([1.0, 2.0, 2.0, 2.0, 1.0]))  # ends repeat themselves
    # joint 5 is absent at t = 2: it stays (0, 0, 0), and its neighbours use themselves in its place
    assert torch.allclose(out[0, :, 5, 0], torch.tensor([2.0, 4.0, 0.0, 9.0, 9.0]))
    assert torch.equal(out[0, 2, 5], torch.zeros(3)) and torch.equal(out[..., 2], kp[..., 2])
    assert torch.equal(out[0, :, 0], torch.zeros(5, 3))  # never visible: untouched zeros
