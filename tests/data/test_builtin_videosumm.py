"""Built-in summe-builtin / tvsum-builtin: deterministic eccv16 files the protocol can tell apart."""
from __future__ import annotations

import math

import numpy as np
import pytest

from crossmedia.data.builtin.videosumm import make_videosumm, videosumm_files
from crossmedia.data.eccv16 import Eccv16Dataset, list_videos, read_video
from crossmedia.data.registry import list_datasets, prepare
from crossmedia.tasks.summarization.metrics import evaluate_summary, evaluate_videos
from crossmedia.data.splits import read_splits

REDUCTION = {"summe": "max", "tvsum": "avg"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("videosumm")
    return {variant: make_videosumm(root / variant, variant=variant, seed=0, progress=False, dim=256)
            for variant in ("summe", "tvsum")}


def _uniform_summary(n_frames: int) -> np.ndarray:
    """Uniform sampling: a 1 s keyshot every 1 / 0.15 s, 15 % of the video."""
    summary = np.zeros(n_frames)
    for start in range(0, n_frames, 200):
        summary[start:start + 30] = 1
    return summary


def test_counts_and_format(generated):
    for variant, count, users in (("summe", 25, (15, 18)), ("tvsum", 50, (20, 20))):
        records = Eccv16Dataset(generated[variant]).records  # every video passes the strict reader
        assert len(records) == count
        for r in records:
            assert 600 <= r.n_frames <= 2400 and r.features.shape == (math.ceil(r.n_frames / 15), 256)
            assert r.picks.tolist() == list(range(0, r.n_frames, 15))
            assert users[0] <= len(r.user_summary) <= users[1]
            assert 0 <= r.gtscore.min() and r.gtscore.max() <= 1
            assert set(np.unique(r.user_summary)) <= {0.0, 1.0}
            assert r.user_summary.sum(axis=1).max() <= 0.15 * r.n_frames + 1
        splits = read_splits(videosumm_files(generated[variant].parent, variant)[1],
                             known_keys=list_videos(generated[variant]))
        assert len(splits) == 5 and all(len(s.test_keys) == count // 5 for s in splits)


def test_generation_is_deterministic_and_skipped_when_complete(generated, tmp_path):
    again = make_videosumm(tmp_path, variant="summe", seed=0, progress=False, dim=256)
    for key in ("video_1", "video_17"):
        a, b = read_video(generated["summe"], key), read_video(again, key)
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.user_summary, b.user_summary)
        np.testing.assert_array_equal(a.change_points, b.change_points)
    stamp = again.stat().st_mtime_ns
    make_videosumm(tmp_path, variant="summe", seed=0, progress=False, dim=256)
    assert again.stat().st_mtime_ns == stamp
    other = make_videosumm(tmp_path / "seed1", variant="summe", seed=1, progress=False, dim=256, num_videos=2)
    assert not np.array_equal(read_video(other, "video_1").features[:5], read_video(again, "video_1").features[:5])


@pytest.mark.parametrize("variant", ["summe", "tvsum"])
def test_oracle_beats_random_beats_uniform_sampling(generated, variant):
    records = Eccv16Dataset(generated[variant]).records
    fields = ([r.change_points for r in records], [r.n_frames for r in records],
              [r.n_frame_per_seg for r in records], [r.picks for r in records], [r.user_summary for r in records])
    oracle = evaluate_videos([r.gtscore for r in records], *fields, reduction=REDUCTION[variant])[0].mean()
    rng = np.random.default_rng(0)
    random = evaluate_videos([rng.random(r.n_steps) for r in records], *fields, reduction=REDUCTION[variant])[0].mean()
    uniform = np.mean([evaluate_summary(_uniform_summary(r.n_frames), r.user_summary, reduction=REDUCTION[variant])[0]
                       for r in records])
    assert oracle > 0.65 and oracle > random + 0.25 and random > uniform


def test_registered_and_prepared_through_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_DATA", str(tmp_path / "data"))
    datasets = list_datasets()
    assert datasets["summe-builtin"].builtin and datasets["tvsum-builtin"].kind == "video"
    assert {"summe", "tvsum", "ovp", "youtube"} <= {name for name, info in datasets.items() if not info.builtin}
    root = prepare("summe-builtin", root=tmp_path / "summe-builtin", progress=False)
    assert list_videos(videosumm_files(root, "summe")[0])[:2] == ["video_1", "video_2"]
