"""Built-in ``scenes``: generated captioned images, written as a Karpathy split file.

Each 64x64 RGB image shows one to three objects on a white, grey or black background (plain, or
with light pixel noise). An object is one of 6 shapes (circle, square, triangle, star, cross,
diamond) in one of 6 colours, small (9-12 px) or large (16-20 px), placed in its own cell of a
3x3 grid; 30 % of the extra objects repeat the colour and shape of an earlier one, so counts
("two blue squares") are common. Shapes are drawn at 4x and downsampled, so edges are smooth.

Each image has 5 different captions from a small grammar with synonyms ("disc", "box", "plus
sign", "violet", "big"), several sentence forms, positions ("in the top left corner"),
relations ("to the left of", "above", "next to"), counts ("two red shapes") and captions that
mention only the salient (large) object. Every caption is true of its image: the ground truth of
each image is in the JSON under ``objects`` (shape, colour, size, grid row and column, pixel box)
and ``background``; :data:`COLOUR_WORDS`, :data:`SHAPE_WORDS` and :data:`SIZE_WORDS` map caption
words back to it.

6,000 images: 5,000 train, 500 val, 500 test (one twelfth each for val and test at other sizes).
Image ``i`` is drawn from ``default_rng([seed, i])``, so a smaller ``num_images`` gives the first
images of the full set (with val and test taken from its own end). The folder holds
``images/NNNNN.png``, ``dataset_scenes.json`` (read by :func:`crossmedia.data.karpathy.read_karpathy`)
and ``meta.json``.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from crossmedia.data.folder import DatasetFolder, count_entries
from crossmedia.data.karpathy import tokenize
from crossmedia.data.registry import register_dataset

__all__ = ["SCENE_SHAPES", "SCENE_COLOURS", "COLOUR_WORDS", "SHAPE_WORDS", "SIZE_WORDS", "SceneObject", "Scene",
           "sample_scene", "render_scene", "caption_scene", "draw_scene", "make_scenes", "scenes_complete",
           "scenes_ready"]

SCENE_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond")
SCENE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 45, 45), "green": (45, 170, 70), "blue": (50, 95, 230),
    "yellow": (240, 215, 40), "purple": (150, 65, 205), "orange": (245, 140, 30),
}
IMAGE_SIZE = 64
NUM_IMAGES = 6000
CAPTIONS_PER_IMAGE = 5
JSON_NAME = "dataset_scenes.json"
_GENERATOR_VERSION = 1
_T = TypeVar("_T")
_SUPERSAMPLE = 4
_EXTENTS = {"small": (9, 12), "large": (16, 20)}  # object side in pixels, inclusive range
_BACKGROUND_TONES = {"white": (225, 250), "grey": (105, 165), "black": (10, 45)}

# caption vocabulary: each meaning with its synonyms (repeats make the first word more likely)
_COLOUR_ADJECTIVES = {"red": ("red", "red", "scarlet"), "green": ("green",), "blue": ("blue",),
                      "yellow": ("yellow",), "purple": ("purple", "purple", "violet"), "orange": ("orange",)}
_SHAPE_NOUNS = {  # (singular, plural)
    "circle": (("circle", "circles"), ("circle", "circles"), ("disc", "discs"), ("dot", "dots")),
    "square": (("square", "squares"), ("square", "squares"), ("box", "boxes"), ("block", "blocks")),
    "triangle": (("triangle", "triangles"),),
    "star": (("star", "stars"),),
    "cross": (("cross", "crosses"), ("cross", "crosses"), ("plus sign", "plus signs")),
    "diamond": (("diamond", "diamonds"), ("diamond", "diamonds"), ("rhombus", "rhombuses")),
}
_SMALL_ONLY = {"dot"}  # nobody calls a large circle a dot
_SIZE_ADJECTIVES = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
_GENERIC_NOUNS = (("shape", "shapes"), ("shape", "shapes"), ("object", "objects"), ("figure", "figures"))
_BACKGROUND_WORDS = {"white": ("white", "light", "pale"), "grey": ("grey", "gray"), "black": ("black", "dark")}
_NUMBERS = {1: "one", 2: "two", 3: "three"}
_POSITIONS = {  # (row, column) -> phrases; "left"/"top"/"centre" ... only ever name the true cell
    (0, 0): ("in the top left corner", "in the upper left corner", "at the top left"),
    (0, 1): ("at the top", "at the top of the picture", "near the top edge"),
    (0, 2): ("in the top right corner", "in the upper right corner", "at the top right"),
    (1, 0): ("on the left", "on the left side", "at the left edge"),
    (1, 1): ("in the centre", "in the center", "in the middle"),
    (1, 2): ("on the right", "on the right side", "at the right edge"),
    (2, 0): ("in the bottom left corner", "in the lower left corner", "at the bottom left"),
    (2, 1): ("at the bottom", "at the bottom of the picture", "near the bottom edge"),
    (2, 2): ("in the bottom right corner", "in the lower right corner", "at the bottom right"),
}

COLOUR_WORDS: dict[str, str] = {word: colour for colour, words in _COLOUR_ADJECTIVES.items() for word in words}
SHAPE_WORDS: dict[str, str] = {word.split()[0]: shape for shape, nouns in _SHAPE_NOUNS.items()
                               for pair in nouns for word in pair}  # "plus sign(s)" -> "plus"
SIZE_WORDS: dict[str, str] = {word: size for size, words in _SIZE_ADJECTIVES.items() for word in words}


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: what it is, its 3x3 grid cell and its pixel box (x0, y0, x1, y1), inclusive."""

    shape: str
    colour: str
    size: str  # "small" | "large"
    row: int
    col: int
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Scene:
    """The ground truth of one image."""

    objects: tuple[SceneObject, ...]
    background: str  # "white" | "grey" | "black"


