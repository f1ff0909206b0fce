"""Built-in hashing datasets: deterministic, protocol-sized, real digits, multi-label shapes, clips."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmedia.data.builtin.clips import CLIPS_CLASS_NAMES, draw_clip, make_clips
from crossmedia.data.builtin.digits import digit_pixels, make_digits
from crossmedia.data.builtin.shapes import SHAPES_CLASS_NAMES, make_shapes
from crossmedia.data.deephash import SPLITS, DeepHashListDataset, read_list

MAKERS = {"digits": make_digits, "shapes": make_shapes, "clips": make_clips}
COUNTS = {  # query, train, database
    "digits": (300, 1000, 1497),
    "shapes": (300, 1500, 2700),
    "clips": (100, 400, 700),
}


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Each built-in dataset generated once with seed 0 (shared by the tests of this module)."""
    return {name: make(tmp_path_factory.mktemp(name), seed=0, progress=False) for name, make in MAKERS.items()}


@pytest.mark.parametrize("name", list(MAKERS))
def test_same_seed_gives_identical_bytes(name, built, tmp_path):
    again = MAKERS[name](tmp_path / name, seed=0, progress=False)
    assert _tree_digest(again) == _tree_digest(built[name])


@pytest.mark.parametrize("name", list(MAKERS))
def test_split_counts_follow_the_protocol(name, built):
    root = built[name]
    lists = {split: read_list(root / f"{split}.txt", root=root) for split in SPLITS}
    query, train, database = (set(path for path, _ in lists[s]) for s in ("query", "train", "database"))
    assert (len(query), len(train), len(database)) == COUNTS[name]
    assert not query & database and train <= database
    meta = json.loads((root / "meta.json").read_text())
    assert meta["name"] == name and meta["seed"] == 0
    assert meta["counts"] == dict(zip(("query", "train", "database"), COUNTS[name]))
    assert meta["num_classes"] == len(meta["class_names"]) == lists["train"][0][1].size


def test_a_complete_copy_is_not_rewritten_but_another_seed_is(built, tmp_path):
    root = built["digits"]
    stamp = (root / "query.txt").stat().st_mtime_ns
    make_digits(root, seed=0, progress=False)
    assert (root / "query.txt").stat().st_mtime_ns == stamp
    other = make_digits(tmp_path / "digits", seed=1, progress=False)
    assert (other / "query.txt").read_text() != (root / "query.txt").read_text()
    assert json.loads((other / "meta.json").read_text())["seed"] == 1


def test_digits_are_the_real_sklearn_digits(built):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    root = built["digits"]
    for path, labels in read_list(root / "query.txt")[:20]:
        index = int(Path(path).stem)
        stored = np.asarray(Image.open(root / path))
        assert stored.shape == (8, 8) and stored.dtype == np.uint8
        np.testing.assert_array_equal(stored, digit_pixels(bunch.images[index]))
        assert labels.tolist() == np.eye(10, dtype=int)[bunch.target[index]].tolist()
    query_labels = np.stack([labels for _, labels in read_list(root / "query.txt")])
    assert query_labels.sum(axis=0).tolist() == [30] * 10  # 30 queries per class
    assert digit_pixels(np.array([0.0, 8.0, 16.0])).tolist() == [0, 128, 255]


def test_shapes_is_multi_label(built):
    labels = np.stack([labels for _, labels in read_list(built["shapes"] / "database.txt")])
    per_image = labels.sum(axis=1)
    assert labels.shape[1] == len(SHAPES_CLASS_NAMES) == 8
    assert per_image.min() == 1 and per_image.max() == 3
    assert (per_image > 1).mean() > 0.5
    assert (labels.sum(axis=0) > 200).all()  # every class is common
    x, y = DeepHashListDataset(root=built["shapes"], split="query")[0]
    assert x.shape == (3, 32, 32) and y.shape == (8,)


def test_clips_give_t_by_3_by_h_by_w(built):
    dataset = DeepHashListDataset(root=built["clips"], split="query", clip_length=8)
    x, y = dataset[0]
    assert x.shape == (8, 3, 32, 32) and y.shape == (len(CLIPS_CLASS_NAMES),) and y.sum() == 1
    assert DeepHashListDataset(root=built["clips"], split="query", clip_length=4)[0][0].shape == (4, 3, 32, 32)
    first = sorted((built["clips"] / dataset.items[0][0]).iterdir())
    assert [p.name for p in first] == [f"{t:03d}.png" for t in range(8)]


@pytest.mark.parametrize(("forward", "backward"), [("circle-right", "circle-left"), ("square-down", "square-up")])
def test_opposite_motions_differ_only_in_frame_order(forward, backward):
    ahead = draw_clip(CLIPS_CLASS_NAMES.index(forward), np.random.default_rng(7)).astype(int)
    behind = draw_clip(CLIPS_CLASS_NAMES.index(backward), np.random.default_rng(7)).astype(int)

    def changed(a, b):  # share of pixels that differ by more than the per-frame noise can explain
        return (np.abs(a - b).max(axis=-1) > 60).mean()

    assert changed(ahead, behind[::-1]) < 0.002  # the same frames, played backwards
    assert changed(ahead, behind) > 0.02  # but in a different order
