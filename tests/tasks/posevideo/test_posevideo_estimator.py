"""The posevideo pose estimator and action classifier: read-back, shapes, losses that fall, a fit on tiny puppets."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from crossmedia.data.keypoints import render_pose
from crossmedia.tasks.posevideo.estimator import ActionClassifier, PoseEstimator, read_heatmaps


def _keypoints(b: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(b, 17, 3, generator=g) * (size - 8) + 4
    kp[..., 2] = 2.0
    return kp


def _frames(kp: torch.Tensor) -> torch.Tensor:
    """Synthetic frames: joint j drawn as a blob in colour channel j % 3, in [-1, 1]."""
    maps = render_pose(kp, 64, sigma=1.5, limbs=False)  # (B, 17, 64, 64)
    img = torch.stack([maps[:, c::3].sum(1) for c in range(3)], 1).clamp(0, 1)
    return img * 2 - 1


def test_read_heatmaps_recovers_subpixel_positions_and_absent_joints():
    kp = _keypoints(2, 32)
    kp[..., :2] = kp[..., :2].clamp(2, 29)
    kp[1, 4, 2] = 0  # absent: an empty map
    out = read_heatmaps(render_pose(kp, 32, sigma=1.0, limbs=False))
    present = kp[..., 2] > 0
    assert (out[..., :2] - kp[..., :2])[present].abs().max() < 0.3
    assert out[1, 4, 2] == 0 and (out[..., 2][present] == 2).all()


def test_estimate_maps_heatmap_pixels_to_input_pixels():
    """x_S = (x_32 + 0.5) S / 32 - 0.5: a network that outputs the maps of known keypoints is read back at S."""
    model = PoseEstimator()
    kp64 = _keypoints(3, 64, seed=1)
    kp64[..., :2] = kp64[..., :2].clamp(6, 57)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return model.target_maps(kp64)

    model.net = Fixed()
    for size in (64, 128):
        out = model.estimate(torch.zeros(3, 3, size, size))
        assert out.shape == (3, 17, 3)
        expected = (kp64[..., :2] + 0.5) * size / 64 - 0.5
        assert (out[..., :2] - expected).abs().max() < 0.3 * size / 32


def test_estimator_shapes_pil_and_loss_falls():
    torch.manual_seed(0)
    model = PoseEstimator(base=8)
    images = [Image.new("RGB", (64, 64), (200, 30, 30)), Image.new("RGB", (64, 64), (0, 0, 0))]
    assert model.estimate(images).shape == (2, 17, 3)
    assert model.features(torch.zeros(4, 3, 64, 64)).shape == (4, 32)
    kp = _keypoints(4)
    batch = {"source": _frames(kp[:2]), "target": _frames(kp[2:]), "source_keypoints": kp[:2],
             "target_keypoints": kp[2:]}
    opt = model.configure_optimizers()
    losses = []
    for step in range(12):
        opt.zero_grad()
        loss = model.training_step(batch, step)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def _moving(direction: float, b: int, seed: int) -> torch.Tensor:
    """(b, 16, 17, 3) sequences whose joints drift along x by ``direction`` px per frame."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 1, 17, 2, generator=g) * 20 + 22
    t = torch.arange(16.0)[None, :, None, None]
    xy = base + torch.cat([direction * t, torch.zeros_like(t)], -1)
    return torch.cat([xy, torch.full((b, 16, 17, 1), 2.0)], -1)


def test_classifier_learns_direction_and_classifies():
    torch.manual_seed(0)
    model = ActionClassifier(actions=["left", "right"], jitter=1.0)
    kp = torch.cat([_moving(-0.8, 16, 0), _moving(0.8, 16, 1)])
    action = torch.tensor([0] * 16 + [1] * 16)
    opt = model.configure_optimizers()
    losses = []
    for step in range(30):
        opt.zero_grad()
        loss = model.training_step({"keypoints": kp, "action": action}, step)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert model.logits(kp[:3]).shape == (3, 2)
    names = model.classify(torch.cat([_moving(-0.8, 4, 5), _moving(0.8, 4, 6)]))
    assert names == ["left"] * 4 + ["right"] * 4
    assert model.classify(_moving(0.8, 1, 7)[0]) == ["right"]  # one (T, 17, 3) sequence


def test_classifier_augmentation_keeps_absent_joints_and_needs_actions():
    model = ActionClassifier(actions=["a", "b", "c"])
    kp = _moving(0.5, 2, 0)
    kp[0, :, 3] = 0.0
    out = model.augment(kp)
    assert (out[0, :, 3] == 0).all() and not torch.equal(out, kp)
    with pytest.raises(ValueError, match="actions"):
        ActionClassifier().configure_model()


def test_fit_and_test_on_tiny_puppets(tiny_puppets, tmp_path):
    import pytorch_lightning as pl

    from crossmedia.tasks.posevideo.data import PoseVideoDataModule

    for mode, model, key in (("clips", ActionClassifier(), "test/accuracy"),
                             ("frames", PoseEstimator(base=8), "test/pck")):
        dm = PoseVideoDataModule(root=str(tiny_puppets), mode=mode, batch_size=8, eval_batch_size=16, eval_pairs=1)
        trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             default_root_dir=tmp_path)
        trainer.fit(model, datamodule=dm)
        metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
        assert 0.0 <= metrics[key] <= 1.0
    assert model.hparams.base == 8
    assert trainer.datamodule.actions and len(trainer.datamodule.actions) == 9