# helpers: drawing


def _draw_object(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float],
                 colour: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)
    elif shape == "star":  # 5 points, inner radius 0.45 of the outer one
        points = [(cx + (r if k % 2 == 0 else 0.45 * r) * math.cos(math.pi * (k / 5 - 0.5)),
                   cy + 0.1 * r + (r if k % 2 == 0 else 0.45 * r) * math.sin(math.pi * (k / 5 - 0.5)))
                  for k in range(10)]
        draw.polygon(points, fill=colour)
    elif shape == "cross":
        arm = (x1 - x0) / 3
        draw.rectangle((cx - arm / 2, y0, cx + arm / 2, y1), fill=colour)
        draw.rectangle((x0, cy - arm / 2, x1, cy + arm / 2), fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SCENE_SHAPES)}")


def _cell_span(index: int) -> tuple[int, int]:
    """First and last-plus-one pixel of grid row/column ``index`` (cells are 21 or 22 px)."""
    return round(index * IMAGE_SIZE / 3), round((index + 1) * IMAGE_SIZE / 3)


# helpers: captions


def _pick(rng: np.random.Generator, options: Sequence[_T]) -> _T:
    return options[int(rng.integers(len(options)))]


def _with_article(words: list[str]) -> list[str]:
    return ["an" if words[0][0] in "aeiou" else "a", *words]


def _noun(rng: np.random.Generator, obj: SceneObject, plural: bool = False) -> str:
    nouns = [n for n in _SHAPE_NOUNS[obj.shape] if obj.size == "small" or n[0] not in _SMALL_ONLY]
    return _pick(rng, nouns)[plural]


def _phrase(rng: np.random.Generator, obj: SceneObject, det: str = "a", size_p: float = 0.4) -> str:
    """``a big red circle``, ``the violet diamond``, ``orange plus sign`` (det "")."""
    words = [_pick(rng, _SIZE_ADJECTIVES[obj.size])] if rng.random() < size_p else []
    words += [_pick(rng, _COLOUR_ADJECTIVES[obj.colour]), _noun(rng, obj)]
    words = _with_article(words) if det == "a" else [det, *words] if det else words
    return " ".join(words)


