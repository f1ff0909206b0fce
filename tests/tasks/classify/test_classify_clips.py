"""Clip classification in the classify task: puppet clips as (B, T, 3, S, S) batches of their actions,
a network that mean-pools frame features, a Tf-KD reg loss that falls, ``classify`` naming actions."""
import json

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from crossmedia.data.builtin.puppets import PUPPET_ACTIONS
from crossmedia.data.imagefolder import load_image_array
from crossmedia.tasks.classify.data import ClassifyDataModule
from crossmedia.tasks.classify.models import ImageClassifierNet
from crossmedia.tasks.classify.module import ClassifyModule

CLIPS = dict(dataset="puppets", kind="clips", frames=8, image_size=32)


def _videos(root):
    return json.loads((root / "annotations.json").read_text())["videos"]


def test_clip_batches_hold_evenly_spread_frames_and_actions(tiny_puppets):
    data = ClassifyDataModule(root=str(tiny_puppets), batch_size=4, **CLIPS)
    data.prepare_data()
    data.setup("fit")
    assert data.class_names == PUPPET_ACTIONS and data.num_classes == 9
    videos = _videos(tiny_puppets)
    for split in ("train", "val", "test"):  # each split: its clips' own split field (one clip per action here),
        members = sorted((v for v in videos if v["split"] == split), key=lambda v: str(v["id"]))  # reader's order
        wanted = [PUPPET_ACTIONS.index(v["action"]) for v in members]
        assert data.datasets[split].labels.tolist() == wanted and sorted(wanted) == list(range(9))
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (4, 8, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (4,) and y.dtype == torch.int64
    assert -1 <= x.min() and x.max() <= 1
    first = min((v for v in videos if v["split"] == "train"), key=lambda v: str(v["id"]))  # train item 0
    frame_dir = tiny_puppets / first["frame_dir"]
    for t, frame in enumerate(range(0, 16, 2)):  # frames 0, 2, ..., 14 of its 16
        pixels = load_image_array(frame_dir / f"{frame:03d}.png", 32)  # (32, 32, 3)
        expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1
        assert torch.allclose(data.datasets["train"][0][0][t], expected, atol=1e-6)


def test_clip_logits_are_the_head_of_mean_frame_features():
    torch.manual_seed(0)
    net = ImageClassifierNet(backbone="test_resnet", num_classes=9).eval()
    clips = torch.randn(2, 4, 3, 16, 16)
    with torch.no_grad():
        per_frame = net.backbone(clips.flatten(0, 1)).view(2, 4, -1)  # (B, T, D)
        assert torch.allclose(net(clips), net.head(per_frame.mean(dim=1)), atol=1e-5)
        still = clips[:, :1].expand(-1, 4, -1, -1, -1)  # a clip of one repeated frame is that image
        assert torch.allclose(net(still), net(clips[:, 0]), atol=1e-5)


def test_tfkd_reg_on_clips_loss_falls_and_classify_names_actions(tiny_puppets, one_thread):
    pl.seed_everything(0)
    data = ClassifyDataModule(root=str(tiny_puppets), batch_size=9, **CLIPS)
    model = ClassifyModule(num_classes=9, backbone="test_resnet", image_size=32, distillation="tfkd-reg", lr=5e-3)
    data.setup("fit")
    y = data.datasets["train"].labels
    x = torch.stack([data.datasets["train"][i][0] for i in range(len(y))])  # (9, 8, 3, 32, 32)
    before = model.loss_fn(model(x), y).item()
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=40, limit_val_batches=1,
                         check_val_every_n_epoch=40, default_root_dir=str(tiny_puppets.parent / "run"))
    trainer.fit(model, datamodule=data)
    after = model.loss_fn(model.eval()(x), y).item()
    assert after < 0.6 * before, (before, after)
    assert model.hparams.class_names == list(PUPPET_ACTIONS)
    assert (tiny_puppets.parent / "run" / "samples").is_dir()  # the samples callback drew clips' middle frames
    video = next(v for v in _videos(tiny_puppets) if v["split"] == "test")
    frames = [Image.open(tiny_puppets / video["frame_dir"] / f"{t:03d}.png") for t in range(0, 16, 2)]
    [name] = model.classify([frames])  # one clip: a list of PIL frames
    assert name in PUPPET_ACTIONS
    assert model.classify(model.preprocess([frames, frames])) == [name, name]
    with pytest.raises(TypeError, match=r"same number of frames .* got clips of \[2, 8\] frames"):
        model.classify([frames, frames[:2]])
    probabilities = model.probabilities(torch.stack([data.datasets["test"][0][0]]))
    assert probabilities.shape == (1, 9) and probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_clips_of_an_image_folder_are_refused_with_the_fix(mini):
    with pytest.raises(FileNotFoundError, match=r"kind='clips' reads a pose-clip folder .*init_args.dataset puppets"):
        ClassifyDataModule(dataset="mini", root=str(mini), kind="clips").setup("fit")
    with pytest.raises(ValueError, match=r"kind must be one of \('images', 'clips'\), got 'video'"):
        ClassifyDataModule(kind="video")


def test_too_few_frames_names_the_clip(tiny_puppets):
    with pytest.raises(ValueError, match=r"clip '0' has 16 frames, fewer than frames=17"):
        ClassifyDataModule(root=str(tiny_puppets), **{**CLIPS, "frames": 17}).setup("fit")
