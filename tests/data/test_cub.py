"""Reed et al.'s text-to-image caption layout (CUB-200 / Oxford-102): the reader, its errors and the preparers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmedia.data.cub import read_cub_text
from crossmedia.data.karpathy import CaptionFormatError, read_caption_folder
from crossmedia.data.registry import ensure, list_datasets, prepare

CLASSES = {"001.Black_footed_Albatross": "train", "002.Laysan_Albatross": "test"}


@pytest.fixture(autouse=True)
def _private_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_DATA", str(tmp_path / "data"))


def _captions(cls: str, i: int, n: int = 10) -> list[str]:
    return [f"This bird{'' if j else ','} of class {cls[:3]} is number {i}, caption {j}." for j in range(n)]


def _write_cub(root: Path, *, flat: bool = False) -> Path:
    """2 classes x 3 images; per-class images/ (CUB) or a flat jpg/ (Oxford-102), with trailing newlines."""
    (root / "trainvalclasses.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "trainvalclasses.txt").write_text("001.Black_footed_Albatross\n")
    (root / "testclasses.txt").write_text("002.Laysan_Albatross\n\n")
    (root / "allclasses.txt").write_text("001.Black_footed_Albatross\n002.Laysan_Albatross\n")
    for c, cls in enumerate(CLASSES):
        for i in range(3):
            name = f"bird_{c}{i}"
            text = root / "text_c10" / cls / f"{name}.txt"
            text.parent.mkdir(parents=True, exist_ok=True)
            text.write_text("\n".join(_captions(cls, i)) + "\n\n")
            image = root / ("jpg" if flat else f"images/{cls}") / f"{name}.jpg"
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(image, format="JPEG")
    return root


def test_reader_returns_splits_paths_and_captions(tmp_path):
    root = _write_cub(tmp_path / "cub")
    records = read_cub_text(root)
    assert [r.split for r in records] == ["train"] * 3 + ["test"] * 3
    assert [r.image_id for r in records][:2] == ["001.Black_footed_Albatross/bird_00",
                                                 "001.Black_footed_Albatross/bird_01"]
    last = records[5]
    assert last.path == root / "images" / "002.Laysan_Albatross" / "bird_12.jpg"
    assert last.raw == _captions("002.Laysan_Albatross", 2)  # trailing blank lines are not captions
    assert last.captions[0] == ["this", "bird", "of", "class", "002", "is", "number", "2", "caption", "0"]
    assert all(len(r.captions) == 10 for r in records)


def test_flat_image_folder_and_replacement_characters(tmp_path):
    root = _write_cub(tmp_path / "flowers", flat=True)
    text = root / "text_c10" / "002.Laysan_Albatross" / "bird_10.txt"
    text.write_text("\n".join(["petals\ufffd\ufffdyellow"] + _captions("x", 0, 9)), encoding="utf-8")
    records = read_cub_text(root)
    assert records[3].path == root / "jpg" / "bird_10.jpg"
    assert records[3].captions[0] == ["petals", "yellow"] and records[3].raw[0] == "petals\ufffd\ufffdyellow"


def test_a_text_file_with_the_wrong_number_of_captions_is_named(tmp_path):
    root = _write_cub(tmp_path / "cub")
    bad = root / "text_c10" / "001.Black_footed_Albatross" / "bird_01.txt"
    bad.write_text("\n".join(_captions("x", 0, 9)) + "\n\n\n")
    with pytest.raises(CaptionFormatError, match=rf"{bad}: 9 non-empty lines, expected 10 captions"):
        read_cub_text(root)
    with pytest.raises(CaptionFormatError, match=r"bird_00\.txt: 10 non-empty lines, expected 9"):
        read_cub_text(root, captions_per_image=9)
    for text in (root / "text_c10").rglob("*.txt"):  # a dataset with 9 captions per image
        text.write_text("\n".join(_captions("x", 0, 9)))
    assert {len(r.captions) for r in read_cub_text(root, captions_per_image=9)} == {9}


def test_a_listed_class_without_a_folder_is_named(tmp_path):
    root = _write_cub(tmp_path / "cub")
    (root / "testclasses.txt").write_text("002.Laysan_Albatross\n003.Sooty_Albatross\n")
    (root / "allclasses.txt").unlink()
    with pytest.raises(CaptionFormatError, match=r"class '003\.Sooty_Albatross' of .*testclasses\.txt has no caption "
                                                 r"folder .*text_c10/003\.Sooty_Albatross"):
        read_cub_text(root)


def test_an_image_without_text_and_a_class_in_no_split_are_named(tmp_path):
    root = _write_cub(tmp_path / "cub")
    stray = root / "images" / "002.Laysan_Albatross" / "bird_19.jpg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(stray, format="JPEG")
    with pytest.raises(CaptionFormatError, match=rf"image {stray} has no text file bird_19\.txt"):
        read_cub_text(root)
    stray.unlink()
    (root / "text_c10" / "004.Groove_billed_Ani").mkdir()
    with pytest.raises(CaptionFormatError, match=r"004\.Groove_billed_Ani.*in neither trainvalclasses\.txt nor "
                                                 r"testclasses\.txt"):
        read_cub_text(root)


def test_a_text_without_image_and_an_inconsistent_allclasses_are_named(tmp_path):
    root = _write_cub(tmp_path / "cub")
    (root / "images" / "001.Black_footed_Albatross" / "bird_02.jpg").unlink()
    with pytest.raises(CaptionFormatError, match=r"bird_02\.txt describes image .*bird_02\.jpg, which does not exist"):
        read_cub_text(root)
    root = _write_cub(tmp_path / "cub2")
    (root / "allclasses.txt").write_text("001.Black_footed_Albatross\n")
    with pytest.raises(CaptionFormatError, match=r"allclasses\.txt lacks '002\.Laysan_Albatross'"):
        read_cub_text(root)


def test_cub_and_flowers_are_registered_real_caption_datasets():
    datasets = list_datasets()
    for name in ("cub-text", "flowers-text"):
        assert datasets[name].kind == "caption" and not datasets[name].builtin
        assert "text_c10" in datasets[name].source_layout


def test_prepare_writes_a_karpathy_caption_folder(tmp_path):
    source = _write_cub(tmp_path / "cvpr2016_cub")
    root = prepare("cub-text", source=source, progress=False)
    assert root == tmp_path / "data" / "cub-text"
    meta = json.loads((root / "meta.json").read_text())
    assert meta["format"] == "karpathy" and meta["counts"] == {"train": 3, "val": 0, "test": 3}
    assert meta["num_classes"] == 2
    records = read_caption_folder(root)
    assert [(r.image_id, r.split, r.captions) for r in records] == [
        (r.image_id, r.split, r.captions) for r in read_cub_text(source)]
    assert all(r.path.resolve() == s.path.resolve() for r, s in zip(records, read_cub_text(source)))
    assert ensure("cub-text") == root  # the prepared folder is ready
    stamp = (root / "meta.json").stat().st_mtime_ns
    assert prepare("cub-text", source=source, progress=False) == root  # kept as it is
    assert (root / "meta.json").stat().st_mtime_ns == stamp


def test_prepare_flowers_needs_the_jpg_folder(tmp_path):
    source = _write_cub(tmp_path / "cvpr2016_cub")  # images/, not jpg/
    with pytest.raises(FileNotFoundError, match=r"has no jpg; expected .*102flowers\.tgz"):
        prepare("flowers-text", source=source, progress=False)
    flowers = _write_cub(tmp_path / "cvpr2016_flowers", flat=True)
    root = prepare("flowers-text", source=flowers, progress=False)
    assert [r.path.name for r in read_caption_folder(root)][:2] == ["bird_00.jpg", "bird_01.jpg"]


def test_caption_modules_read_a_reed_folder_in_place_and_data_check_reports_it(tmp_path):
    """No prepare step: read_caption_folder reads the text_c10 layout as read_cub_text does, the
    caption data modules' ensure step takes the folder as it is, and nothing is written into it."""
    from crossmedia.data.check import check_folder
    from crossmedia.data.caption_folders import ensure_caption_folder, read_caption_folder

    root = _write_cub(tmp_path / "my-birds")
    before = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    assert ensure_caption_folder(root, "scenes") == root  # not the built-in scenes generated into it
    assert read_caption_folder(root) == read_cub_text(root)
    [report] = check_folder(root)
    assert (report.format, report.counts, report.facts["classes"], report.ok) == ("cub-text", {"train": 3, "val": 0,
                                                                                               "test": 3}, 2, True)
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == before
    (root / "text_c10" / "001.Black_footed_Albatross" / "bird_00.txt").write_text("one caption\n")
    [report] = check_folder(root)
    assert report.format == "cub-text" and "bird_00.txt" in report.error and "10" in report.error