def _group_phrase(rng: np.random.Generator, group: list[SceneObject]) -> str:
    """Objects of one colour and shape: ``a red star`` or ``two blue boxes`` / ``a pair of small blue boxes``."""
    if len(group) == 1:
        return _phrase(rng, group[0])
    number = "a pair of" if len(group) == 2 and rng.random() < 0.15 else _NUMBERS[len(group)]
    same_size = len({obj.size for obj in group}) == 1
    size = [_pick(rng, _SIZE_ADJECTIVES[group[0].size])] if same_size and rng.random() < 0.3 else []
    return " ".join([number, *size, _pick(rng, _COLOUR_ADJECTIVES[group[0].colour]), _noun(rng, group[0], True)])


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _background(rng: np.random.Generator, scene: Scene) -> str:
    """``white``, ``pale``, ``dark`` ...: a word for the background (never an object colour)."""
    return _pick(rng, _BACKGROUND_WORDS[scene.background])


def _groups(scene: Scene) -> list[list[SceneObject]]:
    groups: dict[tuple[str, str], list[SceneObject]] = {}
    for obj in scene.objects:
        groups.setdefault((obj.colour, obj.shape), []).append(obj)
    return list(groups.values())


def _salient(rng: np.random.Generator, scene: Scene) -> SceneObject:
    large = [obj for obj in scene.objects if obj.size == "large"]
    return _pick(rng, large) if large and rng.random() < 0.7 else _pick(rng, scene.objects)


def _relations(a: SceneObject, b: SceneObject) -> list[str]:
    """Every phrase that truly says where ``a`` is relative to ``b``."""
    horizontal = ["to the left of", "left of"] if a.col < b.col else ["to the right of", "right of"] if a.col > b.col \
        else []
    vertical = ["above", "over"] if a.row < b.row else ["below", "under", "beneath"] if a.row > b.row else []
    phrases = horizontal + vertical
    if horizontal and vertical:
        phrases.append(f"{vertical[0]} and {horizontal[0]}")
    if abs(a.row - b.row) + abs(a.col - b.col) == 1:
        phrases += ["next to", "beside"]
    return phrases


# helpers: one function per sentence form; each returns an unpunctuated sentence


def _one_object(rng: np.random.Generator, scene: Scene) -> str:
    obj = _salient(rng, scene)
    where = _pick(rng, _POSITIONS[obj.row, obj.col])
    thing = _phrase(rng, obj)
    background = _background(rng, scene)
    forms = [f"{thing} {where}", f"{where} there is {thing}", f"{where} is {thing}", f"{thing} is {where}",
             f"there is {thing} {where}", f"{thing} on a {background} background",
             f"{thing} {where} on a {background} background", f"a {background} background with {thing} {where}",
             f"{_pick(rng, ('a picture', 'an image', 'a drawing'))} of {thing}"]
    if len(scene.objects) == 1:
        bare = _phrase(rng, obj, det="")
        forms += [f"a single {bare} on a {background} background", f"just one {bare} {where}",
                  f"only one {_pick(rng, _GENERIC_NOUNS)[0]}, {thing}"]
    return _pick(rng, forms)


def _listing(rng: np.random.Generator, scene: Scene) -> str:
    groups = _groups(scene)
    groups = [groups[i] for i in rng.permutation(len(groups))]
    if len(groups) == 2 and all(len(g) == 1 for g in groups) and rng.random() < 0.3:
        things = _join([f"{_phrase(rng, g[0], size_p=0.0)} {_pick(rng, _POSITIONS[g[0].row, g[0].col])}"
                        for g in groups])
        return _pick(rng, ("", "there is ")) + things
    things = _join([_group_phrase(rng, g) for g in groups])
    there = "there are" if things.startswith(("two", "three")) else "there is"
    prefix = _pick(rng, ("", "", f"{there} ", "a picture of ", "an image with ", "a drawing of ", "a scene with "))
    suffix = f" on a {_background(rng, scene)} background" if len(groups) <= 2 and rng.random() < 0.4 else ""
    return prefix + things + suffix


