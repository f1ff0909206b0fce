"""MSR-VTT: the annotation reader (strict, errors naming file and field), video lookup, per-stream feature
files keyed by video id, and ``crossmedia data prepare msrvtt`` on a small download written here."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from crossmedia.data.builtin.puppet_captions import write_mp4
from crossmedia.data.cli import main
from crossmedia.data.features import FeatureFormatError, FeatureStore, MissingFeaturesError
from crossmedia.data.msrvtt import MSRVTTFormatError, msrvtt_folder, read_msrvtt, video_path
from crossmedia.data.registry import ensure, list_datasets, prepare
from crossmedia.data.video import read_video


@pytest.fixture(autouse=True)
def _private_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_DATA", str(tmp_path / "data"))


def _doc(splits: dict[int, str], captions: int = 2, first_sen: int = 0) -> dict:
    """An annotation object in MSR-VTT's layout: video<i> in split ``splits[i]``, ``captions`` sentences each."""
    videos = [{"category": i % 20, "url": f"https://www.youtube.com/watch?v={i}", "video_id": f"video{i}",
               "start time": 1.5, "end time": 11.5, "split": split, "id": i} for i, split in splits.items()]
    sentences = [{"caption": f"clip {i} caption {k}", "video_id": f"video{i}", "sen_id": first_sen + n}
                 for n, (i, k) in enumerate((i, k) for i in splits for k in range(captions))]
    return {"info": {"contributor": "test", "version": "1.0"}, "videos": videos, "sentences": sentences}


def _write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


# the reader


def test_reads_videos_splits_and_captions(tmp_path):
    path = _write(tmp_path / "videodatainfo.json", _doc({0: "train", 1: "validate", 2: "test"}, captions=3))
    records = read_msrvtt(path)
    assert [(r.video_id, r.split, r.category) for r in records] == [("video0", "train", 0), ("video1", "val", 1),
                                                                    ("video2", "test", 2)]
    assert records[1].captions == ("clip 1 caption 0", "clip 1 caption 1", "clip 1 caption 2")
    assert records[0].extra == {}
    assert read_msrvtt(tmp_path) == records  # the folder holding it


def _bad(doc: dict, change) -> dict:
    change(doc)
    return doc


