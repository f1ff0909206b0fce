"""``crossmedia data check DIR``: the format found, items per split, classes / vocabulary and missing
files of a user's folder, with nothing written; an unknown folder says what it holds and what is expected."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from crossmedia.data.check import check_folder
from crossmedia.data.cli import main


def _png(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)


def _tree(root):
    return sorted((p.relative_to(root).as_posix(), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_a_karpathy_folder_reports_splits_vocabulary_and_the_missing_image(tmp_path, capsys):
    root = tmp_path / "my captions"
    words = ["red", "circle", "blue", "square", "big"]
    entries, splits = [], ["train"] * 4 + ["val", "test", "test"]
    for i in range(7):
        if i != 6:  # the last image is missing
            _png(root / "images" / f"{i}.png", i)
        sentences = [{"tokens": ["a", words[i % 5], words[(i + k) % 5]], "raw": "x"} for k in range(5)]
        entries.append({"filename": f"{i}.png", "split": splits[i], "sentences": sentences})
    (root / "anything.json").write_text(json.dumps({"images": entries}))
    before = _tree(root)
    assert main(["check", str(root)]) == 1  # a missing file is not clean
    out = capsys.readouterr().out
    # 4 train images x 5 captions "a W_i W_(i+k)": 'a' 20 times; red, circle, blue, square 5 + 4 = 9 times each;
    # 'big' (never W_i for a train image) 4 times, below 5 -> 5 words, + <eos> and <unk>
    assert "karpathy: train 4, val 1, test 2" in out and "captions 35" in out
    assert "vocabulary (words seen more than 5 times in train, plus end and unknown) 7" in out
    assert "missing 1 file(s)" in out and "6.png" in out
    assert _tree(root) == before
    _png(root / "images" / "6.png", 6)
    assert main(["check", str(root)]) == 0 and "every file it names is there" in capsys.readouterr().out


def test_deephash_lists_and_an_image_folder_with_splits(tmp_path):
    lists = tmp_path / "lists"
    for split, n in (("train", 3), ("query", 2), ("database", 4)):
        lines = []
        for i in range(n):
            _png(lists / "img" / f"{split}{i}.png")
            lines.append(f"img/{split}{i}.png {' '.join('1' if c == i % 3 else '0' for c in range(3))}")
        (lists / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (lists / "img" / "query1.png").unlink()
    [report] = check_folder(lists)
    assert report.format == "deephash" and report.counts == {"train": 3, "query": 2, "database": 4}
    assert [p.name for p in report.missing] == ["query1.png"] and "3" in str(report.facts)

    folder = tmp_path / "pets"
    for split, n in (("train", 3), ("val", 1)):
        for cls in ("cat", "dog"):
            for i in range(n):
                _png(folder / split / cls / f"{i}.png")
    [report] = check_folder(folder)
    assert report.format == "imagefolder" and report.counts == {"train": 6, "val": 2} and report.ok
    assert "2 (cat, dog)" in str(report.facts)
    (folder / "val" / "bird").mkdir()
    _png(folder / "val" / "bird" / "0.png")
    [report] = check_folder(folder)
    assert not report.ok and "different class folders" in report.error


def test_a_folder_in_no_known_format_says_what_it_holds_and_what_is_expected(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "data.csv").write_text("a,b")
    assert main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no supported format found" in err and "1 .txt" in err and "1 .csv" in err
    assert "karpathy" in err and "deephash" in err and "imagefolder" in err and "posetrack" in err


def test_a_malformed_file_is_reported_with_its_name(tmp_path):
    (tmp_path / "train.txt").write_text("img/a.png 1 0\nimg/b.png one zero\n")
    (tmp_path / "query.txt").write_text("")
    (tmp_path / "database.txt").write_text("")
    [report] = check_folder(tmp_path)
    assert report.error and "train.txt" in report.error
    with pytest.raises(FileNotFoundError):
        check_folder(tmp_path / "nope")


def test_an_eccv16_file_is_read_video_by_video(tmp_path):
    import shutil

    from crossmedia.data.builtin.videosumm import make_videosumm

    made = make_videosumm(tmp_path / "made", variant="summe", seed=1, dim=16, num_videos=3, progress=False)
    (tmp_path / "mine").mkdir()
    shutil.copy(made, tmp_path / "mine" / "trip.h5")
    [report] = check_folder(tmp_path / "mine")
    assert report.format == "eccv16" and report.counts == {"trip.h5": 3} and report.ok
    (tmp_path / "mine" / "trip.h5").write_bytes(b"not hdf5")
    [report] = check_folder(tmp_path / "mine")
    assert not report.ok and "trip.h5" in report.error


def test_retrieval_feature_folders_are_reported_and_pickles_refused_without_unpickling(tmp_path, capsys):
    vse = tmp_path / "vse"
    vse.mkdir()
    for split, n in (("train", 3), ("dev", 2), ("test", 2)):
        np.save(vse / f"{split}_ims.npy", np.zeros((n, 7), np.float32))
        (vse / f"{split}_caps.txt").write_text("".join(f"caption {i} of image {i // 5}\n" for i in range(5 * n)))
    assert main(["check", str(vse)]) == 0
    out = capsys.readouterr().out
    assert "vse-precomp: train images 3, train captions 15, dev images 2, dev captions 10, test images 2" in out
    assert "feature width 7" in out

    acmr = tmp_path / "acmr"
    acmr.mkdir()
    for split, labels in (("train", [1, 2, 3, 1]), ("test", [2, 3])):
        n = len(labels)
        np.save(acmr / f"{split}_img_feats.npy", np.ones((n, 6), np.float32))
        np.save(acmr / f"{split}_txt_vecs.npy", np.ones((n, 4), np.float32))
        np.save(acmr / f"{split}_labels.npy", np.array(labels))
    [report] = check_folder(acmr)
    assert report.ok and report.counts == {"train pairs": 4, "test pairs": 2}
    assert report.facts == {"image features": 6, "text features": 4, "classes": 3}

    pickles = tmp_path / "pickles"
    pickles.mkdir()
    for split in ("train", "test"):
        for name in ("img_feats", "txt_vecs", "labels"):
            (pickles / f"{split}_{name}.pkl").write_bytes(b"not to be unpickled")
    [report] = check_folder(pickles)
    assert report.format == "acmr-features" and "never unpickled" in report.error and "PICKLE_CONVERSION" in report.error


def test_an_msrvtt_folder_reports_videos_per_split_and_the_missing_video(tmp_path):
    root = tmp_path / "my-videos"
    (root / "videos").mkdir(parents=True)
    splits = {0: "train", 1: "train", 2: "validate", 3: "test"}
    videos = [{"video_id": f"video{i}", "id": i, "split": split, "category": 0} for i, split in splits.items()]
    sentences = [{"video_id": f"video{i}", "caption": f"a person waves {k}", "sen_id": 2 * i + k}
                 for i in splits for k in range(2)]
    (root / "annotations.json").write_text(json.dumps({"videos": videos, "sentences": sentences}))
    for i in (0, 1, 2):
        (root / "videos" / f"video{i}.mp4").write_bytes(b"")  # named, not decoded, by data check
    before = _tree(root)
    [report] = check_folder(root)
    assert (report.format, report.counts, report.facts["captions"]) == ("msrvtt", {"train": 2, "val": 1, "test": 1}, 8)
    assert report.missing == [root / "videos" / "video3.mp4"] and not report.ok
    assert _tree(root) == before
    (root / "annotations.json").write_text(json.dumps({"videos": videos, "sentences": sentences[:-2]}))
    [report] = check_folder(root)
    assert report.format == "msrvtt" and "annotations.json" in report.error and "video3" in report.error