def _relation(rng: np.random.Generator, scene: Scene) -> str:
    a, b = (scene.objects[i] for i in rng.choice(len(scene.objects), size=2, replace=False))
    relation = _pick(rng, _relations(a, b))
    unique = {(g[0].colour, g[0].shape): len(g) == 1 for g in _groups(scene)}
    same_look = (a.colour, a.shape) == (b.colour, b.shape)
    subject = _phrase(rng, a, det="the" if unique[a.colour, a.shape] else "a")
    target = _phrase(rng, b, det="another" if same_look else "the" if unique[b.colour, b.shape] else "a")
    forms = [f"{subject} {relation} {target}", f"{subject} is {relation} {target}",
             f"there is {_phrase(rng, a)} {relation} {target}"]
    if not same_look:  # "a blue box with a red star above it"
        forms.append(f"{_phrase(rng, b)} with {_phrase(rng, a)} {relation} it")
    return _pick(rng, forms)


def _counting(rng: np.random.Generator, scene: Scene) -> str:
    n = len(scene.objects)
    number = _NUMBERS[n]
    shapes = [obj.shape for obj in scene.objects]
    colours = [obj.colour for obj in scene.objects]
    generic, background = _pick(rng, _GENERIC_NOUNS)[1], _background(rng, scene)
    forms = [f"{number} {generic} on a {background} background", f"an image with {number} {generic}",
             f"{number} coloured {generic}"]
    if len(set(shapes)) == n:
        forms.append(f"{number} different shapes on a {background} background")
    if len(set(colours)) == n:
        forms.append(f"{number} {generic} of different colours")
    if len(set(colours)) == 1:
        forms.append(f"{number} {_pick(rng, _COLOUR_ADJECTIVES[colours[0]])} {generic}")
    for shape in dict.fromkeys(shapes):  # a shape seen twice or more, in several colours
        same = [obj for obj in scene.objects if obj.shape == shape]
        if len(same) >= 2 and len({obj.colour for obj in same}) == len(same):
            described = _join([f"one {_pick(rng, _COLOUR_ADJECTIVES[obj.colour])}" for obj in same])
            forms.append(f"{_NUMBERS[len(same)]} {_noun(rng, same[0], True)}, {described}")
    for colour in dict.fromkeys(colours):  # a colour seen twice or more, on different shapes
        same = [obj for obj in scene.objects if obj.colour == colour]
        if len(same) >= 2 and len({obj.shape for obj in same}) == len(same):
            described = _join([" ".join(_with_article([_noun(rng, obj)])) for obj in same])
            forms.append(f"{_NUMBERS[len(same)]} {_pick(rng, _COLOUR_ADJECTIVES[colour])} {generic}, {described}")
    return _pick(rng, forms)


def _salient_only(rng: np.random.Generator, scene: Scene) -> str:
    """Only the one large object is named; the small ones are counted."""
    large = next(obj for obj in scene.objects if obj.size == "large")
    small = len(scene.objects) - 1
    thing = _phrase(rng, large, size_p=1.0)
    others = f"{_NUMBERS[small]} {_pick(rng, _SIZE_ADJECTIVES['small'])} {_pick(rng, _GENERIC_NOUNS)[small > 1]}"
    if small == 1:
        return _pick(rng, [f"{thing} and {others}", f"{thing} with {others}"])
    return _pick(rng, [f"{thing} and {others}", f"{thing} with {others} around it",
                       f"{thing} stands out among {others}"])


def _sentence_forms(scene: Scene) -> list[Callable[[np.random.Generator, Scene], str]]:
    forms = [_one_object]
    if len(scene.objects) > 1:
        forms += [_listing, _relation, _counting]
        if sum(obj.size == "large" for obj in scene.objects) == 1:
            forms.append(_salient_only)
    return forms


