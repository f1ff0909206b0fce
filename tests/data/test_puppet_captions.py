"""Built-in ``puppet-captions``: the puppets clips as H.264 videos in MSR-VTT format, with captions that are
true of each clip (colours, clothes, hair, action, side, count, speed, background)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from crossmedia.data.builtin.puppet_captions import (CAPTIONS_PER_CLIP, action_side, event_count,
                                                     make_puppet_captions, puppet_captions, puppet_captions_ready,
                                                     speed_word)
from crossmedia.data.builtin.puppets import (_CYCLES, PUPPET_ACTIONS, PUPPET_COLOURS, PUPPET_TEXTURES, clip_split,
                                             draw_puppet_clip)
from crossmedia.data.keypoints import COCO17
from crossmedia.data.msrvtt import msrvtt_folder, read_msrvtt, video_path
from crossmedia.data.registry import ensure, list_datasets
from crossmedia.data.video import read_video

NUM_CLIPS = 12  # every action, and a val clip


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return make_puppet_captions(tmp_path_factory.mktemp("puppet-captions"), seed=0, progress=False,
                                num_clips=NUM_CLIPS)


@pytest.fixture(scope="module")
def doc(built) -> dict:
    return json.loads((built / "annotations.json").read_text())


def _metas(n: int, seed: int = 0) -> list[dict]:
    """``n`` random clip descriptions covering every action, colour, style, texture, hair and background."""
    rng = np.random.default_rng(seed)
    colours = list(PUPPET_COLOURS)
    metas = []
    for i in range(n):
        action = PUPPET_ACTIONS[i % len(PUPPET_ACTIONS)]
        top, bottom = rng.choice(len(colours), size=2, replace=False)
        nframes = int(rng.choice([16, 24]))
        metas.append({"action": action, "mirrored": bool(rng.random() < 0.5),
                      "cycles": float(rng.uniform(*_CYCLES[action])) * nframes / 16,
                      "phase": float(rng.uniform(0, 2 * math.pi)), "nframes": nframes,
                      "top_colour": colours[top], "bottom_colour": colours[bottom],
                      "top_texture": str(rng.choice(PUPPET_TEXTURES)),
                      "bottom_texture": str(rng.choice(PUPPET_TEXTURES)),
                      "top_style": str(rng.choice(["long", "short"])),
                      "bottom_style": str(rng.choice(["trousers", "shorts"])),
                      "hair_colour": str(rng.choice(["black", "brown", "blonde", "auburn", "grey"])),
                      "hair_style": str(rng.choice(["short", "long", "bun", "buzz"])),
                      "background": str(rng.choice(["plain", "gradient", "noise"]))})
    return metas


# what each word claims about the clip

_STEMS = {"wave": r"\bwav", "clap": r"\bclap", "walk": r"\bwalk|\bstep", "run": r"\brun", "jump": r"\bjump",
          "squat": r"\bsquat", "punch": r"\bpunch", "kick": r"\bkick", "bend": r"\bbend|\blean"}
_TOP_NOUN = r"(?:long-sleeved shirt|long-sleeved top|short-sleeved shirt|t-shirt|shirt|top)\b"
_BOTTOM_NOUN = r"(?:long trousers|trousers|pants|shorts)\b"
_COUNTS = {"once": 1, "twice": 2, "three times": 3, "four times": 4, "a punch": 1, "a squat": 1,
           "two punches": 2, "three punches": 3, "four punches": 4}
_TEXTURE = {"striped": "stripes", "polka-dot": "dots", "spotted": "dots", "plain": "plain"}
_BACKGROUND = {"plain": r"plain (?:wall|background|backdrop)", "gradient": r"gradient|shaded",
               "noise": r"grainy|speckled|noisy"}


def _assert_true_of(caption: str, meta: dict) -> None:
    colours = "|".join(PUPPET_COLOURS)
    why = f"{caption!r} of {meta}"
    assert caption == caption.lower().strip() and not caption.endswith("."), why
    # clothes: each colour word is the colour of the garment it names, with that garment's texture and cut
    for match in re.finditer(rf"(?:(\S+) )?\b({colours})\b (?:(\S+) )?({_TOP_NOUN}|{_BOTTOM_NOUN})", caption):
        before, colour, after, noun = match.groups()
        garment = "top" if re.fullmatch(_TOP_NOUN, noun) else "bottom"
        assert colour == meta[f"{garment}_colour"], why
        for word in (before, after):
            if word in _TEXTURE:
                assert _TEXTURE[word] == meta[f"{garment}_texture"], why
        if garment == "top":
            assert not noun.startswith("long-sleeved") or meta["top_style"] == "long", why
            assert noun not in ("t-shirt", "short-sleeved shirt") or meta["top_style"] == "short", why
        else:
            assert (noun == "shorts") == (meta["bottom_style"] == "shorts"), why
    named = re.findall(rf"\b({colours})\b", caption)
    assert set(named) <= {meta["top_colour"], meta["bottom_colour"]}, why
    assert len(named) == len(re.findall(rf"\b({colours})\b (?:\S+ )?(?:{_TOP_NOUN}|{_BOTTOM_NOUN})", caption)), why
    # hair
    for colour in ("black", "brown", "blonde", "auburn", "grey"):
        assert colour not in caption or colour == meta["hair_colour"], why
    styles = {"long": r"long \w+ hair", "short": r"(?<!very )\bshort \w+ hair", "bun": r"\bbun\b",
              "buzz": r"buzz cut|very short"}
    for style, pattern in styles.items():
        assert not re.search(pattern, caption) or style == meta["hair_style"], why
    # the action, its side, count and speed
    for action, pattern in _STEMS.items():
        assert bool(re.search(pattern, caption)) == (action == meta["action"]), why
    sides = set(re.findall(r"\b(left|right)\b", caption))
    assert sides <= ({action_side(meta)} if action_side(meta) else set()), why
    counts = {n for phrase, n in _COUNTS.items() if re.search(rf"\b{phrase}\b", caption)}
    assert counts <= ({event_count(meta)} if event_count(meta) else set()), why
    for word in ("quickly", "slowly"):
        assert word not in caption or speed_word(meta) == word, why
    for kind, pattern in _BACKGROUND.items():
        assert not re.search(pattern, caption) or kind == meta["background"], why


# the grammar


def test_every_caption_is_true_of_its_clip():
    metas = _metas(450)
    for i, meta in enumerate(metas):
        captions = puppet_captions(meta, np.random.default_rng([0, i, 2]))
        assert len(captions) == CAPTIONS_PER_CLIP == len(set(captions))
        for caption in captions:
            _assert_true_of(caption, meta)


def test_captions_are_varied_and_name_what_the_issue_asks():
    metas = _metas(270, seed=1)
    captions = [c for i, m in enumerate(metas) for c in puppet_captions(m, np.random.default_rng([1, i, 2]))]
    assert len(set(captions)) > 0.95 * len(captions)  # a short caption may be true of two clips
    assert len({" ".join(c.split()[:2]) for c in captions}) >= 10  # many ways to name the person
    share = lambda pattern: np.mean([bool(re.search(pattern, c)) for c in captions])  # noqa: E731
    assert share("|".join(PUPPET_COLOURS)) > 0.7  # clothes colours in most captions
    assert 0.1 < share(r"\b(is|there is|a video of)\b") < 0.7  # simple and progressive forms
    assert 0.1 < share(r"wall|background|backdrop") < 0.4  # the background sometimes
    assert share(r"\b(left|right)\b") > 0.1 and share(r"\b(quickly|slowly)\b") > 0.05
    assert share(r"\b(once|twice|three times|two punches|three punches)\b") > 0.03
    said = [any(action_side(m) in c for c in puppet_captions(m, np.random.default_rng(i)))
            for i, m in enumerate(metas) if action_side(m)]
    assert np.mean(said) > 0.7  # most clips of a sided action say the side in one of their captions
    per_clip_top = [any(m["top_colour"] in c for c in puppet_captions(m, np.random.default_rng(i)))
                    for i, m in enumerate(metas)]
    assert np.mean(per_clip_top) > 0.9  # the content tag (top colour) is named for almost every clip


def test_the_same_rng_gives_the_same_captions():
    meta = _metas(1)[0]
    assert puppet_captions(meta, np.random.default_rng(5)) == puppet_captions(meta, np.random.default_rng(5))
    with pytest.raises(ValueError, match="unknown action 'dance'"):
        puppet_captions({**meta, "action": "dance"}, np.random.default_rng(0))


def test_sides_follow_the_drawn_figure():
    """The side word (the person's own) is the side the figure's COCO keypoints show: the raised wrist of a wave,
    the kicking ankle, and for walking / running the drift (the person's left is the image's right)."""
    j = {name: COCO17.index(name) for name in COCO17}
    seen = set()
    for index in (0, 18, 2, 11, 3, 12, 7, 16):
        clip = draw_puppet_clip(index)
        kp, side = clip.keypoints, action_side(clip.info)
        other = "right" if side == "left" else "left"
        seen.add((clip.info["action"], side))
        if clip.info["action"] == "wave":
            assert kp[:, j[f"{side}_wrist"], 1].mean() < kp[:, j[f"{other}_wrist"], 1].mean() - 5
        elif clip.info["action"] == "kick":
            hips = kp[:, [j["left_hip"], j["right_hip"]], 0].mean(1)
            reach = {s: np.abs(kp[:, j[f"{s}_ankle"], 0] - hips).max() for s in ("left", "right")}
            assert reach[side] > reach[other] + 3
            out = kp[:, j[f"{side}_ankle"], 0] - hips
            assert (out[np.abs(out).argmax()] > 0) == (side == "left")  # to the image's right = the person's left
        else:
            hips = kp[:, [j["left_hip"], j["right_hip"]], 0].mean(1)
            assert (hips[-1] - hips[0] > 2) == (side == "left") and abs(hips[-1] - hips[0]) > 2
    assert {("wave", "left"), ("wave", "right"), ("kick", "left"), ("kick", "right"), ("walk", "left"),
            ("walk", "right")} <= seen
    assert action_side({"action": "clap", "mirrored": True}) is None


@pytest.mark.parametrize("action", ["jump", "clap", "squat", "kick", "punch"])
def test_counts_are_the_events_inside_the_clip(action):
    """event_count against a dense sampling of the action's signal: the peaks strictly inside the clip."""
    signal = {"jump": np.sin, "kick": np.sin, "clap": lambda p: -np.cos(p), "squat": lambda p: -np.cos(p),
              "punch": lambda p: np.abs(np.sin(p))}[action]
    known = 0
    for meta in _metas(400, seed=2):
        meta = {**meta, "action": action}
        count = event_count(meta)
        if count is None:
            continue
        known += 1
        n = meta["nframes"]
        ph = np.linspace(meta["phase"], meta["phase"] + 2 * math.pi * meta["cycles"] * (n - 1) / n, 4000)
        s = signal(ph)
        peaks = int(np.sum((s[1:-1] > s[:-2]) & (s[1:-1] >= s[2:])))
        assert count == peaks, meta
    assert known > 40  # said often enough to be learnt
    assert event_count({"action": "wave", "phase": 0.0, "cycles": 2.0, "nframes": 16}) is None


def test_speed_words_split_each_action_range_in_thirds():
    low, high = _CYCLES["wave"]
    base = {"action": "wave", "nframes": 16}
    assert speed_word({**base, "cycles": low + 0.01}) == "slowly"
    assert speed_word({**base, "cycles": (low + high) / 2}) is None
    assert speed_word({**base, "cycles": high - 0.01}) == "quickly"
    assert speed_word({**base, "cycles": 2 * (high - 0.01), "nframes": 32}) == "quickly"  # per 16 frames


# the folder


def test_msrvtt_layout_with_the_puppets_truth(built, doc):
    assert set(doc) == {"info", "videos", "sentences"}
    assert [v["video_id"] for v in doc["videos"]] == [f"video{i}" for i in range(NUM_CLIPS)]
    for i, video in enumerate(doc["videos"]):
        action_id, split = clip_split(i)
        assert video["split"] == {"val": "validate"}.get(split, split) and video["category"] == action_id
        assert video["id"] == i and video["start time"] == 0.0 and video["end time"] == 2.0
        assert video["puppet"]["action"] == PUPPET_ACTIONS[action_id]
    assert len(doc["sentences"]) == CAPTIONS_PER_CLIP * NUM_CLIPS
    assert [s["sen_id"] for s in doc["sentences"]] == list(range(len(doc["sentences"])))
    records = read_msrvtt(built)
    assert [r.video_id for r in records] == [v["video_id"] for v in doc["videos"]]
    assert {r.split for r in records} == {"train", "val"}  # validate read as val
    for record in records:
        assert len(record.captions) == CAPTIONS_PER_CLIP
        for caption in record.captions:
            _assert_true_of(caption, record.extra)


def test_videos_decode_to_the_drawn_frames(built):
    for index in (0, 4, 10):
        video = read_video(video_path(built, f"video{index}"), fps=8, max_short_side=64)
        assert video.frames.shape == (16, 64, 64, 3) and video.native_fps == 8 and video.n_frames == 16
        drawn = draw_puppet_clip(index).frames.astype(np.float64)
        assert np.abs(video.frames - drawn).mean() < 8  # H.264 + yuv420p chroma: lossy, but close


def test_the_info_matches_puppets_and_generation_is_deterministic(built, doc, tmp_path):
    for index in (1, 5):
        assert doc["videos"][index]["puppet"] == draw_puppet_clip(index).info
    again = make_puppet_captions(tmp_path / "again", progress=False, num_clips=3)
    for index in range(3):  # the same frames (the bytes too, in practice: see write_mp4)
        frames = [read_video(root / f"videos/video{index}.mp4", fps=8).frames for root in (built, again)]
        assert np.array_equal(*frames)
    small = json.loads((again / "annotations.json").read_text())
    assert small["sentences"] == doc["sentences"][:3 * CAPTIONS_PER_CLIP]


def test_registered_ready_and_kept(built, tmp_path):
    info = list_datasets()["puppet-captions"]
    assert info.builtin and info.kind == "caption"
    assert puppet_captions_ready(built) and not puppet_captions_ready(tmp_path)
    stamp = (built / "meta.json").stat().st_mtime_ns
    assert ensure("puppet-captions", built, progress=False) == built  # a smaller copy is kept as it is
    assert (built / "meta.json").stat().st_mtime_ns == stamp
    assert msrvtt_folder(built)  # usable as an MSR-VTT folder under any name
    with pytest.raises(ValueError, match="size must be even"):
        make_puppet_captions(tmp_path / "odd", num_clips=1, size=63, progress=False)