@pytest.mark.parametrize(("doc", "expected"), [
    ('{"videos": [', "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (_bad(_doc({0: "train"}), lambda d: d.pop("videos")), "no 'videos' list"),
    (_bad(_doc({0: "train"}), lambda d: d.pop("sentences")), "no 'sentences' list"),
    (_bad(_doc({0: "train"}), lambda d: d.update(sentences={})), "'sentences' is dict, not a list"),
    (_bad(_doc({0: "train"}), lambda d: d["sentences"][1].update(video_id="video7")),
     r"sentences\[1\]: field 'video_id' is 'video7', a video the file's 'videos' list does not hold"),
    (_bad(_doc({0: "train", 1: "test"}), lambda d: d["sentences"].pop(2) and d["sentences"].pop(2)),
     r"1 video\(s\) in 'videos' have no sentence in 'sentences' \('video1'\)"),
    (_doc({0: "train", 1: "dev"}), r"videos\[1\] \('video1'\): field 'split' is 'dev'; expected 'train', 'validate'"),
    (_bad(_doc({0: "train"}), lambda d: d["sentences"][0].update(caption=5)),
     r"sentences\[0\] \('video0'\): field 'caption' is 5; expected a non-empty string"),
    (_bad(_doc({0: "train"}), lambda d: d["sentences"][0].update(caption="  ")), "field 'caption' is '  '"),
    (_bad(_doc({0: "train"}), lambda d: d["videos"][0].pop("video_id")), r"videos\[0\]: field 'video_id' is None"),
    (_bad(_doc({0: "train", 1: "train"}), lambda d: d["videos"][1].update(video_id="video0")),
     "field 'video_id' repeats an earlier video"),
    (_bad(_doc({0: "train"}), lambda d: d["videos"][0].update(category="music")), "field 'category' is 'music'"),
    (_bad(_doc({0: "train"}), lambda d: d.update(videos=[])), "'videos' is empty"),
])
def test_malformed_files_are_rejected_naming_file_and_field(tmp_path, doc, expected):
    path = _write(tmp_path / "train_val_videodatainfo.json", doc)
    with pytest.raises(MSRVTTFormatError, match=expected) as error:
        read_msrvtt(path)
    assert str(error.value).startswith(str(path))


def test_missing_files_say_what_was_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations.json, videodatainfo.json"):
        read_msrvtt(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_msrvtt(tmp_path / "nope.json")


def test_video_path_finds_each_suffix_and_names_what_it_searched(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos/video1.avi").write_bytes(b"x")
    write_mp4(tmp_path / "videos/video0.mp4", np.zeros((3, 16, 16, 3), np.uint8))
    assert video_path(tmp_path, "video0").name == "video0.mp4"
    assert video_path(tmp_path, "video1").name == "video1.avi"
    with pytest.raises(FileNotFoundError, match=r"video2\{\.mp4,\.avi,\.webm\}"):
        video_path(tmp_path, "video2")


# per-stream features keyed by video id (FeatureStore)


def test_feature_h5_keyed_by_video_id(tmp_path):
    rng = np.random.default_rng(0)
    streams = {"video0": rng.normal(size=(16, 8)), "video1": rng.normal(size=(16, 8))}
    with h5py.File(tmp_path / "appearance.h5", "w") as f:
        for key, value in streams.items():
            f[key] = value.astype(np.float32)
    store = FeatureStore.open(tmp_path / "appearance.h5")
    assert store.layout == "h5" and store.dim == 8 and len(store) == 2
    got = store.get("video1")
    assert got.shape == (16, 8) and got.dtype == np.float32 and np.allclose(got, streams["video1"])
    with pytest.raises(MissingFeaturesError, match=r"appearance.h5: 1 of 2 image ids have no features.*'video5'"):
        store.check(["video0", "video5"])
    # the reference code's layout: one video<N>.npy per video in a folder, (T, D) each
    (tmp_path / "motion").mkdir()
    np.save(tmp_path / "motion/video0.npy", np.ones((3, 4), np.float32))
    assert FeatureStore.open(tmp_path / "motion").get("video0").shape == (3, 4)


def test_malformed_feature_files_are_rejected_naming_them(tmp_path):
    with h5py.File(tmp_path / "motion.h5", "w") as f:
        f.create_group("video0")
    with pytest.raises(FeatureFormatError, match=r"motion.h5: member 'video0' is a group"):
        FeatureStore.open(tmp_path / "motion.h5")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(FeatureFormatError, match="broken.h5: cannot be opened as HDF5"):
        FeatureStore.open(tmp_path / "broken.h5")


# prepare msrvtt from a local download


def _download(root: Path) -> Path:
    """A tiny MSR-VTT release: train_val (train 0-2, validate 3), test (4-5), TrainValVideo/ and TestVideo/."""
    root.mkdir()
    _write(root / "train_val_videodatainfo.json", _doc({0: "train", 1: "train", 2: "train", 3: "validate"}))
    _write(root / "test_videodatainfo.json", _doc({4: "test", 5: "test"}, first_sen=8))
    for folder, ids in (("TrainValVideo", range(4)), ("TestVideo", range(4, 6))):
        (root / folder).mkdir()
        for i in ids:
            write_mp4(root / folder / f"video{i}.mp4", np.full((4, 16, 16, 3), 40 * i, np.uint8))
    return root


def test_prepare_merges_the_release_and_links_the_videos(tmp_path):
    source = _download(tmp_path / "MSRVTT")
    root = prepare("msrvtt", source=source, root=tmp_path / "data/msrvtt", progress=False)
    records = read_msrvtt(root)
    assert [r.video_id for r in records] == [f"video{i}" for i in range(6)]
    assert [r.split for r in records] == ["train", "train", "train", "val", "test", "test"]
    assert all(len(r.captions) == 2 for r in records)
    path = video_path(root, "video4")
    assert path.resolve() == (source / "TestVideo/video4.mp4").resolve()
    assert read_video(path, fps=8, max_short_side=16).frames.shape == (4, 16, 16, 3)
    meta = json.loads((root / "meta.json").read_text())
    assert meta["counts"] == {"train": 3, "val": 1, "test": 2} and meta["num_sentences"] == 12
    stamp = (root / "meta.json").stat().st_mtime_ns
    assert prepare("msrvtt", source=source, root=root, progress=False) == root  # kept
    assert (root / "meta.json").stat().st_mtime_ns == stamp
    assert ensure("msrvtt", root) == root and msrvtt_folder(root)
    assert list_datasets()["msrvtt"].kind == "caption" and not list_datasets()["msrvtt"].builtin


def test_prepare_from_the_command_line(tmp_path, capsys):
    source = _download(tmp_path / "MSRVTT")
    assert main(["prepare", "msrvtt", "--source", str(source)]) == 0
    assert len(read_msrvtt(tmp_path / "data/msrvtt")) == 6
    (source / "TestVideo/video5.mp4").unlink()
    code = main(["prepare", "msrvtt", "--source", str(source), "--root", str(tmp_path / "other")])
    err = capsys.readouterr().err
    assert code == 1 and "1 of 6 MSR-VTT videos have no file" in err and "video5" in err


@pytest.mark.parametrize(("damage", "error", "expected"), [
    (lambda s: (s / "test_videodatainfo.json").unlink(), FileNotFoundError,
     "has train_val_videodatainfo.json but not test_videodatainfo.json"),
    (lambda s: [(s / name).unlink() for name in ("train_val_videodatainfo.json", "test_videodatainfo.json")],
     FileNotFoundError, "holds no MSR-VTT annotation file"),
    (lambda s: (s / "TrainValVideo/video2.mp4").unlink(), FileNotFoundError, r"1 of 6 MSR-VTT videos.*video2"),
    (lambda s: [p.rename(s / p.name) for p in (s / "TestVideo").iterdir()] and (s / "TestVideo").rmdir()
     or [p.unlink() for p in (s / "TrainValVideo").iterdir()] and (s / "TrainValVideo").rmdir(),
     FileNotFoundError, "has no TrainValVideo/, TestVideo/ or videos/ folder"),
    (lambda s: _write(s / "test_videodatainfo.json", _doc({3: "test"})), MSRVTTFormatError,
     r"test_videodatainfo.json: video 'video3' is also listed in .*train_val_videodatainfo.json"),
    (lambda s: _write(s / "test_videodatainfo.json", '{"videos": []'), MSRVTTFormatError,
     "test_videodatainfo.json: not valid JSON"),
])
def test_prepare_names_what_is_missing_or_wrong(tmp_path, damage, error, expected):
    source = _download(tmp_path / "MSRVTT")
    damage(source)
    with pytest.raises(error, match=expected):
        prepare("msrvtt", source=source, root=tmp_path / "out", progress=False)
    assert not (tmp_path / "out/meta.json").exists()


def test_a_users_msrvtt_folder_is_used_under_any_name(tmp_path):
    _write(tmp_path / "annotations.json", _doc({0: "train"}))
    (tmp_path / "videos").mkdir()
    assert msrvtt_folder(tmp_path) and ensure("my-videos-captions", tmp_path) == tmp_path
    assert not msrvtt_folder(tmp_path / "videos")
