"""The ST-XlanV feature extractor: stream shapes, batched equals the clip-by-clip loop, mp4 decoding with
evenly spread frames, and the h5 / tags.json files written atomically, resumed and read back."""
import json

import numpy as np
import pytest
import torch

from crossmedia.core.media import write_mp4
from crossmedia.data.builtin.puppets import PUPPET_ACTIONS, PUPPET_COLOURS
from crossmedia.data.features import FeatureStore
from crossmedia.tasks.caption.video.features import (FILES, VideoFeatureExtractor, clip_by_clip_features,
                                                     extract_features, load_video_frames, sample_indices)
from crossmedia.tasks.caption.video.tags import ActionTagger, ContentTagger


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small models on a busy 2-core machine: one torch thread (conftest's ``one_thread``)."""
    yield


@pytest.fixture(scope="module")
def extractor():
    torch.manual_seed(0)
    return VideoFeatureExtractor("test_resnet", pretrained=False, content=ContentTagger(backbone="test_resnet"),
                                 action=ActionTagger(width=4, feature_dim=32), image_size=32, chunk=7,
                                 segment_chunk=2)


def _clips(n, t=16, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, t, size, size, 3), dtype=np.uint8)


def test_streams_have_one_row_per_frame_and_per_segment(extractor):
    out = extractor(_clips(3))
    assert out["appearance"].shape == (3, 16, extractor.appearance.num_features)
    assert out["motion"].shape == (3, 3, 32) and out["motion"].dtype == torch.float32
    assert len(out["tags"]) == 3
    for tag in out["tags"]:
        assert set(tag) == {"content", "content_prob", "action", "action_prob"}
        assert tag["content"] in PUPPET_COLOURS and tag["action"] in PUPPET_ACTIONS
        assert 0 < tag["content_prob"] <= 1 and 0 < tag["action_prob"] <= 1
    big = extractor(torch.rand(1, 8, 3, 48, 40))  # other sizes are resized to image_size first
    assert big["appearance"].shape[:2] == (1, 8) and big["motion"].shape[:2] == (1, 1)


def test_batched_extractor_equals_the_clip_by_clip_loop(extractor):
    clips = _clips(2, t=18)  # 18 frames: segments at 0, 4, 8, 10
    ours, loop = extractor(clips), clip_by_clip_features(extractor, clips)
    assert ours["motion"].shape[1] == 4
    assert torch.allclose(ours["appearance"], loop["appearance"], atol=1e-5)
    assert torch.allclose(ours["motion"], loop["motion"], atol=1e-5)
    assert [(t["content"], t["action"]) for t in ours["tags"]] == [(t["content"], t["action"]) for t in loop["tags"]]
    assert np.allclose([t["action_prob"] for t in ours["tags"]], [t["action_prob"] for t in loop["tags"]], atol=1e-5)
    with torch.no_grad():  # the tags are the tag networks' own clip predictions
        assert [t["action"] for t in ours["tags"]] == [t["action"] for t in extractor.action.tags(clips)]
        assert [t["content"] for t in ours["tags"]] == [t["content"] for t in extractor.content.tags(clips)]


def test_default_appearance_is_the_offline_imagenet_lite0():
    torch.manual_seed(0)
    extractor = VideoFeatureExtractor(content=ContentTagger(backbone="test_resnet"),
                                      action=ActionTagger(width=4, feature_dim=16))
    assert extractor(_clips(1, t=8))["appearance"].shape == (1, 8, 1280)


def test_sample_indices_spread_evenly():
    assert sample_indices(16, 16) == list(range(16))
    assert sample_indices(32, 16) == list(range(0, 32, 2))
    assert sample_indices(10, 4) == [0, 2, 5, 7]
    assert sample_indices(3, 6) == [0, 0, 1, 1, 2, 2]


