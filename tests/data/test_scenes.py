"""Built-in ``scenes``: deterministic, served by the Karpathy reader, 5 different true captions per image."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmedia.data.builtin import scenes
from crossmedia.data.builtin.scenes import (COLOUR_WORDS, SCENE_COLOURS, SHAPE_WORDS, SIZE_WORDS, Scene, SceneObject,
                                            caption_scene, draw_scene, make_scenes, sample_scene)
from crossmedia.data.karpathy import read_caption_folder, read_karpathy, tokenize, verify_images
from crossmedia.data.registry import ensure

NUM_IMAGES = 30
NUMBERS = {"one": 1, "two": 2, "three": 3}
GENERIC = {"shape", "shapes", "object", "objects", "figure", "figures"}


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return make_scenes(tmp_path_factory.mktemp("scenes"), seed=0, progress=False, num_images=NUM_IMAGES)


@pytest.fixture(scope="module")
def entries(built) -> list[dict]:
    return json.loads((built / "dataset_scenes.json").read_text())["images"]


def _objects(entry: dict) -> list[SceneObject]:
    return [SceneObject(**{**o, "box": tuple(o["box"])}) for o in entry["objects"]]


def _scenes_with_captions(entries: list[dict]) -> list[tuple[list[SceneObject], list[list[str]]]]:
    """The generated images plus 300 more scenes captioned in memory (no drawing)."""
    pairs = [(_objects(e), [s["tokens"] for s in e["sentences"]]) for e in entries]
    for index in range(300):
        rng = np.random.default_rng([7, index])
        scene = sample_scene(rng)
        pairs.append((list(scene.objects), [tokenize(c) for c in caption_scene(scene, rng)]))
    return pairs


# the folder


def test_same_seed_gives_identical_bytes(built, tmp_path):
    again = make_scenes(tmp_path / "again", seed=0, progress=False, num_images=NUM_IMAGES)
    assert _tree_digest(again) == _tree_digest(built)
    other = make_scenes(tmp_path / "other", seed=1, progress=False, num_images=NUM_IMAGES)
    assert (other / "images" / "00000.png").read_bytes() != (built / "images" / "00000.png").read_bytes()


def test_the_karpathy_reader_serves_the_folder(built):
    records = read_karpathy(built / "dataset_scenes.json")
    assert read_caption_folder(built) == records
    assert len(records) == NUM_IMAGES
    assert [r.split for r in records] == ["train"] * 26 + ["val"] * 2 + ["test"] * 2  # 1/12 each held out
    assert records[3].path == built / "images" / "00003.png" and records[3].image_id == 3
    verify_images(records, decode=True)
    with Image.open(records[0].path) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    meta = json.loads((built / "meta.json").read_text())
    assert meta["counts"] == {"train": 26, "val": 2, "test": 2} and meta["kind"] == "caption"


def test_every_image_has_5_different_captions(entries):
    for entry in entries:
        raws = [s["raw"] for s in entry["sentences"]]
        assert len(raws) == 5 and len(set(raws)) == 5
        assert all(s["tokens"] == tokenize(s["raw"]) for s in entry["sentences"])
        assert all(raw[0].isupper() and raw.endswith(".") for raw in raws)


def test_objects_are_drawn_where_the_ground_truth_says(built, entries):
    palette = np.array(list(SCENE_COLOURS.values()), dtype=float)  # (6, 3)
    cells = [0, 21, 43, 64]  # 3x3 grid boundaries in pixels; each box lies inside its cell
    for entry in entries:
        pixels = np.asarray(Image.open(built / "images" / entry["filename"]), dtype=float)  # (64, 64, 3)
        for obj in _objects(entry):
            x0, y0, x1, y1 = obj.box
            assert cells[obj.col] <= x0 < x1 < cells[obj.col + 1] and cells[obj.row] <= y0 < y1 < cells[obj.row + 1]
            centre = pixels[(y0 + y1) // 2, (x0 + x1) // 2]
            nearest = list(SCENE_COLOURS)[int(np.linalg.norm(palette - centre, axis=1).argmin())]
            assert nearest == obj.colour


# the captions are true


def test_colour_shape_and_size_words_belong_to_objects(entries):
    for objects, captions in _scenes_with_captions(entries):
        looks = {(o.colour, o.shape) for o in objects}
        for tokens in captions:
            assert {COLOUR_WORDS[t] for t in tokens if t in COLOUR_WORDS} <= {o.colour for o in objects}, tokens
            assert {SHAPE_WORDS[t] for t in tokens if t in SHAPE_WORDS} <= {o.shape for o in objects}, tokens
            assert {SIZE_WORDS[t] for t in tokens if t in SIZE_WORDS} <= {o.size for o in objects}, tokens
            for i in range(len(tokens) - 1):  # "[big] red circle" names one object
                colour, shape = COLOUR_WORDS.get(tokens[i]), SHAPE_WORDS.get(tokens[i + 1])
                if colour and shape:
                    assert (colour, shape) in looks, tokens
                    size = SIZE_WORDS.get(tokens[i - 1]) if i else None
                    assert size is None or (size, colour, shape) in {(o.size, o.colour, o.shape) for o in objects}


def _count_claims(tokens: list[str]):
    """(number, size, colour, shape) for "two blue squares", "a pair of small shapes", "three objects" ..."""
    for i, token in enumerate(tokens):
        if token == "pair" and tokens[i + 1:i + 2] == ["of"]:
            number, rest = 2, tokens[i + 2:]
        elif token in NUMBERS:
            number, rest = NUMBERS[token], tokens[i + 1:]
        else:
            continue
        size = SIZE_WORDS.get(rest[0]) if rest else None
        rest = rest[1:] if size else rest
        colour = COLOUR_WORDS.get(rest[0]) if rest else None
        rest = rest[1:] if colour else rest
        if rest and (rest[0] in SHAPE_WORDS or rest[0] in GENERIC):
            yield number, size, colour, SHAPE_WORDS.get(rest[0])


def test_counts_are_exact(entries):
    checked = 0
    for objects, captions in _scenes_with_captions(entries):
        for tokens in captions:
            for number, size, colour, shape in _count_claims(tokens):
                matching = [o for o in objects if size in (None, o.size) and colour in (None, o.colour)
                            and shape in (None, o.shape)]
                assert len(matching) == number, tokens
                checked += 1
    assert checked > 200


RELATIONS = {
    "left": lambda a, b: a.col < b.col, "right": lambda a, b: a.col > b.col,
    "above": lambda a, b: a.row < b.row, "over": lambda a, b: a.row < b.row,
    "below": lambda a, b: a.row > b.row, "under": lambda a, b: a.row > b.row, "beneath": lambda a, b: a.row > b.row,
    "next": lambda a, b: abs(a.row - b.row) + abs(a.col - b.col) == 1,
    "beside": lambda a, b: abs(a.row - b.row) + abs(a.col - b.col) == 1,
}


def _looks_in(tokens: list[str]) -> list[tuple[int, tuple[str, str]]]:
    return [(i, (COLOUR_WORDS[t], SHAPE_WORDS[tokens[i + 1]])) for i, t in enumerate(tokens[:-1])
            if t in COLOUR_WORDS and tokens[i + 1] in SHAPE_WORDS]


def test_relations_hold(entries):
    checked = 0
    for objects, captions in _scenes_with_captions(entries):
        for tokens in captions:
            words = [i for i, t in enumerate(tokens) if t in RELATIONS and (t not in ("left", "right", "next")
                                                                            or tokens[i + 1:i + 2] in (["of"], ["to"]))]
            if not words:
                continue
            looks = _looks_in(tokens)
            subject = [look for i, look in looks if i < words[0]][-1]  # "a red star [is] above ..."
            after = [look for i, look in looks if i > words[0]]
            target = after[0] if after else looks[0][1]  # "a blue box with a red star above it"
            for i in words:
                assert any(RELATIONS[tokens[i]](a, b) for a in objects for b in objects if a is not b
                           and (a.colour, a.shape) == subject and (b.colour, b.shape) == target), tokens
                checked += 1
    assert checked > 100


def test_positions_name_the_cell_of_a_single_object(entries):
    checked = 0
    for objects, captions in _scenes_with_captions(entries):
        if len(objects) != 1:
            continue
        (obj,) = objects
        for tokens in captions:
            assert ("left" in tokens) <= (obj.col == 0) and ("right" in tokens) <= (obj.col == 2), tokens
            assert ({"top", "upper"} & set(tokens) != set()) <= (obj.row == 0), tokens
            assert ({"bottom", "lower"} & set(tokens) != set()) <= (obj.row == 2), tokens
            assert ({"centre", "center", "middle"} & set(tokens) != set()) <= ((obj.row, obj.col) == (1, 1)), tokens
            checked += 1
    assert checked > 100


def test_a_hand_made_scene_gets_only_its_true_relations():
    red = SceneObject("circle", "red", "large", 0, 0, (2, 2, 18, 18))
    blue = SceneObject("square", "blue", "small", 0, 2, (50, 5, 59, 14))  # same row, two cells apart
    tokens = {t for seed in range(40) for c in caption_scene(Scene((red, blue), "grey"), np.random.default_rng(seed))
              for t in tokenize(c)}
    assert {"left", "right"} <= tokens
    assert not tokens & {"above", "over", "below", "under", "beneath", "next", "beside"}


def test_draw_scene_is_deterministic_given_the_rng():
    first, second = draw_scene(np.random.default_rng(3)), draw_scene(np.random.default_rng(3))
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1:] == second[1:] and first[0].shape == (64, 64, 3) and first[0].dtype == np.uint8


# regeneration through the registry


def test_ensure_regenerates_an_incomplete_or_outdated_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(scenes, "NUM_IMAGES", 12)  # the default size, made small for the test
    root = ensure("scenes", tmp_path / "scenes", progress=False)
    assert len(read_karpathy(root / "dataset_scenes.json")) == 12
    stamp = (root / "meta.json").stat().st_mtime_ns
    assert ensure("scenes", root, progress=False) == root and (root / "meta.json").stat().st_mtime_ns == stamp
    reference = _tree_digest(root)

    (root / "images" / "00005.png").unlink()  # incomplete
    ensure("scenes", root, progress=False)
    assert _tree_digest(root) == reference

    meta = json.loads((root / "meta.json").read_text())
    (root / "meta.json").write_text(json.dumps({**meta, "generator_version": 0}))  # outdated
    (root / "dataset_scenes.json").write_text("{}")
    ensure("scenes", root, progress=False)
    assert _tree_digest(root) == reference
