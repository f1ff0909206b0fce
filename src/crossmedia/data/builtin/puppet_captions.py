"""Built-in ``puppet-captions``: the ``puppets`` clips as H.264 videos with five human-like captions each.

The built-in data of video captioning (issue 15; Huang et al., "Semantic Tag Augmented XlanV Model for
Video Captioning", ACM MM 2021). The clips are those of :mod:`crossmedia.data.builtin.puppets`: the
same seed, clip indices, actions, identities and splits (clip ``i`` here is clip ``i`` there), drawn
with :func:`~crossmedia.data.builtin.puppets.draw_puppet_clip` and written as video files instead of
PNG frames. The annotations are in MSR-VTT's format, so :func:`crossmedia.data.msrvtt.read_msrvtt`
reads this folder as it reads the real dataset.

Layout::

    videos/video<i>.mp4     H.264 (libx264), yuv420p, 8 fps, 16 frames of 64 x 64 (2 s)
    annotations.json        MSR-VTT's videodatainfo layout (below)
    meta.json               written last (:class:`~crossmedia.data.folder.DatasetFolder`)

``annotations.json``: ``info``; ``videos``, one per clip: ``video_id`` (``video<i>``), ``id`` (i),
``split`` (MSR-VTT's names: ``train``, ``validate``, ``test``; the puppets split ``val`` is
``validate``), ``category`` (the action id), ``url`` (empty), ``start time`` 0.0, ``end time``
(frames / fps) and ``puppet``, the clip's truth (the ``videos`` entry of ``puppets`` without its
frame and mask folders: action, action_id, top/bottom colour, style and texture, hair, background,
cycles, phase, mirrored ...); ``sentences``: ``video_id``, ``caption``, ``sen_id`` (0, 1, ...),
:data:`CAPTIONS_PER_CLIP` per clip, lower case without a full stop as in MSR-VTT.

The captions (:func:`puppet_captions`) come from a grammar over the clip's truth, drawn with
``default_rng([seed, i, 2])``; every word is true of the clip:

* who: "a person", "someone", "a figure", "a puppet" ... (no gender: the figures have none), with the
  top ("a green t-shirt": colour, and sleeves: "long-sleeved shirt" or "t-shirt" / "short-sleeved
  shirt", or just "top" / "shirt"; sometimes "striped" or "polka-dot"), the bottom ("blue trousers"
  / "blue shorts"), both, or the hair ("long blonde hair", "brown hair in a bun", "a black buzz cut");
* the action, in varied forms ("waves", "claps their hands", "walks to the left", "jumps in the
  air", "squats down", "throws punches", "kicks out with the right leg", "bends sideways"), in the
  present simple or progressive ("is jumping", "there is ... jumping", "a video of ... jumping");
* sometimes the side, the number of events or the speed, and sometimes the background
  ("in front of a plain wall", "against a gradient background", "against a grainy background").

Left and right are always the person's own, as in COCO's keypoint names: the figure faces the
camera, so its left is on the image's right. An unmirrored clip waves the left hand, kicks with the
left leg out to its left and walks or runs to its left (the figure drifts towards the image's right);
a mirrored clip does all of it on the right. Punches alternate both sides, clapping, jumping and
squatting have no side, and bending is described without one.

Counts ("jumps twice", "claps three times") are the number of events whose peak lies in the clip
(jump: highest point; clap: hands together; squat: lowest point; kick: leg out; punch: an arm out,
either side), said only when no peak lies within 1/8 of a cycle of either end of the clip (a peak
there would make the count ambiguous); waving, walking, running and bending are not counted. Speed
words compare the clip's frequency with its action's range in ``puppets``: "slowly" in the lowest
third, "quickly" in the highest.

Default: 3,240 clips, 30 MB (36 MB on a 4 KiB-block file system; 3.6 MB of it ``annotations.json``: 16,200
captions, 124 distinct words, 13 words long on average); ~38 ms of CPU per clip (~20 ms of it encoding):
124 s of CPU, 5 min 21 s of wall time measured under ``nice`` on a 2-core machine busy with training runs.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crossmedia.data.builtin.puppets import _CYCLES, FRAMES, IMAGE_SIZE, NUM_CLIPS, PUPPET_ACTIONS, draw_puppet_clip
from crossmedia.data.folder import DatasetFolder, count_entries
from crossmedia.data.registry import register_dataset

__all__ = ["CAPTIONS_PER_CLIP", "FPS", "GENERATOR_VERSION", "JSON_NAME", "MSRVTT_SPLITS", "puppet_captions",
           "action_side", "event_count", "speed_word", "write_mp4", "make_puppet_captions",
           "puppet_captions_ready"]

CAPTIONS_PER_CLIP = 5
FPS = 8
GENERATOR_VERSION = 1
JSON_NAME = "annotations.json"
MSRVTT_SPLITS = {"train": "train", "val": "validate", "test": "test"}  # puppets' split -> MSR-VTT's name

# where the countable events peak, as (phase of the first peak, period) of the clip's phase φ_t
_EVENTS = {"jump": (math.pi / 2, 2 * math.pi), "clap": (math.pi, 2 * math.pi), "squat": (math.pi, 2 * math.pi),
           "kick": (math.pi / 2, 2 * math.pi), "punch": (math.pi / 2, math.pi)}
_MARGIN = math.pi / 4  # 1/8 cycle: a peak this close to an end of the clip makes a count ambiguous
_SIDED = ("wave", "walk", "run", "kick")
_TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times"}
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}

_PEOPLE = ("a person", "someone", "a figure", "a puppet", "a cartoon person", "an animated figure", "a character")
_TOP_NOUNS = {"long": ("long-sleeved shirt", "long-sleeved top", "shirt", "top"),
              "short": ("t-shirt", "short-sleeved shirt", "shirt", "top")}
_BOTTOM_NOUNS = {"trousers": ("trousers", "pants", "long trousers"), "shorts": ("shorts",)}
_TEXTURE_WORDS = {"stripes": ("striped",), "dots": ("polka-dot", "spotted"), "plain": ("plain",)}
_BACKGROUNDS = {"plain": ("in front of a plain wall", "against a plain background", "in front of a plain backdrop"),
                "gradient": ("against a gradient background", "in front of a shaded background",
                             "in front of a smoothly shaded wall"),
                "noise": ("against a grainy background", "in front of a speckled wall",
                          "against a noisy background")}
# who the caption is about: which attributes it names, with weights
_MENTIONS = (("top", 0.3), ("both", 0.2), ("bottom", 0.15), ("hair_top", 0.1), ("hair", 0.1), ("none", 0.15))


# helpers: facts from the clip's truth


def _phases(meta: dict) -> np.ndarray:
    """The phase φ_t of every frame, as :func:`~crossmedia.data.builtin.puppets.draw_puppet_clip` drew it."""
    n = int(meta["nframes"])
    return float(meta["phase"]) + 2 * math.pi * float(meta["cycles"]) * np.arange(n) / n


def _peaks(first: float, period: float, low: float, high: float) -> int:
    """How many phases ``first + k * period`` lie in ``[low, high]``."""
    return max(0, math.floor((high - first) / period) - math.ceil((low - first) / period) + 1)


def action_side(meta: dict) -> str | None:
    """``"left"`` or ``"right"`` (the person's own) for the sided actions (wave, walk, run, kick), else None."""
    if meta["action"] not in _SIDED:
        return None
    return "right" if meta["mirrored"] else "left"


def event_count(meta: dict) -> int | None:
    """The number of jumps, claps, squats, kicks or punches in the clip; None for other actions, and when a
    peak lies within 1/8 cycle of an end of the clip (the module docstring)."""
    if meta["action"] not in _EVENTS:
        return None
    first, period = _EVENTS[meta["action"]]
    ph = _phases(meta)
    low, high = float(ph[0]), float(ph[-1])
    if _peaks(first, period, low - _MARGIN, low + _MARGIN) or _peaks(first, period, high - _MARGIN, high + _MARGIN):
        return None
    return _peaks(first, period, low, high)


def speed_word(meta: dict) -> str | None:
    """``"slowly"`` / ``"quickly"`` when the clip's frequency is in the lowest / highest third of its action's range."""
    low, high = _CYCLES[meta["action"]]
    per16 = float(meta["cycles"]) * 16 / int(meta["nframes"])
    u = (per16 - low) / (high - low)
    return "slowly" if u < 1 / 3 else "quickly" if u > 2 / 3 else None


def _bend_sides(meta: dict) -> int:
    """How many sides a bending clip reaches clearly (the lean's sine beyond ±0.6 within the clip)."""
    s = np.sin(_phases(meta))
    return int(s.max() > 0.6) + int(s.min() < -0.6)


def _punch_sides(meta: dict) -> int:
    """How many arms (0-2) reach their punch inside the clip."""
    ph = _phases(meta)
    return sum(_peaks(first, 2 * math.pi, float(ph[0]), float(ph[-1])) > 0 for first in (math.pi / 2, 3 * math.pi / 2))


# helpers: the grammar


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _garment(rng: np.random.Generator, colour: str, texture: str, noun: str) -> str:
    """``"blue trousers"``, ``"striped red t-shirt"``, ``"red polka-dot top"``: the texture sometimes."""
    if rng.random() < (0.4 if texture != "plain" else 0.1):
        word = _pick(rng, _TEXTURE_WORDS[texture])
        return f"{word} {colour} {noun}" if texture == "plain" or rng.random() < 0.5 else f"{colour} {word} {noun}"
    return f"{colour} {noun}"


def _hair(rng: np.random.Generator, colour: str, style: str) -> str:
    if style == "bun":
        return _pick(rng, (f"{colour} hair in a bun", f"{colour} hair tied in a bun"))
    if style == "buzz":
        return _pick(rng, (_a(f"{colour} buzz cut"), f"very short {colour} hair", "a buzz cut"))
    return _pick(rng, (f"{style} {colour} hair", f"{colour} hair"))


def _subject(rng: np.random.Generator, meta: dict) -> str:
    names, weights = zip(*_MENTIONS)
    mention = names[int(rng.choice(len(names), p=np.array(weights) / sum(weights)))]
    person = _pick(rng, _PEOPLE)
    top = _a(_garment(rng, meta["top_colour"], meta["top_texture"], _pick(rng, _TOP_NOUNS[meta["top_style"]])))
    bottom = _garment(rng, meta["bottom_colour"], meta["bottom_texture"],
                      _pick(rng, _BOTTOM_NOUNS[meta["bottom_style"]]))
    hair = _hair(rng, meta["hair_colour"], meta["hair_style"])
    wearing = _pick(rng, ("in", "wearing", "dressed in"))
    if mention == "top":
        return f"{person} {wearing} {top}"
    if mention == "bottom":
        return f"{person} {wearing} {bottom}"
    if mention == "both":
        return f"{person} {wearing} {top} {_pick(rng, ('and', 'with'))} {bottom}"
    if mention == "hair":
        return f"{person} with {hair}"
    if mention == "hair_top":
        return _pick(rng, (f"{person} with {hair} and {top}", f"{person} with {hair} {wearing} {top}"))
    return person


def _action_phrases(meta: dict, side: str | None, count: int | None) -> tuple[list, list, list]:
    """(plain, sided, counted) phrases of the clip's action, each a (present simple, progressive) pair."""
    action = meta["action"]
    if action == "wave":
        plain = [("waves", "waving"), ("waves a hand", "waving a hand"), ("raises a hand and waves",
                                                                          "raising a hand and waving")]
        sided = [(f"waves their {side} hand", f"waving their {side} hand"),
                 (f"waves with the {side} hand", f"waving with the {side} hand"),
                 (f"raises the {side} arm and waves", f"raising the {side} arm and waving")]
        return plain, sided, []
    if action == "clap":
        plain = [("claps", "clapping"), ("claps their hands", "clapping their hands"),
                 ("claps hands together", "clapping hands together")]
        counted = [(f"claps {_TIMES[count]}", f"clapping {_TIMES[count]}"),
                   (f"claps their hands {_TIMES[count]}", f"clapping their hands {_TIMES[count]}")] if count else []
        return plain, [], counted
    if action in ("walk", "run"):
        verb, ing = ("walks", "walking") if action == "walk" else ("runs", "running")
        plain = [(verb, ing), (f"{verb} sideways", f"{ing} sideways")]
        if action == "walk":
            plain.append(("steps sideways", "stepping sideways"))
        sided = [(f"{verb} to the {side}", f"{ing} to the {side}"),
                 (f"{verb} to their {side}", f"{ing} to their {side}"),
                 (f"{verb} sideways to the {side}", f"{ing} sideways to the {side}")]
        return plain, sided, []
    if action == "jump":
        plain = [("jumps", "jumping"), ("jumps up", "jumping up"), ("jumps in the air", "jumping in the air"),
                 ("jumps with the arms up", "jumping with the arms up")]
        counted = [(f"jumps {_TIMES[count]}", f"jumping {_TIMES[count]}"),
                   (f"jumps in the air {_TIMES[count]}", f"jumping in the air {_TIMES[count]}")] if count else []
        return plain, [], counted
    if action == "squat":
        plain = [("squats", "squatting"), ("squats down", "squatting down"),
                 ("squats with the arms out", "squatting with the arms out")]
        counted = [(f"squats {_TIMES[count]}", f"squatting {_TIMES[count]}")] if count else []
        if count == 1:
            counted.append(("does a squat", "doing a squat"))
        return plain, [], counted
    if action == "punch":
        plain = [("punches", "punching"), ("throws punches", "throwing punches"),
                 ("punches the air", "punching the air"),
                 ("punches out to the sides", "punching out to the sides")]
        if _punch_sides(meta) == 2:
            plain.append(("punches with both fists", "punching with both fists"))
        counted = []
        if count:
            counted = [(f"punches {_TIMES[count]}", f"punching {_TIMES[count]}")]
            counted.append(("throws a punch", "throwing a punch") if count == 1 else
                           (f"throws {_NUMBERS[count]} punches", f"throwing {_NUMBERS[count]} punches"))
        return plain, [], counted
    if action == "kick":
        plain = [("kicks", "kicking"), ("kicks out to the side", "kicking out to the side"),
                 ("does a side kick", "doing a side kick")]
        sided = [(f"kicks to the {side}", f"kicking to the {side}"),
                 (f"kicks to their {side}", f"kicking to their {side}"),
                 (f"kicks out with the {side} leg", f"kicking out with the {side} leg"),
                 (f"kicks with the {side} leg", f"kicking with the {side} leg")]
        counted = [(f"kicks {_TIMES[count]}", f"kicking {_TIMES[count]}")] if count else []
        return plain, sided, counted
    # bend (the actions are checked by puppet_captions)
    plain = [("bends to the side", "bending to the side"), ("bends sideways", "bending sideways"),
             ("leans to the side", "leaning to the side"),
             ("bends sideways with an arm over the head", "bending sideways with an arm over the head")]
    sides = _bend_sides(meta)
    if sides == 2:
        plain.append(("bends from side to side", "bending from side to side"))
    elif sides == 1:
        plain.append(("bends over to one side", "bending over to one side"))
    return plain, [], []


def _caption(rng: np.random.Generator, meta: dict, side: str | None, count: int | None, speed: str | None) -> str:
    plain, sided, counted = _action_phrases(meta, side, count)
    pool = sided if sided and rng.random() < 0.6 else plain
    if counted and rng.random() < 0.4:
        pool = counted
    simple, progressive = pool[int(rng.integers(len(pool)))]
    if speed is not None and pool is not counted and rng.random() < 0.35:
        if rng.random() < 0.5:
            simple, progressive = f"{simple} {speed}", f"{progressive} {speed}"
        else:
            simple, progressive = f"{speed} {simple}", f"{speed} {progressive}"
    subject = _subject(rng, meta)
    form = 0.0 if pool is counted else rng.random()  # "kicks once", not "is kicking once"
    if form < 0.5:
        sentence = f"{subject} {simple}"
    elif form < 0.75:
        sentence = f"{subject} is {progressive}"
    elif form < 0.88:
        sentence = f"there is {subject} {progressive}"
    else:
        sentence = f"a video of {subject} {progressive}"
    if rng.random() < 0.25:
        sentence += " " + _pick(rng, _BACKGROUNDS[meta["background"]])
    return sentence


# functions


def puppet_captions(meta: dict, rng: np.random.Generator, n: int = CAPTIONS_PER_CLIP) -> list[str]:
    """``n`` different captions of the clip described by ``meta`` (a ``puppets`` ``videos`` entry or
    :attr:`~crossmedia.data.builtin.puppets.PuppetClip.info`), drawn with ``rng``; the module docstring gives
    the grammar. Raises ``ValueError`` for an unknown action."""
    if meta.get("action") not in PUPPET_ACTIONS:
        raise ValueError(f"puppet-captions: unknown action {meta.get('action')!r}; expected one of "
                         f"{', '.join(PUPPET_ACTIONS)}")
    side, count, speed = action_side(meta), event_count(meta), speed_word(meta)
    count = count if count in _TIMES else None  # 1-4 events are said; none, or many, are not
    captions: list[str] = []
    for _ in range(100 * n):
        caption = _caption(rng, meta, side, count, speed)
        if caption not in captions:
            captions.append(caption)
            if len(captions) == n:
                return captions
    raise ValueError(f"puppet-captions: the grammar gave only {len(captions)} different captions of {meta}")


def write_mp4(path: str | Path, frames: np.ndarray, *, fps: int = FPS, crf: int = 18) -> Path:
    """Write ``frames`` (T, H, W, 3) uint8 RGB (H, W even) as an H.264 yuv420p MP4 at ``fps`` with PyAV."""
    import av  # PyAV: imported here so that importing the registry stays cheap

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[1] % 2 \
            or frames.shape[2] % 2:
        raise ValueError(f"write_mp4 {path}: frames must be (T, H, W, 3) uint8 with even H and W (yuv420p), "
                         f"got {frames.shape} {frames.dtype}")
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        # one thread, no macroblock tree: with its lookahead on, x264 wrote a byte more or less in ~5 % of the
        # encodes of some 64 x 64 clips (the decoded frames were the same); without it, 360 encodes were identical
        stream.options = {"crf": str(crf), "x264-params": "mbtree=0"}
        stream.thread_count = 1
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _files_complete(root: Path, meta: dict) -> bool:
    """``annotations.json`` is there and ``videos/`` holds the ``num_clips`` videos of ``meta``."""
    return (root / JSON_NAME).is_file() and \
        count_entries(root / "videos", lambda entry: entry.name.endswith(".mp4")) == meta.get("num_clips")


def _folder(root: str | Path, **settings: int) -> DatasetFolder:
    return DatasetFolder(Path(root), {"name": "puppet-captions", **settings, "generator_version": GENERATOR_VERSION},
                         complete=_files_complete)


def puppet_captions_ready(root: str | Path) -> bool:
    """``root`` holds a finished ``puppet-captions`` folder of this generator version, of any seed and size."""
    return _folder(root).ready()


def make_puppet_captions(root: str | Path, *, seed: int = 0, progress: bool = True, num_clips: int | None = None,
                         frames: int = FRAMES, size: int = IMAGE_SIZE) -> Path:
    """Write the ``puppet-captions`` dataset into ``root`` and return ``root`` (kept when a complete copy exists).

    ``num_clips`` defaults to 3,240 (the first clips of ``puppets``: a smaller set for tests); ``frames``
    per clip at :data:`FPS` and ``size`` x ``size`` pixels (even). An interrupted, older-version or
    other-setting folder is rewritten.
    """
    root, num_clips = Path(root), NUM_CLIPS if num_clips is None else int(num_clips)
    if num_clips < 1:
        raise ValueError(f"num_clips must be positive, got {num_clips}")
    if size % 2:
        raise ValueError(f"puppet-captions: size must be even (H.264 yuv420p), got {size}")
    folder = _folder(root, seed=seed, num_clips=num_clips, frames=int(frames), size=int(size))
    if folder.ready():
        return root
    with folder.rewriting() as meta:
        shutil.rmtree(root / "videos", ignore_errors=True)  # a previous run of other settings
        (root / "videos").mkdir()
        videos, sentences = [], []
        for index in tqdm(range(num_clips), desc="puppet-captions: drawing and encoding clips", disable=not progress):
            clip = draw_puppet_clip(index, seed=seed, frames=frames, size=size)
            video_id = f"video{index}"
            write_mp4(root / "videos" / f"{video_id}.mp4", clip.frames)
            videos.append({"video_id": video_id, "id": index, "split": MSRVTT_SPLITS[clip.info["split"]],
                           "category": clip.info["action_id"], "url": "", "start time": 0.0,
                           "end time": round(frames / FPS, 4), "puppet": clip.info})
            for caption in puppet_captions(clip.info, np.random.default_rng([seed, index, 2])):
                sentences.append({"video_id": video_id, "caption": caption, "sen_id": len(sentences)})
        info = {"description": "puppet-captions: generated by crossmedia.data.builtin.puppet_captions",
                "version": str(GENERATOR_VERSION), "seed": seed, "fps": FPS, "frames": frames, "size": size}
        partial = root / (JSON_NAME + ".partial")
        partial.write_text(json.dumps({"info": info, "videos": videos, "sentences": sentences},
                                      separators=(",", ":")) + "\n", encoding="utf-8")
        os.replace(partial, root / JSON_NAME)
        counts = {split: sum(v["split"] == MSRVTT_SPLITS[split] for v in videos) for split in MSRVTT_SPLITS}
        meta.update({**folder.expected, "kind": "caption", "format": "msrvtt", "file": JSON_NAME,
                     "videos": "videos", "fps": FPS, "counts": counts, "captions_per_video": CAPTIONS_PER_CLIP,
                     "num_sentences": len(sentences), "actions": list(PUPPET_ACTIONS),
                     "source": "generated by crossmedia.data.builtin.puppet_captions"})
    return root


@register_dataset("puppet-captions", kind="caption", builtin=True, ready=puppet_captions_ready,
                  summary="the 3,240 puppets clips as 16-frame 64x64 H.264 videos with 5 captions each "
                          "(MSR-VTT format)")
def _prepare_puppet_captions(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    return make_puppet_captions(root, seed=seed, progress=progress)
