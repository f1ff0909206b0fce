"""The eccv16 h5 reader: round trip, and errors that name the file, the video and the field."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from crossmedia.data.eccv16 import Eccv16Dataset, Eccv16FormatError, VideoRecord, list_videos, read_video, write_video
from crossmedia.data.eccv16_releases import prepare_eccv16
from crossmedia.data.registry import ensure
from crossmedia.data.splits import Split, read_splits


def _record(key: str = "video_1", *, n_frames: int = 100, dim: int = 16, seed: int = 0) -> VideoRecord:
    rng = np.random.default_rng(seed)
    picks = np.arange(0, n_frames, 15)
    cps = np.array([[0, 29], [30, 69], [70, n_frames - 1]])
    return VideoRecord(key=key, features=rng.random((len(picks), dim), dtype=np.float32),
                       gtscore=rng.random(len(picks), dtype=np.float32),
                       gtsummary=(rng.random(len(picks)) < 0.3).astype(np.float32),
                       user_summary=(rng.random((4, n_frames)) < 0.2).astype(np.float32),
                       change_points=cps, n_frame_per_seg=cps[:, 1] - cps[:, 0] + 1, n_frames=n_frames,
                       picks=picks, video_name=f"name of {key}")


def _write(path, records, **replace):
    with h5py.File(path, "w") as handle:
        for record in records:
            write_video(handle, record.key, record)
        for field, value in replace.items():  # break one field of video_1 after writing
            del handle["video_1"][field]
            if value is not None:
                handle["video_1"][field] = value
    return path


def test_round_trip(tmp_path):
    records = [_record(f"video_{i}", seed=i, n_frames=90 + 7 * i) for i in (1, 2, 10)]
    path = _write(tmp_path / "eccv16_dataset_toy_google_pool5.h5", records)
    assert list_videos(path) == ["video_1", "video_2", "video_10"]  # natural order
    for record in records:
        back = read_video(path, record.key)
        assert back.n_frames == record.n_frames and back.n_steps == len(record.picks)
        assert back.video_name == record.video_name
        for field in ("features", "gtscore", "gtsummary", "user_summary", "change_points", "n_frame_per_seg", "picks"):
            np.testing.assert_array_equal(getattr(back, field), getattr(record, field))
    assert read_video(path, "video_1").features.shape == (7, 16)  # D is whatever the file holds


def test_missing_field_names_file_video_and_field(tmp_path):
    path = _write(tmp_path / "broken.h5", [_record()], user_summary=None)
    with pytest.raises(Eccv16FormatError, match=r"broken\.h5: video 'video_1': missing field 'user_summary'"):
        read_video(path, "video_1")
    assert read_video(path, "video_1", require_user_summary=False).user_summary is None
    with pytest.raises(KeyError, match=r"broken\.h5: no video 'video_9'"):
        read_video(path, "video_9")
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        read_video(tmp_path / "nowhere.h5", "video_1")


@pytest.mark.parametrize("field, value, message", [
    ("picks", np.arange(0, 90, 15), "field 'picks' has shape \\(6,\\) but 'features' has 7 steps"),
    ("user_summary", np.zeros((4, 99), np.float32),
     "'user_summary' has shape \\(4, 99\\), expected \\(n_users, n_frames=100\\)"),
    ("change_points", np.array([[0, 29], [30, 69], [70, 98]]), "does not cover frames 0..99"),
    ("change_points", np.array([[0, 29], [31, 69], [70, 99]]), "row 1 starts at 31 after an end at 29"),
    ("n_frame_per_seg", np.array([30, 40, 29]), "'n_frame_per_seg'\\[2\\] = 29 but change_points row 2 holds 30"),
    ("n_steps", np.int64(8), "'n_steps' = 8 but 'features' has 7 rows"),
    ("n_frames", np.float64(100.5), "'n_frames' must hold integers"),
])
def test_mismatched_lengths_are_named(tmp_path, field, value, message):
    path = _write(tmp_path / "bad.h5", [_record()], **{field: value})
    with pytest.raises(Eccv16FormatError, match=r"bad\.h5: video 'video_1': .*" + message):
        read_video(path, "video_1")


def test_non_strict_reading_accepts_untiled_shots(tmp_path):
    path = _write(tmp_path / "loose.h5", [_record()], change_points=np.array([[0, 29], [30, 69], [70, 98]]))
    assert read_video(path, "video_1", strict=False).change_points[-1, 1] == 98


def test_dataset_over_several_files(tmp_path):
    a = _write(tmp_path / "eccv16_dataset_a_google_pool5.h5", [_record("video_1"), _record("video_2", seed=2)])
    b = _write(tmp_path / "eccv16_dataset_b_google_pool5.h5", [_record("video_1", seed=3)])
    dataset = Eccv16Dataset([a, b], keys=["eccv16_dataset_b_google_pool5/video_1",
                                          "../x/eccv16_dataset_a_google_pool5.h5/video_2"])
    assert len(dataset) == 2
    item = dataset[1]
    assert item["key"] == "../x/eccv16_dataset_a_google_pool5.h5/video_2"
    assert item["features"].shape == (7, 16) and item["user_summary"].shape == (4, 100) and item["n_frames"] == 100
    assert len(Eccv16Dataset([a, b])) == 3
    with pytest.raises(ValueError, match="names no file"):
        Eccv16Dataset([a, b], keys=["video_1"])
    assert len(Eccv16Dataset(a, keys=["video_2"])) == 1


def test_prepare_checks_then_copies(tmp_path):
    source = tmp_path / "download"
    source.mkdir()
    _write(source / "eccv16_dataset_summe_google_pool5.h5", [_record("video_1"), _record("video_2", seed=2)])
    root = prepare_eccv16(tmp_path / "data" / "summe", source=source, name="summe", progress=False)
    copied = root / "eccv16_dataset_summe_google_pool5.h5"
    assert list_videos(copied) == ["video_1", "video_2"]
    splits = read_splits(root / "eccv16_dataset_summe_google_pool5_splits.json")
    assert len(splits) == 5 and all(len(s.test_keys) == 1 for s in splits)
    assert set(splits[0].test_keys) <= {"eccv16_dataset_summe_google_pool5/video_1",
                                        "eccv16_dataset_summe_google_pool5/video_2"}
    stamp = copied.stat().st_mtime_ns
    prepare_eccv16(root, source=source, name="summe", progress=False)  # complete: kept as it is
    assert copied.stat().st_mtime_ns == stamp
    _write(source / "eccv16_dataset_tvsum_google_pool5.h5", [_record()], gtscore=None)
    with pytest.raises(Eccv16FormatError, match="missing field 'gtscore'"):
        prepare_eccv16(tmp_path / "data" / "tvsum", source=source, name="tvsum", progress=False)
    assert not (tmp_path / "data" / "tvsum" / "eccv16_dataset_tvsum_google_pool5.h5").exists()
    published = tmp_path / "summe_splits.json"  # pytorch-vsumm-reinforce form: bare keys
    published.write_text(json.dumps([{"train_keys": ["video_2"], "test_keys": ["video_1"]}]))
    prepare_eccv16(root, source=source, name="summe", splits=published, progress=False)
    assert read_splits(root / "eccv16_dataset_summe_google_pool5_splits.json") == \
        [Split(("eccv16_dataset_summe_google_pool5/video_2",), ("eccv16_dataset_summe_google_pool5/video_1",))]
    with pytest.raises(FileNotFoundError, match="no eccv16_dataset_ovp_google_pool5.h5"):
        prepare_eccv16(tmp_path / "data" / "ovp", source=source, name="ovp", progress=False)


def test_a_prepared_release_is_ready_for_ensure(tmp_path):
    source = tmp_path / "download"
    source.mkdir()
    _write(source / "eccv16_dataset_summe_google_pool5.h5", [_record("video_1"), _record("video_2", seed=2)])
    root = prepare_eccv16(tmp_path / "data" / "summe", source=source, name="summe", progress=False)
    assert ensure("summe", root) == root
    (root / "eccv16_dataset_summe_google_pool5_splits.json").unlink()
    with pytest.raises(FileNotFoundError, match="crossmedia data prepare summe --source DIR"):
        ensure("summe", root)


# files h5py cannot open: one error naming the file, never a raw OSError


def _unreadable(tmp_path, kind):
    """A random-bytes file, or a valid eccv16 file cut to 60 % of its bytes, under the published name."""
    path = tmp_path / kind / "eccv16_dataset_tvsum_google_pool5.h5"
    path.parent.mkdir()
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        whole = tmp_path / "whole.h5"
        _write(whole, [_record("video_1"), _record("video_2", seed=2)])
        data = whole.read_bytes()
        path.write_bytes(data[:len(data) * 6 // 10])
    return path


@pytest.mark.parametrize("kind", ["random", "truncated"])
def test_unreadable_file_is_named_by_prepare_and_the_reader(tmp_path, kind):
    path = _unreadable(tmp_path, kind)
    message = rf"{path}: not a readable HDF5 file .*download it again"
    with pytest.raises(Eccv16FormatError, match=message):
        prepare_eccv16(tmp_path / "data" / "tvsum", source=path.parent, name="tvsum", progress=False)
    assert not (tmp_path / "data" / "tvsum" / "meta.json").exists()
    for read in (list_videos, lambda p: read_video(p, "video_1"), Eccv16Dataset):
        with pytest.raises(Eccv16FormatError, match=message):
            read(path)
