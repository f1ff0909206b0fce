"""Caption readers (Karpathy split files, COCO caption annotations), the vocabulary and the caption preparers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmedia.data.karpathy import (CaptionFormatError, CaptionedImage, Vocabulary, read_caption_folder,
                                      read_coco_captions, read_karpathy, tokenize, verify_images)
from crossmedia.data.registry import ensure, list_datasets, prepare


@pytest.fixture(autouse=True)
def _private_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_DATA", str(tmp_path / "data"))


def _sentences(*raws: str) -> list[dict]:
    return [{"tokens": tokenize(raw), "raw": raw} for raw in raws]


def _karpathy_images() -> list[dict]:
    """Three COCO-style entries: train, restval and test."""
    return [
        {"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "split": "train", "imgid": 0,
         "cocoid": 9, "sentids": [0, 1], "sentences": _sentences("A plate of food.", "Some broccoli on a plate.")},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "split": "restval", "imgid": 1,
         "cocoid": 42, "sentids": [2], "sentences": _sentences("A dog running on the beach.")},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000073.jpg", "split": "test", "imgid": 2,
         "cocoid": 73, "sentids": [3], "sentences": _sentences("Two men riding bikes.")},
    ]


def _write_karpathy(folder: Path, images: list[dict], name: str = "dataset_coco.json", with_images: bool = True,
                    image_dir: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    if with_images:
        for entry in images:
            image = folder / image_dir / entry.get("filepath", "") / entry["filename"]
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((6, 8, 3), 100, np.uint8)).save(image, format="JPEG")
    return path


# the Karpathy split file


def test_karpathy_file_is_read_with_splits_paths_and_tokens(tmp_path):
    path = _write_karpathy(tmp_path / "coco", _karpathy_images())
    records = read_karpathy(path)
    assert [r.split for r in records] == ["train", "train", "test"]  # restval is training data
    assert records[1].path == tmp_path / "coco" / "val2014" / "COCO_val2014_000000000042.jpg"
    assert records[0].captions == [["a", "plate", "of", "food"], ["some", "broccoli", "on", "a", "plate"]]
    assert records[0].raw == ["A plate of food.", "Some broccoli on a plate."]
    assert [r.image_id for r in records] == [9, 42, 73]
    assert read_karpathy(path, image_root=tmp_path / "elsewhere")[2].path == (
        tmp_path / "elsewhere" / "val2014" / "COCO_val2014_000000000073.jpg")


def test_flickr_entries_without_filepath_or_cocoid(tmp_path):
    images = [{"filename": "1000092795.jpg", "split": "val", "imgid": 7,
               "sentences": [{"tokens": ["two", "young", "guys"]}]}]  # no raw either
    record = read_karpathy(_write_karpathy(tmp_path, images, with_images=False))[0]
    assert record == CaptionedImage(path=tmp_path / "1000092795.jpg", split="val", captions=[["two", "young", "guys"]],
                                    raw=["two young guys"], image_id=7)


@pytest.mark.parametrize("field", ["filename", "split", "sentences", "tokens"])
def test_a_missing_field_names_file_index_and_field(tmp_path, field):
    images = _karpathy_images()
    if field == "tokens":
        del images[1]["sentences"][0]["tokens"]
    else:
        del images[1][field]
    path = _write_karpathy(tmp_path, images, with_images=False)
    with pytest.raises(CaptionFormatError) as caught:
        read_karpathy(path)
    message = str(caught.value)
    assert str(path) in message and "images[1]" in message and f"has no {field!r} field" in message
    assert "fix the entry" in message
    if field == "tokens":
        assert "sentences[0]" in message


def test_an_unknown_split_names_the_value_and_the_allowed_ones(tmp_path):
    images = _karpathy_images()
    images[2]["split"] = "dev"
    with pytest.raises(CaptionFormatError, match=r"images\[2\] .* has split 'dev'; allowed splits are "
                                                 r"train, restval, val, test"):
        read_karpathy(_write_karpathy(tmp_path, images, with_images=False))


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "dataset_coco.json"
    path.write_text('{"images": [{"filename": ')
    with pytest.raises(CaptionFormatError, match=r"dataset_coco.json: not valid JSON .*download, extract"):
        read_karpathy(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_karpathy(tmp_path / "nothing.json")


def test_verify_images_names_the_unreadable_and_the_missing_file(tmp_path):
    path = _write_karpathy(tmp_path, _karpathy_images())
    records = read_karpathy(path)
    verify_images(records, decode=True)  # all readable
    records[1].path.write_text("not an image")
    with pytest.raises(CaptionFormatError, match=r"COCO_val2014_000000000042.jpg \(image_id 42\) cannot be read"):
        verify_images(records)
    records[1].path.unlink()
    with pytest.raises(FileNotFoundError, match=r"COCO_val2014_000000000042.jpg \(image_id 42\) does not exist"):
        verify_images(records)


# COCO caption annotations


def test_coco_caption_file_is_tokenised_like_karpathy(tmp_path):
    data = {"images": [{"id": 5, "file_name": "a.jpg"}, {"id": 3, "file_name": "b.jpg"}],
            "annotations": [{"image_id": 3, "id": 1, "caption": "A man's T-shirt, on a BIKE."},
                            {"image_id": 5, "id": 2, "caption": "  Cats sleeping\n"},
                            {"image_id": 3, "id": 3, "caption": "A cyclist."}]}
    path = tmp_path / "captions_val2014.json"
    path.write_text(json.dumps(data))
    records = read_coco_captions(path, tmp_path / "val2014", split="val")
    assert [r.image_id for r in records] == [5, 3] and records[1].path == tmp_path / "val2014" / "b.jpg"
    assert records[1].captions == [["a", "mans", "tshirt", "on", "a", "bike"], ["a", "cyclist"]]
    assert records[1].raw[0] == "A man's T-shirt, on a BIKE." and records[0].split == "val"


def test_coco_caption_errors_name_the_entry(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}],
                                "annotations": [{"image_id": 1, "caption": "ok"}, {"image_id": 2, "caption": "x"}]}))
    with pytest.raises(CaptionFormatError, match=r"annotations\[1\] names image_id 2, which is not in images"):
        read_coco_captions(path, tmp_path, split="train")
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1}]}))
    with pytest.raises(CaptionFormatError, match=r"annotations\[0\] has no 'caption' field"):
        read_coco_captions(path, tmp_path, split="train")
    with pytest.raises(ValueError, match="unknown split 'restval'"):
        read_coco_captions(path, tmp_path, split="restval")


# vocabulary


def test_vocabulary_keeps_words_seen_more_than_min_count():
    corpus = [["dog"]] * 6 + [["cat"]] * 5 + [["a", "dog"]]
    vocab = Vocabulary.build(corpus, min_count=5)
    assert vocab.words == ("<eos>", "<unk>", "dog")  # cat seen exactly 5 times: dropped; a seen once
    assert len(vocab) == 3
    assert Vocabulary.build(corpus, min_count=4).words == ("<eos>", "<unk>", "dog", "cat")  # by frequency


def test_encode_maps_unknown_words_cuts_at_16_and_ends_with_0():
    vocab = Vocabulary.build([["a", "red", "circle"]] * 6)
    assert vocab.encode(["a", "red", "square"]) == [vocab.ids["a"], vocab.ids["red"], vocab.unk_id, 0]
    ids = vocab.encode(["a"] * 20)
    assert len(ids) == 17 and ids[:16] == [vocab.ids["a"]] * 16 and ids[16] == 0  # <eos> after the 16 words
    assert vocab.encode(["red"], max_len=4, pad=True) == [vocab.ids["red"], 0, 0, 0, 0]
    assert vocab.words[0] == "<eos>" and vocab.eos_id == 0 and vocab.words[vocab.unk_id] == "<unk>"


def test_decode_stops_at_0():
    vocab = Vocabulary.build([["a", "red", "circle"]] * 6)
    ids = vocab.encode(["a", "red", "blob", "circle"], pad=True)
    assert vocab.decode(ids) == "a red <unk> circle"
    assert vocab.decode([vocab.ids["red"], 0, vocab.ids["circle"]]) == "red"
    with pytest.raises(ValueError, match="id 99 is outside the vocabulary"):
        vocab.decode([99])


def test_vocabulary_round_trips_through_json(tmp_path):
    vocab = Vocabulary.build([["a", "red", "circle"]] * 6 + [["a", "disc"]] * 7, min_count=5)
    path = vocab.save(tmp_path / "vocab.json")
    assert json.loads(path.read_text())["words"] == list(vocab.words)
    loaded = Vocabulary.load(path)
    assert loaded.words == vocab.words and loaded.min_count == 5
    assert loaded.encode(["a", "disc"]) == vocab.encode(["a", "disc"])
    (tmp_path / "bad.json").write_text(json.dumps({"words": ["dog", "<eos>"]}))
    with pytest.raises(CaptionFormatError, match=r"bad.json: a vocabulary starts with '<eos>', '<unk>'"):
        Vocabulary.load(tmp_path / "bad.json")


# preparing a download


def test_caption_datasets_are_registered():
    datasets = list_datasets()
    assert datasets["scenes"].kind == "caption" and datasets["scenes"].builtin
    for name in ("coco-captions", "flickr30k"):
        assert datasets[name].kind == "caption" and not datasets[name].builtin and datasets[name].source_layout


def test_coco_captions_are_checked_and_linked(tmp_path):
    _write_karpathy(tmp_path / "download", _karpathy_images())
    root = prepare("coco-captions", source=tmp_path / "download", progress=False)
    assert root == tmp_path / "data" / "coco-captions" and (root / "images").is_symlink()
    records = read_caption_folder(root)
    assert [r.split for r in records] == ["train", "train", "test"]
    assert all(r.path.is_file() for r in records) and str(records[0].path).startswith(str(root / "images"))
    meta = json.loads((root / "meta.json").read_text())
    assert meta["counts"] == {"train": 2, "val": 0, "test": 1} and meta["kind"] == "caption"
    stamp = (root / "meta.json").stat().st_mtime_ns
    prepare("coco-captions", source=tmp_path / "download", progress=False)
    assert (root / "meta.json").stat().st_mtime_ns == stamp  # a complete copy is kept
    assert ensure("coco-captions") == root  # training finds the prepared folder


def test_flickr30k_images_are_found_in_their_usual_folder(tmp_path):
    images = [{"filename": f"{i}.jpg", "split": split, "imgid": i, "sentences": _sentences("A dog.")}
              for i, split in enumerate(["train", "val", "test"])]
    _write_karpathy(tmp_path / "f30k", images, name="dataset_flickr30k.json", image_dir="flickr30k-images")
    records = read_caption_folder(prepare("flickr30k", source=tmp_path / "f30k", progress=False))
    assert records[2].path.name == "2.jpg" and records[2].path.parent.name == "flickr30k-images"
    assert all(r.path.is_file() for r in records)


def test_preparing_names_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no dataset_coco.json; expected a folder with dataset_coco.json "
                                                r"\(Karpathy's caption_datasets.zip\) and the train2014/"):
        prepare("coco-captions", source=tmp_path / "empty")
    _write_karpathy(tmp_path / "no-images", _karpathy_images(), with_images=False)
    with pytest.raises(FileNotFoundError, match=r"cannot find the images of dataset_coco.json: looked for its first "
                                                r"image at .*train2014/COCO_train2014_000000000009.jpg"):
        prepare("coco-captions", source=tmp_path / "no-images")
    source = tmp_path / "one-missing"
    _write_karpathy(source, _karpathy_images())
    (source / "val2014" / "COCO_val2014_000000000073.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"COCO_val2014_000000000073.jpg \(image_id 73\) does not exist"):
        prepare("coco-captions", source=source, progress=False)
    assert not (tmp_path / "data" / "coco-captions" / "meta.json").exists()
