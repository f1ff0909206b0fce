"""The DeepHash list format: round trips, errors that name file + line + field, image and clip items."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crossmedia.data.deephash import (DeepHashListDataset, DeepHashListError, read_list, stratified_split,
                                      write_list)


def _png(path: Path, value: int, size: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


def _write(tmp_path: Path, text: str, name: str = "train.txt") -> Path:
    for image in ("a.png", "b.png"):
        _png(tmp_path / image, 10)
    list_file = tmp_path / name
    list_file.write_text(text)
    return list_file


def test_write_then_read_round_trips(tmp_path):
    items = [("a.png", np.array([1, 0, 1], dtype=np.uint8)), ("b.png", np.array([0, 1, 0], dtype=np.uint8))]
    _write(tmp_path, "")
    write_list(tmp_path / "train.txt", items)
    assert (tmp_path / "train.txt").read_text() == "a.png 1 0 1\nb.png 0 1 0\n"
    back = read_list(tmp_path / "train.txt")
    assert [path for path, _ in back] == ["a.png", "b.png"]
    np.testing.assert_array_equal(np.stack([labels for _, labels in back]), [[1, 0, 1], [0, 1, 0]])


def test_blank_lines_are_ignored(tmp_path):
    list_file = _write(tmp_path, "a.png 1 0\n\n   \nb.png 0 1\n\n")
    assert [path for path, _ in read_list(list_file)] == ["a.png", "b.png"]


@pytest.mark.parametrize(("text", "kwargs", "fragments"), [
    ("a.png 0 1 0\nb.png 0 1\n", {}, ["line 2", "2 label columns, expected 3", "as on line 1"]),
    ("a.png 0 1 0\n", {"num_classes": 4}, ["line 1", "3 label columns, expected 4", "num_classes"]),
    ("a.png 1 0\nb.png 0 2\n", {}, ["line 2", "label column 2", "'2'", "0 or 1"]),
    ("a.png 1 -1\n", {}, ["line 1", "label column 2", "'-1'"]),
    ("a.png 1 0\n0 1 0\n", {}, ["line 2", "first column '0'", "not an image path"]),
    ("a.png 1 0\nb.png\n", {}, ["line 2", "'b.png' has no label columns"]),
    ("a.png 1 0\nb.png 0 0\n", {}, ["line 2", "no positive label", "allow_unlabeled=True"]),
    ("a.png 1 0\nmissing/c.png 0 1\n", {}, ["line 2", "'missing/c.png' does not exist"]),
    ("", {}, ["is empty"]),
    ("\n  \n", {}, ["is empty"]),
])
def test_malformed_lists_name_file_line_and_field(tmp_path, text, kwargs, fragments):
    list_file = _write(tmp_path, text)
    with pytest.raises(DeepHashListError) as caught:
        read_list(list_file, **kwargs)
    message = str(caught.value)
    assert str(list_file) in message
    for fragment in fragments:
        assert fragment in message


def test_unlabeled_items_are_allowed_when_asked(tmp_path):
    list_file = _write(tmp_path, "a.png 1 0\nb.png 0 0\n")
    assert read_list(list_file, allow_unlabeled=True)[1][1].sum() == 0


def test_root_resolves_paths_and_check_files_can_be_skipped(tmp_path):
    _png(tmp_path / "pics" / "x.png", 1)
    list_file = tmp_path / "lists" / "query.txt"
    list_file.parent.mkdir()
    list_file.write_text("x.png 1\n")
    with pytest.raises(DeepHashListError, match="does not exist"):
        read_list(list_file)
    assert read_list(list_file, root=tmp_path / "pics")[0][0] == "x.png"
    assert read_list(list_file, check_files=False)[0][0] == "x.png"


def test_write_list_refuses_what_it_could_not_read_back(tmp_path):
    with pytest.raises(DeepHashListError, match="whitespace"):
        write_list(tmp_path / "t.txt", [("my file.png", [1, 0])])
    with pytest.raises(DeepHashListError, match="0/1"):
        write_list(tmp_path / "t.txt", [("a.png", [2, 0])])
    with pytest.raises(DeepHashListError, match="empty"):
        write_list(tmp_path / "t.txt", [])
    assert not (tmp_path / "t.txt").exists()


def test_dataset_loads_images_as_rgb_with_float_labels(tmp_path):
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    Image.fromarray(gray).save(tmp_path / "g.png")  # mode L: loaded as RGB
    write_list(tmp_path / "query.txt", [("g.png", [0, 1, 1])])
    x, y = DeepHashListDataset(root=tmp_path, split="query")[0]
    assert x.shape == (3, 4, 4) and x.dtype == torch.float32
    torch.testing.assert_close(x[1], torch.from_numpy(gray).float() / 255)
    assert y.dtype == torch.float32 and y.tolist() == [0.0, 1.0, 1.0]


def test_dataset_refuses_unknown_split_and_missing_list(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'test'"):
        DeepHashListDataset(root=tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="database.txt"):
        DeepHashListDataset(root=tmp_path, split="database")


def _clip(folder: Path, num_frames: int) -> None:
    for t in range(num_frames):
        _png(folder / f"{t:03d}.png", value=10 * t, size=6)


def test_clip_folders_sample_frames_uniformly_in_order(tmp_path):
    _clip(tmp_path / "clips" / "c0", num_frames=5)
    write_list(tmp_path / "train.txt", [("clips/c0", [1, 0])])
    every_frame, _ = DeepHashListDataset(root=tmp_path, split="train")[0]
    assert every_frame.shape == (5, 3, 6, 6)
    three, y = DeepHashListDataset(root=tmp_path, split="train", clip_length=3)[0]
    assert three.shape == (3, 3, 6, 6) and y.tolist() == [1.0, 0.0]
    frame_values = (three[:, 0, 0, 0] * 255).round().tolist()
    assert frame_values == [0.0, 20.0, 40.0]  # frames 000, 002, 004


def test_clip_transform_sees_the_whole_clip(tmp_path):
    _clip(tmp_path / "c", num_frames=4)
    write_list(tmp_path / "train.txt", [("c", [1])])
    shapes = []
    dataset = DeepHashListDataset(root=tmp_path, split="train",
                                  transform=lambda clip: shapes.append(clip.shape) or clip)
    dataset[0]
    assert shapes == [(4, 3, 6, 6)]


def test_a_numeric_path_that_exists_is_a_path(tmp_path):
    _clip(tmp_path / "0001", num_frames=2)
    write_list(tmp_path / "train.txt", [("0001", [1, 0])])
    assert read_list(tmp_path / "train.txt")[0][0] == "0001"


def test_empty_clip_folder_is_named(tmp_path):
    (tmp_path / "clips" / "empty").mkdir(parents=True)
    write_list(tmp_path / "train.txt", [("clips/empty", [1])])
    with pytest.raises(DeepHashListError, match=r"clip folder .*empty has no frames"):
        DeepHashListDataset(root=tmp_path, split="train")[0]


def test_stratified_split_follows_the_protocol():
    labels = np.repeat(np.arange(3), 10)
    splits = stratified_split(labels, query_per_class=2, train_per_class=5, seed=0)
    assert [len(splits[s]) for s in ("query", "train", "database")] == [6, 15, 24]
    assert not set(splits["query"]) & set(splits["database"])
    assert set(splits["train"]) <= set(splits["database"])
    assert np.bincount(labels[splits["query"]]).tolist() == [2, 2, 2]
    again = stratified_split(labels, query_per_class=2, train_per_class=5, seed=0)
    assert all(np.array_equal(splits[s], again[s]) for s in splits)
    with pytest.raises(ValueError, match="class 0 has 10 items"):
        stratified_split(labels, query_per_class=6, train_per_class=5, seed=0)
