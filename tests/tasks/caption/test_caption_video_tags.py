"""The tag networks of ST-XlanV: exact segmenting, clip logits as means, puppet batches with both labels,
each network's loss falls on a tiny run, and the Tf-KD switch of their single-label heads."""
import json

import pytest
import torch

from crossmedia.data.builtin.puppets import PUPPET_ACTIONS, PUPPET_COLOURS
from crossmedia.data.imagefolder import load_image_array
from crossmedia.tasks.caption.video.tags import (ActionTagger, ContentTagger, VideoTagDataModule, as_clips,
                                                 segment_starts, segments)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small models on a busy 2-core machine: one torch thread (conftest's ``one_thread``)."""
    yield


def test_segment_starts_cover_the_clip_with_8_frames_every_4():
    assert segment_starts(16) == [0, 4, 8]
    assert segment_starts(32) == list(range(0, 25, 4))
    assert segment_starts(18) == [0, 4, 8, 10]  # the tail is covered by one last segment
    assert segment_starts(8) == [0]
    with pytest.raises(ValueError, match="shorter than one segment of 8 frames"):
        segment_starts(7)


def test_16_frames_make_3_segments_of_8_frames_exactly():
    frames = torch.arange(2 * 16, dtype=torch.float32).view(2, 16, 1, 1, 1).expand(2, 16, 3, 4, 5)
    seg = segments(frames)
    assert seg.shape == (2, 3, 3, 8, 4, 5)  # (B, S, 3, L, H, W)
    for b in range(2):
        for s, start in enumerate((0, 4, 8)):
            assert seg[b, s, 0, :, 0, 0].tolist() == [16 * b + start + t for t in range(8)]
            assert torch.equal(seg[b, s].transpose(0, 1), frames[b, start:start + 8])


def test_as_clips_takes_channel_last_uint8_and_single_clips():
    clip = torch.randint(0, 256, (16, 8, 8, 3), dtype=torch.uint8)
    x = as_clips(clip.numpy())
    assert x.shape == (1, 16, 3, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x[0, 3, 1], clip[3, :, :, 1].float() / 255)
    assert as_clips(torch.rand(2, 4, 3, 8, 8)).shape == (2, 4, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        as_clips(torch.rand(4, 8, 8))


def test_action_clip_logits_are_the_mean_of_segment_logits_and_motion_is_the_penultimate_feature():
    torch.manual_seed(0)
    model = ActionTagger(width=4, feature_dim=32).eval()
    frames = torch.rand(2, 16, 3, 32, 32)
    with torch.no_grad():
        per_segment = model.segment_logits(frames)
        assert per_segment.shape == (2, 3, 9)
        assert torch.allclose(model(frames), per_segment.mean(dim=1), atol=1e-6)
        motion, logits = model.motion(frames)
        assert motion.shape == (2, 3, 32) and model.feature_dim == 32
        assert torch.allclose(logits, model(frames), atol=1e-6)
        second = ((frames[:1, 4:12] - 0.5) / 0.5).transpose(1, 2)  # segment 1 of clip 0: (1, 3, 8, S, S)
        assert torch.allclose(motion[0, 1], model.net.features(second)[0], atol=1e-5)
    tags = model.tags(frames)
    assert [set(t) for t in tags] == [{"action", "action_prob"}] * 2
    assert all(t["action"] in PUPPET_ACTIONS and 1 / 9 <= t["action_prob"] <= 1 for t in tags)
    view = model.train_view(frames)
    assert view.shape == (2, 8, 3, 32, 32)
    assert any(torch.equal(view[0], frames[0, s:s + 8]) for s in (0, 4, 8))


def test_content_clip_logits_are_the_mean_of_frame_logits():
    torch.manual_seed(0)
    model = ContentTagger(backbone="test_resnet").eval()
    frames = torch.rand(2, 5, 3, 32, 32)
    with torch.no_grad():
        per_frame = model.net((frames[1] - 0.5) / 0.5)  # (5, K)
        assert torch.allclose(model(frames)[1], per_frame.mean(dim=0), atol=1e-5)
    [tag] = model.tags(frames[0])  # one clip (T, 3, H, W)
    assert tag["content"] in PUPPET_COLOURS and set(tag) == {"content", "content_prob"}
    view = model.train_view(frames)
    assert view.shape == (2, 2, 3, 32, 32)
    assert all(any(torch.equal(f, g) for g in frames[0]) for f in view[0])


def test_puppet_batches_hold_frames_in_0_1_and_both_labels(tiny_puppets):
    data = VideoTagDataModule(root=str(tiny_puppets), batch_size=4)
    data.prepare_data()
    data.setup("fit")
    assert data.actions == list(PUPPET_ACTIONS) and data.colours == list(PUPPET_COLOURS)
    batch = next(iter(data.train_dataloader()))
    assert batch["frames"].shape == (4, 16, 3, 64, 64) and batch["frames"].dtype == torch.float32
    assert 0 <= batch["frames"].min() and batch["frames"].max() <= 1
    videos = {str(v["id"]): v for v in json.loads((tiny_puppets / "annotations.json").read_text())["videos"]}
    train = data.datasets["train"]
    for i, vid in enumerate(data.video_ids["train"]):
        assert train.action[i] == PUPPET_ACTIONS.index(videos[vid]["action"])
        assert train.content[i] == list(PUPPET_COLOURS).index(videos[vid]["top_colour"])
    first = videos[data.video_ids["train"][0]]
    pixels = load_image_array(tiny_puppets / first["frame_dir"] / "005.png", 64)
    assert torch.equal(train.frames[0, 5], torch.from_numpy(pixels.copy()).permute(2, 0, 1))


def _train(model, batch, steps, lr=None):
    model.log = lambda *args, **kwargs: None  # no Trainer here
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr or model.hparams.lr)
    model.train()
    for _ in range(steps):
        loss = model.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _clip_loss(model, batch):
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(model.eval()(batch["frames"]), batch[model.kind]).item()


@pytest.fixture(scope="module")
def train_batch(tiny_puppets):
    data = VideoTagDataModule(root=str(tiny_puppets), batch_size=9, image_size=32)
    data.setup("fit")
    return next(iter(data.split_loader("train", False)))  # 9 clips, one per action


TINY = {"action": lambda d: ActionTagger(width=8, feature_dim=64, dropout=0.0, distillation=d),
        "content": lambda d: ContentTagger(backbone="test_resnet", train_frames=2, distillation=d)}


@pytest.mark.parametrize("kind,distillation", [("action", "ce"), ("action", "tfkd-reg"), ("content", "ce")])
def test_each_tagger_loss_falls_on_a_tiny_run(train_batch, kind, distillation):
    torch.manual_seed(0)
    model = TINY[kind](distillation)
    before = _clip_loss(model, train_batch)
    _train(model, train_batch, 40 if kind == "action" else 30)
    after = _clip_loss(model, train_batch)
    assert after < 0.5 * before, (before, after)


def test_tfkd_switch_is_an_init_argument_with_the_teacher_checks(train_batch):
    torch.manual_seed(0)
    assert ActionTagger(distillation="tfkd-reg").loss_fn.method == "tfkd-reg"
    assert ContentTagger(backbone="test_resnet", distillation="ls").loss_fn.method == "ls"
    with pytest.raises(ValueError, match="needs a teacher"):
        ActionTagger(distillation="tfkd-self")
    with pytest.raises(ValueError, match="uses no teacher"):
        ContentTagger(backbone="test_resnet", teacher="video-content-tagger")
    with pytest.raises(ValueError, match="unknown distillation"):
        ActionTagger(distillation="nope")
    student = ActionTagger(width=4, feature_dim=16, distillation="tfkd-self", teacher="video-action-tagger")
    student.loss_fn.attach_teacher(ActionTagger(width=4, feature_dim=16))
    student.log = lambda *args, **kwargs: None
    loss = student.training_step(train_batch, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    student.hparams.classes = student.classes = ["a", "b"]  # a teacher of other classes is refused at fit start
    with pytest.raises(ValueError, match="knows the classes"):
        student.on_fit_start()
