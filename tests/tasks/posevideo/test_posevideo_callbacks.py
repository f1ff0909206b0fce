"""GeneratedClips writes the pose and frame GIFs and the PNG sheet of each validation epoch (one
GIF frame per time step, the clips side by side) and logs them to W&B only when a WandbLogger is there."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image

from crossmedia.tasks.posevideo.callbacks import GeneratedClips
from crossmedia.tasks.posevideo.drawing import LEFT_COLOUR

T, S = 5, 16


def _walk(batch_size: int) -> torch.Tensor:
    """(B, T, 17, 3): left shoulder (5) -> left elbow (7), a vertical arm that moves 1 px right per step."""
    kp = torch.zeros(batch_size, T, 17, 3)
    kp[:, :, 5] = torch.tensor([4.0, 2.0, 2.0])
    kp[:, :, 7] = torch.tensor([4.0, 12.0, 2.0])
    kp[:, :, [5, 7], 0] += torch.arange(T, dtype=torch.float32)[None, :, None]
    return kp


class TinyPoseModule(pl.LightningModule):
    """A LightningModule with the posevideo sampling hook and nothing else to speak of."""

    actions = ["wave", "clap", "walk"]

    def __init__(self, with_frames: bool = True):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.with_frames, self.calls = with_frames, []

    def training_step(self, batch, batch_idx):
        return self.layer(batch["x"]).square().mean()

    def validation_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def sample_clips(self, batch):
        self.calls.append(len(batch["action"]))
        b = len(batch["action"])
        out = {"keypoints": _walk(b)}
        if self.with_frames:
            out["frames"] = torch.full((b, T, 3, S, S), -1.0)  # black
            out["real_frames"] = torch.ones(b, 3, S, S)  # one white frame per clip
        return out


def _loader(n: int):
    items = [{"x": torch.randn(2), "action": torch.tensor(i % 3)} for i in range(n)]
    return torch.utils.data.DataLoader(items, batch_size=6)


def test_trainer_run_writes_the_files_of_each_epoch(tmp_path):
    module = TinyPoseModule()
    trainer = pl.Trainer(max_epochs=2, limit_train_batches=1, limit_val_batches=2, num_sanity_val_steps=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path,
                         callbacks=[GeneratedClips(clips=4, scale=2)])
    trainer.fit(module, train_dataloaders=_loader(6), val_dataloaders=_loader(12))
    assert module.calls == [4, 4]  # once per epoch, on the first batch's first 4 clips
    samples = tmp_path / "samples"
    for epoch in ("epoch000", "epoch001"):
        with Image.open(samples / f"{epoch}_poses.gif") as gif:
            # 4 clips of 32 px side by side with 2 px gaps; one GIF frame per time step
            assert gif.n_frames == T and gif.size == (4 * 32 + 3 * 2, 32)
        with Image.open(samples / f"{epoch}_frames.gif") as gif:
            assert gif.n_frames == T and gif.size == (4 * 32 + 3 * 2, 3 * 32 + 2 * 2)  # skeletons, generated, real
            gif.seek(2)
            frame = np.asarray(gif.convert("RGB"))
        assert (frame[34:66, :32] < 20).all() and (frame[68:, :32] > 235).all()  # generated black, real white
        # the arm of time step 2 is at x = 6 -> column 13 of the 2x picture, rows 4..25
        assert np.abs(frame[14, 13].astype(int) - LEFT_COLOUR).max() < 40
        sheet = Image.open(samples / f"samples_clips_{epoch}.png")
        # 4 clips x 3 kinds rows of 32 px; T = 5 steps of 32 px; 2 px gaps (the real row has 1 frame)
        assert sheet.size == (5 * 32 + 4 * 2, 12 * 32 + 11 * 2)


class _FakeRun:
    def __init__(self):
        self.logged = []

    def log(self, data, step=None):
        self.logged.append((data, step))


class WandbLogger:
    """Stands in for Lightning's WandbLogger (the callback looks at the class name)."""

    def __init__(self):
        self.experiment, self.images = _FakeRun(), []

    def log_image(self, key, images, step=None, **kwargs):
        self.images.append((key, kwargs.get("caption")))


def _fake_trainer(tmp_path, loggers):
    return SimpleNamespace(sanity_checking=False, is_global_zero=True, current_epoch=7, global_step=30,
                           default_root_dir=str(tmp_path), loggers=loggers, datamodule=None)


def test_hooks_called_directly_log_videos_only_with_wandb(tmp_path):
    import wandb

    callback, module = GeneratedClips(clips=2, scale=1), TinyPoseModule(with_frames=False)
    batch = {"action": torch.tensor([2, 0, 1]), "keypoints": torch.zeros(3, T, 17, 3)}
    plain = _fake_trainer(tmp_path / "plain", loggers=[])
    callback.on_validation_epoch_start(plain, module)
    callback.on_validation_batch_end(plain, module, None, batch, 0)
    callback.on_validation_batch_end(plain, module, None, {"action": torch.tensor([1])}, 1)  # not the first batch
    callback.on_validation_epoch_end(plain, module)
    assert module.calls == [2]
    assert sorted(p.name for p in (tmp_path / "plain" / "samples").iterdir()) == [
        "epoch007_poses.gif", "samples_clips_epoch007.png"]  # no frames, so no frames GIF
    with Image.open(tmp_path / "plain" / "samples" / "epoch007_poses.gif") as gif:
        assert gif.n_frames == T and gif.size == (2 * 64 + 1, 64)  # no frames and no image_size anywhere: 64 px

    logger = WandbLogger()
    traced = _fake_trainer(tmp_path / "wandb", loggers=[logger])
    traced.datamodule = SimpleNamespace(image_size=S, actions=None)
    callback.on_validation_batch_end(traced, module, None, batch, 0)
    callback.on_validation_epoch_end(traced, module)
    (data, step), = logger.experiment.logged
    assert step == 30 and list(data) == ["samples/poses"] and isinstance(data["samples/poses"], wandb.Video)
    assert logger.images == [("samples/clips", ["walk | wave"])]  # the action names of the first 2 clips

    sanity = _fake_trainer(tmp_path / "sanity", loggers=[])
    sanity.sanity_checking = True
    callback.on_validation_batch_end(sanity, module, None, batch, 0)
    callback.on_validation_epoch_end(sanity, module)
    assert not (tmp_path / "sanity").exists() and module.calls == [2, 2]