def test_mp4_frames_are_decoded_whole_and_spread_evenly(tmp_path):
    frames = np.zeros((20, 64, 64, 3), dtype=np.uint8)
    frames[:] = (np.arange(20) * 12)[:, None, None, None]  # frame i is grey 12 i
    path = write_mp4(frames, tmp_path / "clip.mp4", fps=8)
    got = load_video_frames(path, 10, 32)
    assert got.shape == (10, 32, 32, 3) and got.dtype == np.uint8
    assert np.abs(got.mean(axis=(1, 2, 3)) - np.arange(0, 20, 2) * 12).max() < 4  # frames 0, 2, ..., 18
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        load_video_frames(tmp_path / "missing.mp4", 4, 32)


def test_files_round_trip_through_feature_store_and_tags_json(extractor, tmp_path):
    clips = _clips(3, t=16, seed=1)
    mp4 = write_mp4(clips[2], tmp_path / "video2.mp4", fps=8)
    videos = {"video0": clips[0], "video1": torch.from_numpy(clips[1]).permute(0, 3, 1, 2).float() / 255,
              "video2": mp4}
    out = extract_features(videos, tmp_path / "feats", extractor, batch_size=2, progress=False)
    assert sorted(p.name for p in (tmp_path / "feats").iterdir()) == sorted(FILES)  # no partial file left
    expected = extractor(clips[:2])
    appearance, motion = FeatureStore.open(out["appearance.h5"]), FeatureStore.open(out["motion.h5"])
    assert sorted(appearance.image_ids) == ["video0", "video1", "video2"]
    assert appearance.get("video0").dtype == np.float32 and motion.get("video2").shape == (3, 32)
    for i in range(2):
        assert np.allclose(appearance.get(f"video{i}"), expected["appearance"][i].numpy(), atol=1e-5)
        assert np.allclose(motion.get(f"video{i}"), expected["motion"][i].numpy(), atol=1e-5)
    tags = json.loads(out["tags.json"].read_text())
    assert list(tags) == ["video0", "video1", "video2"]
    assert tags["video1"]["action"] == expected["tags"][1]["action"]
    assert tags["video0"]["content_prob"] == pytest.approx(expected["tags"][0]["content_prob"], abs=1e-5)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        extract_features(videos, tmp_path / "feats", extractor, progress=False)


def test_an_interrupted_run_resumes_without_redoing_finished_videos(extractor, tmp_path):
    clips = _clips(4, t=8, seed=2)
    videos = {f"v{i}": clips[i] for i in range(3)}
    videos["v3"] = tmp_path / "not-there.mp4"
    with pytest.raises(FileNotFoundError, match="not-there.mp4"):
        extract_features(videos, tmp_path / "out", extractor, frames=8, batch_size=2, progress=False)
    assert not any((tmp_path / "out" / name).exists() for name in FILES)  # nothing final after a failure
    seen = []

    class Counting(torch.nn.Module):
        image_size = extractor.image_size

        def prepare(self, frames):
            return extractor.prepare(frames)

        def forward(self, frames):
            seen.append(len(frames))
            return extractor(frames)

    videos["v3"] = clips[3]
    out = extract_features(videos, tmp_path / "out", Counting(), frames=8, batch_size=2, progress=False)
    assert seen == [2]  # v0 and v1 were finished before the failure; only v2 and v3 are computed
    assert sorted(FeatureStore.open(out["motion.h5"]).image_ids) == ["v0", "v1", "v2", "v3"]
    assert list(json.loads(out["tags.json"].read_text())) == ["v0", "v1", "v2", "v3"]
    assert np.allclose(FeatureStore.open(out["appearance.h5"]).get("v3"),
                       extractor(clips[3:])["appearance"][0].numpy(), atol=1e-5)


def test_bad_video_ids_are_refused(extractor, tmp_path):
    with pytest.raises(ValueError, match="'a/b' cannot name an h5 dataset"):
        extract_features({"a/b": _clips(1)[0]}, tmp_path, extractor, progress=False)
    with pytest.raises(ValueError, match="'x' is given more than once"):
        extract_features([("x", _clips(1)[0]), ("x", _clips(1)[0])], tmp_path, extractor, progress=False)
