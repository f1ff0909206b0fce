"""The standard splits: 5 random 80/20 splits, three settings, published file formats."""
from __future__ import annotations

import json

import pytest

from crossmedia.data.eccv16 import make_key, parse_key
from crossmedia.data.splits import Split, SplitFileError, make_splits, read_splits, write_splits

SUMME = [make_key("eccv16_dataset_summe_google_pool5.h5", f"video_{i}") for i in range(1, 26)]
OTHERS = [make_key(f"eccv16_dataset_{d}_google_pool5", f"video_{i}") for d in ("tvsum", "ovp") for i in range(1, 6)]


def test_canonical_splits_are_5_random_80_20_splits():
    splits = make_splits(SUMME, seed=0)
    assert len(splits) == 5
    for split in splits:
        assert len(split.train_keys) == 20 and len(split.test_keys) == 5  # ceil(0.8 * 25) = 20 to train
        assert set(split.train_keys) | set(split.test_keys) == set(SUMME)
        assert not set(split.train_keys) & set(split.test_keys)
        assert list(split.test_keys) == sorted(split.test_keys, key=SUMME.index)  # keys keep their order
    assert len({split.test_keys for split in splits}) > 1
    assert make_splits(SUMME, seed=0) == splits
    assert make_splits(SUMME, seed=1) != splits
    assert len(make_splits([f"v{i}" for i in range(50)])[0].test_keys) == 10


def test_augmented_and_transfer_settings():
    canonical = make_splits(SUMME, seed=3)
    augmented = make_splits(SUMME, setting="augmented", other_keys=OTHERS, seed=3)
    transfer = make_splits(SUMME, setting="transfer", other_keys=OTHERS, seed=3)
    for c, a, t in zip(canonical, augmented, transfer):
        assert a.test_keys == c.test_keys and set(a.train_keys) == set(c.train_keys) | set(OTHERS)
        assert set(t.train_keys) == set(OTHERS) and set(t.test_keys) == set(SUMME)
    with pytest.raises(ValueError, match="other_keys"):
        make_splits(SUMME, setting="transfer")
    with pytest.raises(ValueError, match="unknown split setting"):
        make_splits(SUMME, setting="crossval")


@pytest.mark.parametrize("suffix", [".json", ".yml", ".yaml"])
def test_split_files_round_trip(tmp_path, suffix):
    splits = make_splits(SUMME, setting="augmented", other_keys=OTHERS, seed=0)
    path = write_splits(tmp_path / f"summe_aug{suffix}", splits)
    assert read_splits(path, known_keys=SUMME + OTHERS) == splits


def test_published_forms_are_read(tmp_path):
    assert parse_key("video_7") == (None, "video_7")
    assert parse_key("eccv16_dataset_summe_google_pool5/video_7") == ("eccv16_dataset_summe_google_pool5", "video_7")
    assert parse_key("../datasets/eccv16_dataset_summe_google_pool5.h5/video_7") == \
        ("eccv16_dataset_summe_google_pool5", "video_7")
    vsumm = tmp_path / "summe_splits.json"  # pytorch-vsumm-reinforce: bare keys, one dataset
    vsumm.write_text(json.dumps([{"train_keys": ["video_1", "video_2"], "test_keys": ["video_3"]}]))
    assert read_splits(vsumm, known_keys=SUMME) == [Split(("video_1", "video_2"), ("video_3",))]
    dsnet = tmp_path / "summe.yml"  # DSNet: h5 paths
    dsnet.write_text("- test_keys:\n  - ../datasets/eccv16_dataset_summe_google_pool5.h5/video_2\n"
                     "  train_keys:\n  - ../datasets/eccv16_dataset_summe_google_pool5.h5/video_1\n")
    assert read_splits(dsnet, known_keys=SUMME)[0].test_keys == \
        ("../datasets/eccv16_dataset_summe_google_pool5.h5/video_2",)


def test_bad_split_files_name_file_split_and_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"train_keys": ["video_1"], "test_keys": ["video_2"]}, {"train_keys": ["video_1"]}]))
    with pytest.raises(SplitFileError, match=r"bad\.json: split 1 field 'test_keys'"):
        read_splits(path)
    path.write_text(json.dumps([{"train_keys": ["video_1"], "test_keys": ["video_1"]}]))
    with pytest.raises(SplitFileError, match="both train_keys and test_keys"):
        read_splits(path)
    path.write_text(json.dumps([{"train_keys": ["video_1"], "test_keys": ["video_99"]}]))
    with pytest.raises(SplitFileError, match="split 0 field 'test_keys' names video 'video_99'"):
        read_splits(path, known_keys=SUMME)
    path.write_text("{not json")
    with pytest.raises(SplitFileError, match="not valid JSON"):
        read_splits(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_splits(tmp_path / "missing.json")
