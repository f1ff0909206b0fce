"""A user's own caption folder (issue 18): a Karpathy JSON of any name next to its images, read in
place under any dataset name, never written to; the default dataset name no longer generates the
built-in scenes into it."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from crossmedia.data.karpathy import CaptionFormatError, caption_folder_files
from crossmedia.tasks.caption.data import CaptionDataModule

WORDS = ["a red circle", "a blue square", "a green triangle", "two red circles", "a small blue square"]


def _snapshot(root):
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _user_folder(root, n=12, json_name="drawings_v2.json", under_images=True):
    """n drawings, 5 references each, 8/2/2 train/val/test, images under images/ (or next to the JSON)."""
    image_dir = root / "images" if under_images else root
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    entries = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(image_dir / f"d{i:03d}.png")
        sentences = [{"tokens": WORDS[(i + k) % 5].split(), "raw": WORDS[(i + k) % 5]} for k in range(5)]
        entries.append({"filename": f"d{i:03d}.png", "imgid": i,
                        "split": "train" if i < 8 else ("val" if i < 10 else "test"), "sentences": sentences})
    (root / json_name).write_text(json.dumps({"images": entries}))
    (root / "notes.txt").write_text("the user's own notes")
    return _snapshot(root)


@pytest.mark.parametrize("dataset", ["scenes", "mine"])
def test_a_user_folder_is_read_in_place_under_any_name_and_left_untouched(tmp_path, monkeypatch, dataset):
    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path / "home"))
    user = tmp_path / "my drawings"
    before = _user_folder(user)
    data = CaptionDataModule(dataset=dataset, root=str(user), batch_size=4, min_count=1, image_size=16)
    data.prepare_data()
    data.setup("fit")
    assert [len(data.split_records(s)) for s in ("train", "val", "test")] == [8, 2, 2]
    assert {"red", "circle", "square"} <= set(data.vocabulary.words)
    batch = next(iter(data.train_dataloader()))
    assert batch["images"].shape[1:] == (3, 16, 16)
    data.reward_scorer()  # the CIDEr-D document frequencies are cached under the home, not in the folder
    assert any((tmp_path / "home" / "cider-df").iterdir())
    assert _snapshot(user) == before, "the user's folder was changed"


def test_images_next_to_the_json_are_found_and_a_wrong_layout_names_where_it_looked(tmp_path):
    flat = tmp_path / "flat"
    _user_folder(flat, under_images=False, json_name="caps.json")
    json_path, image_root = caption_folder_files(flat)
    assert json_path.name == "caps.json" and image_root == flat
    (flat / "d000.png").unlink()
    with pytest.raises(FileNotFoundError, match="d000.png"):
        caption_folder_files(flat)
    two = tmp_path / "two"
    _user_folder(two, json_name="a.json")
    (two / "b.json").write_text((two / "a.json").read_text())
    with pytest.raises(CaptionFormatError, match="a.json, b.json"):
        caption_folder_files(two)
    empty = tmp_path / "none"
    empty.mkdir()
    (empty / "x.txt").write_text("not captions")
    with pytest.raises(FileNotFoundError, match="Karpathy split file"):
        caption_folder_files(empty)