# functions


def sample_scene(rng: np.random.Generator) -> Scene:
    """One to three objects in distinct grid cells; an extra object repeats an earlier one's look 30 % of the time."""
    count = 1 + int(rng.choice(3, p=[0.25, 0.4, 0.35]))
    objects: list[SceneObject] = []
    for cell in rng.choice(9, size=count, replace=False):
        if objects and rng.random() < 0.3:
            earlier = _pick(rng, objects)
            shape, colour = earlier.shape, earlier.colour
        else:
            shape, colour = _pick(rng, SCENE_SHAPES), _pick(rng, list(SCENE_COLOURS))
        size = _pick(rng, ("small", "large"))
        extent = int(rng.integers(_EXTENTS[size][0], _EXTENTS[size][1] + 1))
        row, col = divmod(int(cell), 3)
        (left, right), (top, bottom) = _cell_span(col), _cell_span(row)
        x0 = left + int(rng.integers(0, right - left - extent + 1))
        y0 = top + int(rng.integers(0, bottom - top - extent + 1))
        objects.append(SceneObject(shape, colour, size, row, col, (x0, y0, x0 + extent - 1, y0 + extent - 1)))
    return Scene(tuple(objects), _pick(rng, list(_BACKGROUND_TONES)))


def render_scene(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The image of ``scene``, uint8 (64, 64, 3); ``rng`` jitters the tones and adds noise to half the images."""
    low, high = _BACKGROUND_TONES[scene.background]
    tone = int(rng.integers(low, high + 1)) + rng.integers(-6, 7, size=3)
    big = IMAGE_SIZE * _SUPERSAMPLE
    image = Image.new("RGB", (big, big), tuple(int(v) for v in np.clip(tone, 0, 255)))
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        colour = np.clip(np.array(SCENE_COLOURS[obj.colour]) + rng.integers(-20, 21, size=3), 0, 255)
        x0, y0, x1, y1 = obj.box
        box = (x0 * _SUPERSAMPLE, y0 * _SUPERSAMPLE, (x1 + 1) * _SUPERSAMPLE - 1, (y1 + 1) * _SUPERSAMPLE - 1)
        _draw_object(draw, obj.shape, box, tuple(int(v) for v in colour))
    pixels = np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX))  # (64, 64, 3) anti-aliased
    if rng.random() < 0.5:  # lightly noisy background (and objects)
        noise = rng.normal(0.0, rng.uniform(2.0, 6.0), size=pixels.shape)
        pixels = np.clip(pixels + noise, 0, 255).round().astype(np.uint8)
    return pixels


def caption_scene(scene: Scene, rng: np.random.Generator, count: int = CAPTIONS_PER_IMAGE) -> list[str]:
    """``count`` different true captions of ``scene``, capitalised and ending with a full stop.

    The first captions use different sentence forms (one object, list, relation, count, salient
    object), in random order; the rest are drawn freely until ``count`` distinct sentences exist.
    """
    forms = _sentence_forms(scene)
    order = [forms[i] for i in rng.permutation(len(forms))]
    captions: dict[str, None] = {}  # ordered set
    for attempt in range(200):
        form = order[attempt] if attempt < len(order) else _pick(rng, forms)
        sentence = form(rng, scene)
        captions[sentence[0].upper() + sentence[1:] + "."] = None
        if len(captions) == count:
            return list(captions)
    raise RuntimeError(f"could not write {count} different captions for {scene}")


def draw_scene(rng: np.random.Generator) -> tuple[np.ndarray, Scene, list[str]]:
    """One image (uint8 (64, 64, 3)), its ground truth and its 5 raw captions, all drawn from ``rng``."""
    scene = sample_scene(rng)
    return render_scene(scene, rng), scene, caption_scene(scene, rng)


def _split_of(index: int, num_images: int) -> str:
    held_out = num_images // 12  # 500 val and 500 test of 6,000
    return "test" if index >= num_images - held_out else "val" if index >= num_images - 2 * held_out else "train"


def _files_complete(root: Path, meta: dict) -> bool:
    """The split file is there and ``images/`` holds the ``num_images`` PNGs ``meta`` records."""
    return (root / JSON_NAME).is_file() and \
        count_entries(root / "images", lambda entry: entry.name.endswith(".png")) == meta.get("num_images")


def _folder(root: str | Path, **settings: int) -> DatasetFolder:
    """``root`` as a ``scenes`` folder of this generator version (and of ``settings``: seed, num_images)."""
    return DatasetFolder(Path(root), {"name": "scenes", **settings, "generator_version": _GENERATOR_VERSION},
                         complete=_files_complete)


def scenes_complete(root: str | Path, *, seed: int = 0, num_images: int | None = None) -> bool:
    """True when ``root`` holds the finished dataset of this generator version, ``seed`` and size."""
    return _folder(root, seed=seed, num_images=NUM_IMAGES if num_images is None else num_images).ready()


def scenes_ready(root: str | Path) -> bool:
    """``root`` holds a finished ``scenes`` folder of this generator version, of any seed and size
    (a smaller copy made for tests or demos is kept as it is)."""
    return _folder(root).ready()


def make_scenes(root: str | Path, *, seed: int = 0, progress: bool = True, num_images: int | None = None) -> Path:
    """Write the ``scenes`` dataset into ``root`` and return ``root`` (kept when a complete copy exists).

    ``num_images`` defaults to 6,000; an interrupted, older-version or other-seed folder is rewritten.
    """
    root, num_images = Path(root), NUM_IMAGES if num_images is None else int(num_images)
    if num_images < 1:
        raise ValueError(f"num_images must be positive, got {num_images}")
    folder = _folder(root, seed=seed, num_images=num_images)
    if folder.ready():
        return root
    with folder.rewriting() as meta:
        images_dir = root / "images"
        images_dir.mkdir(parents=True, exist_ok=True)
        for stale in images_dir.glob("*.png"):  # a previous, larger run
            stale.unlink()
        entries = []
        for index in tqdm(range(num_images), desc="scenes: drawing PNGs", disable=not progress):
            pixels, scene, raw = draw_scene(np.random.default_rng([seed, index]))
            filename = f"{index:05d}.png"
            Image.fromarray(pixels).save(images_dir / filename)
            sentids = list(range(index * len(raw), (index + 1) * len(raw)))
            entries.append({
                "filepath": "images", "filename": filename, "imgid": index, "split": _split_of(index, num_images),
                "sentids": sentids,
                "sentences": [{"tokens": tokenize(r), "raw": r, "imgid": index, "sentid": s}
                              for r, s in zip(raw, sentids)],
                "objects": [asdict(obj) for obj in scene.objects], "background": scene.background,
            })
        partial = root / (JSON_NAME + ".partial")
        partial.write_text(json.dumps({"images": entries, "dataset": "scenes"}) + "\n", encoding="utf-8")
        os.replace(partial, root / JSON_NAME)
        counts = {split: sum(e["split"] == split for e in entries) for split in ("train", "val", "test")}
        meta.update({**folder.expected, "kind": "caption", "format": "karpathy", "file": JSON_NAME,
                     "image_root": ".", "counts": counts, "image_size": IMAGE_SIZE, "shapes": list(SCENE_SHAPES),
                     "colours": list(SCENE_COLOURS), "source": "generated by crossmedia.data.builtin.scenes"})
    return root


@register_dataset("scenes", kind="caption", builtin=True, ready=scenes_ready,
                  summary="6,000 generated 64x64 scenes of 1-3 shapes, 5 captions each, Karpathy JSON")
def _prepare_scenes(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    return make_scenes(root, seed=seed, progress=progress)
