"""A user's folder of COCO caption annotation files (issue 18): any file names, the split read from
each name, images found beside them, test drawn from val when there is no test file; read in place
by the caption and t2i data modules and by ``crossmedia data check``, and never written to."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from crossmedia.data.cli import main
from crossmedia.data.karpathy import (CaptionFormatError, coco_caption_files, ensure_caption_folder,
                                      find_coco_caption_files, read_caption_folder)
from crossmedia.tasks.caption.data import CaptionDataModule
from crossmedia.tasks.t2i.data import T2IDataModule

TRAIN, VAL = "drawings_train2024_final.json", "Holdout-VAL-captions.json"
SENTENCES = ["A red circle.", "A blue square!", "Two green triangles", "A small, red circle", "Big blue squares."]


def _png(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)


def _annotations(path, ids, captions_per_image=3, extra=()):
    """A COCO caption file: images[] (id, file_name), annotations[] (image_id, caption) interleaved, info/licenses."""
    images = [{"id": i, "file_name": f"COCO_{i:06d}.png", "width": 8, "height": 8} for i in ids]
    annotations = [{"id": 100 * i + k, "image_id": i, "caption": SENTENCES[(i + k) % 5]}
                   for k in range(captions_per_image) for i in ids]
    path.write_text(json.dumps({"info": {"year": 2024}, "images": images, "licenses": [],
                                "annotations": annotations + list(extra)}))


def _folder(root):
    """6 train images under train2024/ (the split word of the train file's name), 4 val under images/."""
    for i in range(6):
        _png(root / "train2024" / f"COCO_{i:06d}.png", i)
    for i in range(10, 14):
        _png(root / "images" / f"COCO_{i:06d}.png", i)
    _annotations(root / TRAIN, range(6))
    _annotations(root / VAL, range(10, 14), captions_per_image=2)
    (root / "README.txt").write_text("the user's notes")
    return root


def _snapshot(root):
    return {p.relative_to(root).as_posix(): (p.is_dir(), p.stat().st_mtime_ns, None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def user(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path / "home"))
    return _folder(tmp_path / "my coco")


def test_splits_come_from_the_names_images_from_beside_them_and_test_is_half_of_val(user):
    files = coco_caption_files(user)
    assert {split: (path.name, word) for split, (path, word) in files.items()} == {
        "train": (TRAIN, "train2024"), "val": (VAL, "val")}
    records = read_caption_folder(user)
    assert [r.image_id for r in records if r.split == "train"] == list(range(6))
    assert all(r.path == user / "train2024" / f"COCO_{r.image_id:06d}.png" for r in records[:6])
    val = [r for r in records if r.split == "val"]
    test = [r for r in records if r.split == "test"]
    assert len(val) == len(test) == 2  # no test file: a seeded half of the val file is test, the rest val
    assert sorted(r.image_id for r in val + test) == [10, 11, 12, 13]
    assert all(r.path.parent == user / "images" and r.path.is_file() for r in val + test)
    assert [r.split for r in read_caption_folder(user)] == [r.split for r in records]  # the same draw every time
    first = records[0]  # captions in annotation order, tokenised: lowercase, punctuation deleted
    assert first.raw == SENTENCES[:3]
    assert first.captions == [["a", "red", "circle"], ["a", "blue", "square"], ["two", "green", "triangles"]]
    assert all(len(r.captions) == 2 for r in val + test)

    _annotations(user / "coco-test.json", [12, 13])  # a test file of one's own: val is all of the val file
    records = read_caption_folder(user)
    assert [r.image_id for r in records if r.split == "val"] == [10, 11, 12, 13]
    assert [r.image_id for r in records if r.split == "test"] == [12, 13]


@pytest.mark.parametrize("dataset", ["scenes", "my-coco"])
def test_the_caption_data_module_reads_the_folder_in_place(user, dataset):
    before = _snapshot(user)
    assert ensure_caption_folder(user, dataset) == user
    data = CaptionDataModule(dataset=dataset, root=str(user), batch_size=3, eval_batch_size=2, min_count=1,
                             image_size=8, captions_per_image=2)
    data.prepare_data()
    data.setup("fit")
    assert [len(data.split_records(s)) for s in ("train", "val", "test")] == [6, 2, 2]
    assert {"red", "circle", "triangles"} <= set(data.vocabulary.words)
    batch = next(iter(data.train_dataloader()))
    assert batch["images"].shape == (3, 3, 8, 8) and batch["captions"].shape == (3, 2, 17)
    assert next(iter(data.test_dataloader()))["images"].shape == (2, 3, 8, 8)
    assert data.raw_references("test")[0] in ([SENTENCES[k % 5] for k in (i, i + 1)] for i in range(10, 14))
    assert data.scene_objects("val") is None
    assert _snapshot(user) == before, "the user's folder was changed"


def test_the_t2i_data_module_reads_the_folder_in_place(user):
    before = _snapshot(user)
    data = T2IDataModule(root=str(user), image_size=8, batch_size=4, eval_batch_size=2)
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["images"].shape == (4, 3, 8, 8) and len(batch["words"]) == 4
    assert batch["images"].min() >= -1 and batch["images"].max() <= 1
    test = next(iter(data.test_dataloader()))
    assert test["images"].shape == (2, 3, 8, 8) and all(isinstance(t, str) for t in test["texts"])
    assert _snapshot(user) == before, "the user's folder was changed"


def test_a_name_without_a_split_or_with_two_is_an_error_saying_how_to_name_files(user, capsys):
    (user / VAL).rename(user / "captions.json")
    with pytest.raises(CaptionFormatError, match=r"captions.json \(no split\) from the name; name each COCO caption "
                                                 r"file with its split as a word: captions_train2014.json"):
        read_caption_folder(user)
    assert main(["check", str(user)]) == 1
    assert "coco-captions: cannot be read: " in capsys.readouterr().out
    (user / "captions.json").rename(user / "train_val.json")
    with pytest.raises(CaptionFormatError, match=r"train_val.json \(train and val\)"):
        read_caption_folder(user)


def test_two_files_of_one_split_are_named(user):
    shutil.copy(user / TRAIN, user / "more-training.json")
    with pytest.raises(CaptionFormatError, match=rf"{TRAIN}, more-training.json all name split 'train'; keep one "
                                                 rf"train file"):
        read_caption_folder(user)
    (user / "more-training.json").unlink()
    (user / TRAIN).unlink()
    with pytest.raises(CaptionFormatError, match=rf"\({VAL} \(val\)\) need a train file and a val or test file"):
        read_caption_folder(user)


def test_a_missing_image_is_named(user):
    (user / "images" / "COCO_000012.png").unlink()  # not the file's first image: verifying the images finds it
    data = CaptionDataModule(root=str(user), min_count=1, image_size=8)
    with pytest.raises(FileNotFoundError, match=r"images/COCO_000012.png \(image_id 12\) does not exist"):
        data.setup("fit")
    (user / "train2024" / "COCO_000000.png").unlink()  # its first image: the folders looked in are named
    with pytest.raises(FileNotFoundError, match=rf"{TRAIN}: cannot find its first image \(COCO_000000.png\); looked "
                                                r"at .*my coco/COCO_000000.png, .*images/COCO_000000.png, "
                                                r".*train2024/COCO_000000.png"):
        read_caption_folder(user)


def test_an_annotation_of_an_unknown_image_names_the_file_and_entry(user):
    _annotations(user / VAL, range(10, 14), captions_per_image=2, extra=[{"id": 1, "image_id": 99, "caption": "x"}])
    with pytest.raises(CaptionFormatError, match=rf"{VAL}: annotations\[8\] names image_id 99, which is not in "
                                                 r"images\[\]"):
        read_caption_folder(user)
    _annotations(user / VAL, range(10, 14), extra=[{"id": 1, "image_id": 10}])
    with pytest.raises(CaptionFormatError, match=rf"{VAL}: annotations\[12\] has no 'caption' field"):
        read_caption_folder(user)


def test_data_check_reports_splits_vocabulary_and_missing_images(user, capsys):
    before = _snapshot(user)
    assert main(["check", str(user)]) == 0
    out = capsys.readouterr().out
    assert "coco-captions: train 6, val 2, test 2" in out
    assert f"files {TRAIN} (train), {VAL} (val)" in out
    assert f"test half of {VAL}'s images (seed 0; there is no test file)" in out
    # train: 6 images x 3 captions, sentence (i + k) % 5: sentences 0-2 are used 4 times, 3-4 three times, so
    # 'a' is seen 11 times, 'red', 'circle', 'blue' 7, the rest 3 or 4 (kept: more than 5) -> 4 words + <eos>, <unk>
    assert "captions 26" in out and "vocabulary (words seen more than 5 times in train, plus end and unknown) 6" in out
    assert "every file it names is there" in out
    assert _snapshot(user) == before
    (user / "train2024" / "COCO_000000.png").unlink()
    assert main(["check", str(user)]) == 1
    out = capsys.readouterr().out
    assert "missing 1 file(s)" in out and "train2024/COCO_000000.png" in out


def test_a_karpathy_file_beside_coco_files_is_the_one_read(user, capsys):
    entries = [{"filename": f"COCO_{i:06d}.png", "split": split, "sentences": [{"tokens": ["a", "dog"]}]}
               for i, split in ((0, "train"), (1, "val"), (2, "test"))]
    (user / "karpathy split.json").write_text(json.dumps({"images": entries}))
    shutil.copytree(user / "train2024", user / "images", dirs_exist_ok=True)
    assert [r.split for r in read_caption_folder(user)] == ["train", "val", "test"]
    assert main(["check", str(user)]) == 0
    out = capsys.readouterr().out
    assert "karpathy: train 1, val 1, test 1" in out
    assert f"not read (the Karpathy file is) {VAL}, {TRAIN}" in out


def test_detection_looks_at_both_ends_of_a_large_file_and_skips_other_coco_files(tmp_path):
    ids = range(4000)  # images[] far past the first 64 kB, annotations[] last, as in COCO's own files
    _annotations(tmp_path / "captions_train2014.json", ids, captions_per_image=1)
    assert (tmp_path / "captions_train2014.json").stat().st_size > 3 * (1 << 16)
    instances = {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "bbox": [0, 0, 1, 1]}]}
    (tmp_path / "instances_val2014.json").write_text(json.dumps(instances))
    (tmp_path / "meta.json").write_text(json.dumps({"images": [], "annotations": [{"image_id": 1, "caption": "x"}]}))
    assert find_coco_caption_files(tmp_path) == [tmp_path / "captions_train2014.json"]
