"""PSGAN and SCGAN modules: manual-optimisation steps move every network, losses fall, evaluation repeats,
and the image -> video pipeline gives frames of the right shape."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from crossmedia.tasks.posevideo.data import PoseVideoDataModule
from crossmedia.tasks.posevideo.module import PSGAN, SCGAN


def _dm(root, mode, **kw):
    dm = PoseVideoDataModule(dataset="puppets", root=str(root), mode=mode, batch_size=8, eval_batch_size=16, **kw)
    dm.setup()
    return dm


def _fit(model, dm, steps: int) -> None:
    trainer = pl.Trainer(max_steps=steps, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[], accelerator="cpu")
    trainer.fit(model, datamodule=dm)


def _params(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in net.parameters()])


def _tiny_psgan(dm, **kw) -> PSGAN:
    return PSGAN(actions=dm.actions, base=8, noise_dim=4, res_blocks=1, d_base=8, classifier=None, **kw)


def _tiny_scgan(**kw) -> SCGAN:
    return SCGAN(base=8, res_blocks=1, d_base=8, d_layers=2, estimator=None, psgan=None, **kw)


def test_psgan_step_moves_generator_and_discriminator(tiny_puppets):
    dm = _dm(tiny_puppets, "clips")
    model = _tiny_psgan(dm)
    before_g, before_d = _params(model.generator), _params(model.discriminator)
    _fit(model, dm, 2)  # global_step counts both optimisers: one batch
    assert (before_g - _params(model.generator)).abs().max() > 0
    assert (before_d - _params(model.discriminator)).abs().max() > 0
    assert len(model.trainer.optimizers) == 2


def test_psgan_takes_its_actions_from_the_data_and_l1_baseline_has_no_discriminator(tiny_puppets):
    dm = _dm(tiny_puppets, "clips")
    model = PSGAN(base=8, noise_dim=4, res_blocks=1, adversarial=False, classifier=None)
    _fit(model, dm, 1)
    assert model.actions == dm.actions and model.hparams.actions == dm.actions
    assert not hasattr(model, "discriminator") and len(model.trainer.optimizers) == 1


def test_psgan_reconstruction_loss_falls_on_one_batch(tiny_puppets):
    torch.manual_seed(0)
    dm = _dm(tiny_puppets, "clips")
    model = _tiny_psgan(dm, adversarial=False, lr=2e-3)
    batch = next(iter(dm.train_dataloader()))
    opt = torch.optim.Adam(model.generator.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        fake, _ = model.generated(batch["keypoints"][:, 0], batch["action"], torch.zeros(len(batch["action"]), 4))
        loss = (fake - model._real_maps(batch["keypoints"])).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.85 * losses[0]  # 0.0083 -> 0.0067: G starts at the held input pose, already close


def test_generate_poses_chains_segments_and_starts_at_the_given_pose(tiny_puppets):
    dm = _dm(tiny_puppets, "clips")
    model = _tiny_psgan(dm).eval()
    pose = dm.datasets["test"].keypoints[0, 0]
    seq = model.generate_poses(pose, "wave", 20, seed=1)
    assert seq.shape == (20, 17, 3)
    present = pose[:, 2] > 0
    assert (seq[0, present, :2] - pose[present, :2]).abs().max() < 0.6  # an untrained G holds the input pose
    assert torch.equal(seq, model.generate_poses(pose, "wave", 20, seed=1))
    with pytest.raises(ValueError, match="unknown action 'moonwalk'.*wave"):
        model.generate_poses(pose, "moonwalk")


def test_scgan_step_moves_generator_and_both_discriminators(tiny_puppets):
    dm = _dm(tiny_puppets, "frames")
    model = _tiny_scgan()
    before = {name: _params(getattr(model, name)) for name in ("generator", "discriminator", "which")}
    _fit(model, dm, 3)  # three optimisers: one batch
    for name, value in before.items():
        assert (value - _params(getattr(model, name))).abs().max() > 0, name
    baseline = _tiny_scgan(semantic_consistency=False)
    assert not any(k.startswith("which.") for k in baseline.state_dict())
    assert len(baseline.configure_optimizers()) == 2


def test_scgan_abnormal_branch_trains_on_the_kinds_it_is_given(tiny_puppets, monkeypatch):
    import crossmedia.tasks.posevideo.module as module

    seen = []
    real = module.abnormal_pose
    monkeypatch.setattr(module, "abnormal_pose", lambda *a, **k: seen.append(k.get("kinds")) or real(*a, **k))
    _fit(_tiny_scgan(abnormal_kinds=["missing"]), _dm(tiny_puppets, "frames"), 3)
    assert seen and set(seen) == {("missing",)}
    with pytest.raises(ValueError, match="abnormal_kinds must be some of .* got \\['blurred'\\]"):
        _tiny_scgan(abnormal_kinds=["blurred"])


def test_scgan_l1_falls_on_one_batch(tiny_puppets):
    torch.manual_seed(0)
    dm = _dm(tiny_puppets, "frames")
    model = _tiny_scgan()
    batch = next(iter(dm.train_dataloader()))
    opt = torch.optim.Adam(model.generator.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        loss = (model.render(batch["source"], batch["target_keypoints"]) - batch["target"]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_evaluation_abnormal_poses_depend_on_the_item_not_the_batch(tiny_puppets):
    dm = _dm(tiny_puppets, "frames")
    model = _tiny_scgan()
    batch = next(iter(dm.test_dataloader()))
    kp, index, frame = batch["target_keypoints"], batch["index"], batch["target_frame"]
    whole = model.abnormal_eval_pose(kp, index, frame)
    part = model.abnormal_eval_pose(kp[3:5], index[3:5], frame[3:5])
    assert torch.equal(whole[3:5], part) and not torch.equal(whole, kp)


class _FakeEstimator(torch.nn.Module):
    def __init__(self, pose):
        super().__init__()
        self.pose = pose

    def estimate(self, images):
        return self.pose[None].expand(len(images), -1, -1)


def test_generate_runs_the_pipeline_and_returns_frames_in_unit_range(tiny_puppets):
    from PIL import Image

    dm = _dm(tiny_puppets, "clips")
    psgan = _tiny_psgan(dm).eval()
    scgan = _tiny_scgan().eval()
    pose = dm.datasets["test"].keypoints[0, 0]
    scgan.__dict__["_zoo_nets"] = {"psgan": psgan, "pose-estimator": _FakeEstimator(pose)}
    scgan.hparams.psgan, scgan.hparams.estimator = "psgan", "pose-estimator"
    image = Image.open(dm.clips["test"][0].frames[0])
    video = scgan.generate(image, action="wave", frames=18)
    assert video.shape == (18, 3, 64, 64) and 0 <= video.min() and video.max() <= 1
    assert scgan.actions == dm.actions
    given = scgan.generate(image, action="clap", frames=4, pose=pose)
    assert given.shape == (4, 3, 64, 64)
