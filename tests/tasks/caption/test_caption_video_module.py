"""ST-XlanV / XlanV modules on a tiny MSR-VTT-format folder with synthetic stream features (h5 + tags.json):
the data module's batches and CaptionData interface, each training stage's loss falls (pre-training
TAP + MLM + VCAP, cross-entropy with label smoothing, SCST's reward rises), the test loop logs the
coco metrics, and caption_video runs from frames and from an mp4 through an extractor."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from crossmedia.tasks.caption.cider import CiderD
from crossmedia.tasks.caption.data import CaptionData
from crossmedia.tasks.caption.reward import CaptionReward
from crossmedia.tasks.caption.video.data import VideoCaptionDataModule
from crossmedia.tasks.caption.video.module import STXlanVModule, XlanVModule

COLOURS, ACTIONS = ("red", "blue", "green"), ("jumps", "waves")
DA, DM = 6, 5


def _video(i):
    return COLOURS[i % 3], ACTIONS[(i // 3) % 2]


def _write_folder(root, videos=10):
    """videos 0-5 train (every colour x action), 6-7 validate, 8-9 test; the features encode colour and action."""
    rng = np.random.default_rng(0)
    splits = ["train"] * 6 + ["validate"] * 2 + ["test"] * 2
    doc = {"info": {}, "videos": [], "sentences": []}
    (root / "features").mkdir(parents=True)
    tags = {}
    with h5py.File(root / "features" / "appearance.h5", "w") as app, h5py.File(root / "features" / "motion.h5", "w") as mot:
        for i in range(videos):
            colour, action = _video(i)
            vid = f"video{i}"
            doc["videos"].append({"video_id": vid, "id": i, "split": splits[i], "category": 0, "url": "",
                                  "start time": 0.0, "end time": 2.0})
            for k, sentence in enumerate([f"a person in a {colour} top {action}", f"someone in {colour} {action}",
                                          f"a {colour} person {action}"]):
                doc["sentences"].append({"video_id": vid, "caption": sentence, "sen_id": 3 * i + k})
            frames = 4 + i % 2                                                # variable lengths: padding in batches
            a = rng.normal(0, 0.1, (frames, DA)).astype(np.float32)
            a[:, COLOURS.index(colour)] += 1.0
            m = rng.normal(0, 0.1, (2, DM)).astype(np.float32)
            m[:, ACTIONS.index(action)] += 1.0
            app[vid], mot[vid] = a, m
            tags[vid] = {"content": colour, "action": action.rstrip("s"), "content_prob": 0.9, "action_prob": 0.8}
    (root / "annotations.json").write_text(json.dumps(doc))
    (root / "features" / "tags.json").write_text(json.dumps(tags))
    return root


@pytest.fixture
def folder(tmp_path):
    return _write_folder(tmp_path / "tiny-msrvtt")


@pytest.fixture
def data(folder):
    dm = VideoCaptionDataModule(root=str(folder), min_count=0, batch_size=6, eval_batch_size=2,
                                captions_per_image=3, max_len=8)
    dm.setup("fit")
    return dm


def _train_batch(data):
    return data.collate([data.datasets["train"][i] for i in range(6)])


def _model(data, stub_trainer, cls=STXlanVModule, fn="fit", **kwargs):
    torch.manual_seed(0)
    model = cls(dim=16, heads=2, stream_blocks=1, cross_blocks=1, dropout=0.0, att_dropout=0.0, max_len=8, **kwargs)
    model._trainer = stub_trainer(fn, data)
    model.configure_model()
    model.log = lambda *args, **kw: None
    return model


def test_data_module_batches_and_caption_data(data):
    assert isinstance(data, CaptionData)
    assert data.tag_words == ["<none>", "blue", "green", "jump", "red", "wave"]
    assert (data.appearance_dim, data.motion_dim) == (DA, DM)
    batch = _train_batch(data)
    assert batch["appearance"].shape == (6, 5, DA) and batch["appearance_mask"].sum(1).tolist() == [4, 5] * 3
    assert batch["motion"].shape == (6, 2, DM) and batch["motion_mask"].all()
    assert batch["tags"][0].tolist() == [data.tag_words.index("red"), data.tag_words.index("jump")]
    assert batch["captions"].shape == (6, 3, 9) and batch["index"].tolist() == list(range(6))
    assert len(data.raw_references("test")) == 2 and data.raw_references("val")[0][0] == "a person in a red top jumps"
    assert data.reward_references()[0][0] == "a person in a red top jumps"
    assert data.scene_objects("test") is None
    assert "captions" not in data.collate([data.datasets["test"][0]])


def test_missing_tags_and_features_name_the_file(folder):
    tags = json.loads((folder / "features" / "tags.json").read_text())
    del tags["video3"]
    (folder / "features" / "tags.json").write_text(json.dumps(tags))
    with pytest.raises(ValueError, match=r"tags\.json: 1 videos have no tags, first \['video3'\]"):
        VideoCaptionDataModule(root=str(folder), min_count=0).setup("fit")
    (folder / "features" / "tags.json").write_text(json.dumps({"video0": {"content": "red"}}))
    with pytest.raises(ValueError, match="video 'video0' needs a non-empty string 'action' tag"):
        VideoCaptionDataModule(root=str(folder), min_count=0).setup("fit")
    (folder / "features" / "motion.h5").unlink()
    with pytest.raises(FileNotFoundError, match="motion.h5"):
        VideoCaptionDataModule(root=str(folder), min_count=0).setup("fit")


def test_the_model_takes_dims_and_tags_from_the_data_and_xlanv_reads_no_tags(data, stub_trainer):
    model = _model(data, stub_trainer)
    h = model.hparams
    assert (h.appearance_dim, h.motion_dim, h.tag_words) == (DA, DM, data.tag_words)
    assert model.video.has_tags and model.pretrain_heads.tap is not None
    assert not any(p.requires_grad for p in model.pretrain_heads.parameters())   # stage xe: heads frozen
    xlanv = _model(data, stub_trainer, XlanVModule)
    assert not xlanv.video.has_tags and xlanv.pretrain_heads.tap is None
    batch = _train_batch(data)
    assert model.features(batch)[0].shape[1] == 2 + 2 + 5 + 2 and xlanv.features(batch)[0].shape[1] == 2 + 5 + 2
    with pytest.raises(ValueError, match="stage must be one of"):
        STXlanVModule(stage="finetune")


def _pretrain(model, batch, steps, lr=1e-2):
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    history = []
    h = model.hparams
    weights = {"tap": h.tap_weight, "mlm": h.mlm_weight, "vcap": h.vcap_weight}
    for _ in range(steps):
        losses = model.pretrain_losses(batch)
        history.append({name: value.item() for name, value in losses.items()})
        optimizer.zero_grad()
        sum(weights[name] * value for name, value in losses.items()).backward()
        optimizer.step()
    return {name: (np.mean([h[name] for h in history[:10]]), np.mean([h[name] for h in history[-10:]]))
            for name in history[0]}


def test_pretraining_losses_fall(data, stub_trainer, one_thread):
    """TAP + MLM + VCAP together: MLM and VCAP fall fast. TAP (fresh tag replacements every step)
    stays near ln 2 for the first ~70 steps of this tiny model, so its own run is longer."""
    model = _model(data, stub_trainer, stage="pretrain")
    assert all(p.requires_grad for p in model.pretrain_heads.parameters())
    batch = _train_batch(data)
    curves = _pretrain(model, batch, 40)
    assert set(curves) == {"tap", "mlm", "vcap"}
    for name in ("mlm", "vcap"):
        assert curves[name][1] < 0.6 * curves[name][0], (name, curves[name])
    tap_only = _model(data, stub_trainer, stage="pretrain", mlm_weight=0.0, vcap_weight=0.0)
    curves = _pretrain(tap_only, batch, 120)
    assert set(curves) == {"tap"}
    assert curves["tap"][1] < 0.8 * curves["tap"][0], curves["tap"]  # 0.71 -> 0.44


def test_cross_entropy_with_label_smoothing_falls(data, stub_trainer, one_thread, descend):
    model = _model(data, stub_trainer)
    assert model.hparams.label_smoothing == 0.1 and not model.in_rl()
    batch = _train_batch(data)
    losses = descend(lambda step: model.training_step(batch, step),
                     torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2), 40)
    assert losses[-1] < 0.5 * losses[0]


def test_scst_raises_the_cider_reward(data, stub_trainer, one_thread):
    model = _model(data, stub_trainer, stage="scst", samples_per_image=4)
    model._reward = CaptionReward(CiderD.from_references(data.reward_references()), data.reward_references())
    assert model.in_rl() and model.lr_factor(0) == pytest.approx(model.hparams.rl_lr / model.hparams.lr)
    batch = {k: v for k, v in _train_batch(data).items() if k != "captions"}

    def greedy_reward():
        model.eval()
        reward = model.rewards(model.generate(batch), batch["index"]).mean().item()
        model.train()
        return reward

    before = greedy_reward()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for step in range(30):
        loss = model.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert greedy_reward() > before + 0.1  # 0.08 -> 0.23 (CIDEr-D of 6 videos that share most words)


def test_test_loop_logs_the_coco_metrics_with_beam_4(data, stub_trainer):
    model = _model(data, stub_trainer, fn="test")
    assert model.hparams.test_beam == 4
    logged = {}
    model.log = lambda name, value, **kw: logged.__setitem__(name, value)
    model.setup("test")
    model.eval()
    for i, batch in enumerate(data.test_dataloader()):
        model.test_step(batch, i)
    model.on_test_epoch_end()
    assert {"test/BLEU-4", "test/METEOR", "test/ROUGE-L", "test/CIDEr"} <= set(logged)
    assert len(model.last_samples) == 2


def _write_mp4(path, frames=16):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(frames):
            image = np.full((64, 64, 3), 16 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class _Extractor:
    """A stand-in for VideoFeatureExtractor: colour from the mean frame, fixed action."""

    def __call__(self, frames):
        assert frames.dim() == 5 and frames.shape[2:] == (3, 64, 64) and 0 <= frames.min() and frames.max() <= 1
        return [{"appearance": torch.ones(frames.shape[1], DA), "motion": torch.ones(3, DM),
                 "tags": {"content": "red", "action": "jump", "content_prob": 1.0, "action_prob": 1.0}}
                for _ in range(frames.shape[0])]


def test_caption_video_from_frames_and_from_an_mp4(data, stub_trainer, tmp_path, monkeypatch):
    from crossmedia.tasks.caption.video import module

    model = _model(data, stub_trainer, extractor={"appearance": "resnet10t", "pretrained": False})
    frames = torch.rand(2, 16, 3, 32, 32)
    captions = model.caption_video(frames, extractor=_Extractor())
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    path = _write_mp4(tmp_path / "clip.mp4")
    assert len(model.caption_video(path, beam_size=2, extractor=_Extractor())) == 1
    built = []
    monkeypatch.setattr(module, "VideoFeatureExtractor", lambda **kw: built.append(kw) or _Extractor())
    monkeypatch.setattr(_Extractor, "to", lambda self, device: self, raising=False)
    assert len(model.caption_video(path)) == 1 and built == [{"appearance": "resnet10t", "pretrained": False}]


def test_stages_chain_through_init_from(data, stub_trainer, tmp_path):
    """pretrain -> xe -> scst: each run starts from the previous one's weights (strict), heads included."""
    from crossmedia.core.checkpoint_io import save_weights

    pretrained = _model(data, stub_trainer, stage="pretrain")
    state = {k: v.clone() for k, v in pretrained.state_dict().items()}
    save_weights(state, tmp_path / "pretrain.safetensors")
    torch.save({"state_dict": state, "hyper_parameters": dict(pretrained.hparams)}, tmp_path / "pretrain.ckpt")
    for stage, source in (("xe", "pretrain.safetensors"), ("scst", "pretrain.ckpt")):
        torch.manual_seed(1)
        model = STXlanVModule(stage=stage, dim=16, heads=2, stream_blocks=1, cross_blocks=1, max_len=8,
                              init_from=str(tmp_path / source))
        model._trainer = stub_trainer("fit", data)
        model.configure_model()
        assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_validation_samples_write_captions_and_clips_and_log_them_as_videos(folder, stub_trainer, tmp_path):
    from crossmedia.tasks.caption.video.module import VideoCaptionSamples

    (folder / "videos").mkdir()
    _write_mp4(folder / "videos" / "video6.mp4", frames=4)                   # the first validation clip only
    data = VideoCaptionDataModule(root=str(folder), min_count=0, eval_batch_size=2, captions_per_image=3, max_len=8)
    data.setup("fit")
    model = _model(data, stub_trainer)
    assert [type(c) for c in model.configure_callbacks()] == [VideoCaptionSamples]
    logged = []
    logger = type("Logger", (), {"log_video": lambda self, **kw: logged.append(kw)})()
    trainer = stub_trainer("fit", data, is_global_zero=True, current_epoch=3, global_step=7,
                           default_root_dir=str(tmp_path / "run"), loggers=[logger])
    samples = VideoCaptionSamples(num_images=2, beam_size=2)
    samples.on_validation_epoch_start(trainer, model)
    samples.on_validation_batch_end(trainer, model, None, next(iter(data.val_dataloader())), 0)
    samples.on_validation_epoch_end(trainer, model)
    lines = (tmp_path / "run" / "samples" / "captions_epoch003.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["video6", "video7"]
    assert lines[0].endswith("references: a person in a red top jumps | someone in red jumps | a red person jumps")
    assert (tmp_path / "run" / "samples" / "clips_epoch003" / "video6.mp4").is_file()
    assert len(logged) == 1 and logged[0]["key"] == "samples/clips" and logged[0]["step"] == 7
    assert [Path(v).name for v in logged[0]["videos"]] == ["video6.mp4"]
    assert logged[0]["caption"][0].endswith("| reference: a person in a red top jumps")


def test_other_tag_words_are_read_in_the_models_tag_vocabulary(data, stub_trainer, caplog):
    """Data whose tags.json names other words (a user's videos): same words, same ids; unknown -> none."""
    with caplog.at_level("INFO"):
        model = _model(data, stub_trainer, tag_words=["<none>", "blue", "jump", "red", "wave", "yellow"])
    assert "read as none: green" in caplog.text
    batch = model.on_after_batch_transfer(_train_batch(data), 0)
    names = [[model.hparams.tag_words[i] for i in row] for row in batch["tags"].tolist()]
    truth = [[data.tag_words[i] for i in row] for row in _train_batch(data)["tags"].tolist()]
    assert names == [[w if w != "green" else "<none>" for w in row] for row in truth]
    assert model.training_loss(batch).isfinite()


def test_init_from_of_other_words_keeps_the_shared_word_rows(data, folder, stub_trainer, tmp_path, caplog):
    """Fine-tuning a video captioner on data with other words: the V-row and V+3-row tensors are rebuilt,
    the words both vocabularies share keep their rows, [CLS]/[SEP]/[MASK] keep theirs, the rest loads."""
    source = _model(data, stub_trainer, stage="pretrain")
    torch.save({"state_dict": source.state_dict(), "hyper_parameters": dict(source.hparams)}, tmp_path / "s.ckpt")
    fewer = VideoCaptionDataModule(root=str(folder), min_count=6, captions_per_image=3, max_len=8)  # 7 of 12 words
    fewer.setup("fit")
    old, new = list(data.vocabulary.words), list(fewer.vocabulary.words)
    assert set(new) < set(old)
    with caplog.at_level("INFO"):
        model = _model(fewer, stub_trainer, init_from=str(tmp_path / "s.ckpt"))
    assert f"({len(new)} words) differs from that of" in caplog.text
    start, state = source.state_dict(), model.state_dict()
    text = "video.streams.text.embed.0.weight"
    assert state[text].shape[0] == len(new) + 3
    for word in ("person", "jumps", "<eos>"):
        assert torch.equal(state[text][new.index(word)], start[text][old.index(word)])
    assert torch.equal(state[text][-3:], start[text][-3:])  # [CLS], [SEP], [MASK]
    same = [k for k, v in start.items() if k in state and v.shape == state[k].shape and v.shape[0] not in
            (len(old), len(old) + 3)]
    assert same and all(torch.equal(state[k], start[k]) for k in same)


def test_a_scst_stage_trains_from_a_cli_config(folder, tmp_path, monkeypatch):
    """The scst stage built by LightningCLI from a config (as `make train` does) configures its optimiser: a
    CLI-built XlanV scst run once stopped in configure_optimizers on a missing rl_start_epoch hparam."""
    import yaml

    from crossmedia.core.cli import main

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "scst.yaml"
    config.write_text(yaml.safe_dump({
        "seed_everything": 0,
        "model": {"class_path": "crossmedia.tasks.caption.video.module.XlanVModule",
                  "init_args": {"stage": "scst", "dim": 16, "heads": 2, "stream_blocks": 1, "cross_blocks": 1,
                                "max_len": 8, "val_beam": 1, "test_beam": 1}},
        "data": {"class_path": "crossmedia.tasks.caption.video.data.VideoCaptionDataModule",
                 "init_args": {"root": str(folder), "min_count": 0, "batch_size": 3, "captions_per_image": 3,
                               "max_len": 8}},
        "trainer": {"max_steps": 1, "max_epochs": 1, "logger": False, "enable_checkpointing": False,
                    "limit_val_batches": 0, "enable_progress_bar": False, "enable_model_summary": False}}))
    assert main(["fit", "-c", str(config)]) in (0, None)
