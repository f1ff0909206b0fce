"""Built-in ``summe-builtin`` and ``tvsum-builtin``: generated video summarisation data in the eccv16 h5 format.

No pixels: a "video" is its 2 fps feature sequence plus annotations, written exactly as the
eccv16 SumMe / TVSum files are (:mod:`crossmedia.data.eccv16`), so the same reader, protocol and
models serve both. Everything follows from the seed.

The world. ``12`` scene types and ``4`` event types, each a random unit direction in ``R^dim``
(``dim`` = 1024 by default, like GoogLeNet pool5), shared by all videos, so that what makes a
moment important can be learned across videos. Each scene type has a low base importance
(0.05-0.35); events are important (0.75-1.0).

A video. 600-2,400 frames at 30 fps (20-80 s), one step every 15 frames (``picks``). The
timeline is a sequence of scenes of 2-10 s drawn from a palette of 3-5 scene types, with 1-4
planted events of 2-5 s in between; scenes longer than 6 s are cut in two shots. The shots are
the ``change_points`` (the real files get theirs from KTS). A step's feature is its scene
direction (an event: 0.5 x the surrounding scene + the event direction), plus a per-shot offset
(norm ~0.3) and per-step noise (norm ~0.5).

Annotators, on the true per-frame importance:

- ``summe`` (25 videos, 15-18 users, evaluated with the max over users): each user selects
  keyshots worth 5-15 % of the video: each event with probability 0.85 (boundaries jittered by
  ~0.5 s), then shots of 1.5-4 s around frames drawn by the user's own noisy sense of importance;
  ``gtscore`` is the fraction of users selecting each step.
- ``tvsum`` (50 videos, 20 users, evaluated with the mean over users): each user rates every 2 s
  from 1 to 5 (true importance plus a personal bias and noise); as TVSum is usually processed,
  each user's ratings become a keyshot summary by the protocol's own knapsack at 15 % over the
  shots; ``gtscore`` is the mean rating per step mapped from [1, 5] to [0, 1].

``gtsummary`` is the knapsack summary of ``gtscore`` at the steps. The folder also holds a split
file (5 random 80/20 splits, canonical setting) and ``meta.json``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
from tqdm import tqdm

from crossmedia.data.eccv16 import VideoRecord, eccv16_filename, eccv16_files_complete, make_key, write_video
from crossmedia.data.folder import DatasetFolder
from crossmedia.data.keyshots import generate_summary
from crossmedia.data.registry import register_dataset
from crossmedia.data.splits import make_splits, write_splits

__all__ = ["Variant", "VIDEOSUMM_VARIANTS", "make_videosumm", "videosumm_files", "videosumm_ready"]

Variant = Literal["summe", "tvsum"]
VIDEOSUMM_VARIANTS: dict[str, dict[str, int]] = {
    "summe": {"num_videos": 25, "min_users": 15, "max_users": 18},
    "tvsum": {"num_videos": 50, "min_users": 20, "max_users": 20},
}
FPS, STEP = 30, 15  # 2 fps steps
_SCENE_TYPES, _EVENT_TYPES = 12, 4
_GENERATOR_VERSION = 1


# helpers

def videosumm_files(root: str | Path, variant: Variant) -> tuple[Path, Path]:
    """(h5 file, split file) of the built-in ``variant`` in ``root``."""
    h5_path = Path(root) / eccv16_filename(f"builtin_{variant}")
    return h5_path, h5_path.with_name(f"{h5_path.stem}_splits.json")


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # (n, dim)


def _timeline(rng: np.random.Generator, n_frames: int) -> list[tuple[int, int, int]]:
    """Shots as (length, scene type or -1 - event type, base scene type), covering n_frames."""
    palette = rng.choice(_SCENE_TYPES, size=rng.integers(3, 6), replace=False)
    num_events = int(min(4, 1 + n_frames // 600))
    scenes, total, previous = [], 0, -1
    while total < n_frames:
        choices = [s for s in palette if s != previous]
        previous = int(rng.choice(choices))
        length = int(rng.integers(60, 301))
        scenes.append((length, previous))
        total += length
    event_slots = set(rng.choice(np.arange(1, max(2, len(scenes))), size=min(num_events, max(1, len(scenes) - 1)),
                                 replace=False).tolist())
    shots = []
    for index, (length, scene) in enumerate(scenes):
        if index in event_slots:
            shots.append((int(rng.integers(60, 151)), -1 - int(rng.integers(_EVENT_TYPES)), scene))
        if length > 180:  # a long scene: two shots
            cut = int(rng.integers(60, length - 59))
            shots += [(cut, scene, scene), (length - cut, scene, scene)]
        else:
            shots.append((length, scene, scene))
    out, total = [], 0
    for length, kind, scene in shots:  # trim to n_frames; a short tail joins the shot before it
        length = min(length, n_frames - total)
        if length <= 0:
            break
        if length < 30 and out:
            out[-1] = (out[-1][0] + length, out[-1][1], out[-1][2])
        else:
            out.append((length, kind, scene))
        total += length
    return out


def _summe_users(rng: np.random.Generator, importance: np.ndarray, events: list[tuple[int, int]],
                 n_users: int) -> np.ndarray:
    """(n_users, n_frames) 0/1 keyshot selections: events mostly, then the user's own picks."""
    n_frames = len(importance)
    users = np.zeros((n_users, n_frames), dtype=np.float32)
    for u in range(n_users):
        budget = int(rng.uniform(0.05, 0.15) * n_frames)
        blocks = np.repeat(rng.normal(0.0, 0.15, size=n_frames // 60 + 1), 60)[:n_frames]
        perceived = np.clip(importance + blocks, 1e-3, None)  # (n_frames,)
        chosen = users[u]
        for start, end in [events[i] for i in rng.permutation(len(events))]:
            if rng.random() > 0.85:
                continue
            a = int(np.clip(start + rng.normal(0, 15), 0, n_frames - 1))
            b = int(np.clip(end + rng.normal(0, 15), a + 1, n_frames))
            if chosen.sum() + (b - a) <= budget:
                chosen[a:b] = 1
        for _ in range(50):
            left = budget - int(chosen.sum())
            if left < 30:
                break
            weights = perceived ** 2 * (1 - chosen)
            centre = int(rng.choice(n_frames, p=weights / weights.sum()))
            half = min(int(rng.integers(45, 121)), left) // 2
            chosen[max(0, centre - half):centre + half] = 1
    return users


def _tvsum_users(rng: np.random.Generator, importance: np.ndarray, n_users: int,
                 record: dict) -> tuple[np.ndarray, np.ndarray]:
    """User summaries (n_users, n_frames) from 1-5 ratings per 2 s, and the ratings per step (n_users, n_steps)."""
    n_frames = len(importance)
    chunks = math.ceil(n_frames / (2 * FPS))
    chunk_importance = np.array([importance[c * 2 * FPS:(c + 1) * 2 * FPS].mean() for c in range(chunks)])  # (C,)
    bias = rng.normal(0.0, 0.3, size=(n_users, 1))
    ratings = np.clip(np.rint(1 + 4 * chunk_importance[None, :] + bias + rng.normal(0.0, 0.7, size=(n_users, chunks))),
                      1, 5)  # (n_users, C)
    step_ratings = ratings[:, record["picks"] // (2 * FPS)]  # (n_users, n_steps)
    summaries = np.stack([generate_summary(r, record["change_points"], n_frames, record["n_frame_per_seg"],
                                           record["picks"]) for r in step_ratings])  # (n_users, n_frames)
    return summaries.astype(np.float32), step_ratings


def _make_video(rng: np.random.Generator, variant: str, index: int, world: dict[str, np.ndarray]) -> VideoRecord:
    dim = world["scenes"].shape[1]
    n_frames = int(rng.integers(600, 2401))
    shots = _timeline(rng, n_frames)
    lengths = np.array([s[0] for s in shots])
    ends = np.cumsum(lengths)
    starts = ends - lengths
    change_points = np.stack([starts, ends - 1], axis=1)  # (n_seg, 2)
    importance = np.zeros(n_frames)
    events = []
    for (length, kind, scene), start in zip(shots, starts):
        if kind < 0:
            importance[start:start + length] = rng.uniform(0.75, 1.0)
            events.append((int(start), int(start + length)))
        else:
            importance[start:start + length] = np.clip(world["base"][scene] + rng.normal(0, 0.05), 0, 1)
    picks = np.arange(0, n_frames, STEP)  # (n_steps,)
    shot_of_step = np.searchsorted(ends, picks, side="right")  # (n_steps,)
    directions = np.stack([world["scenes"][scene] if kind >= 0 else
                           0.5 * world["scenes"][scene] + world["events"][-1 - kind] for _, kind, scene in shots])
    offsets = 0.3 * _unit(rng, len(shots), dim)  # (n_seg, dim)
    noise = rng.normal(0.0, 0.5 / math.sqrt(dim), size=(len(picks), dim))  # (n_steps, dim)
    features = (directions[shot_of_step] + offsets[shot_of_step] + noise).astype(np.float32)
    record = {"picks": picks, "change_points": change_points, "n_frame_per_seg": lengths}
    settings = VIDEOSUMM_VARIANTS[variant]
    n_users = int(rng.integers(settings["min_users"], settings["max_users"] + 1))
    if variant == "summe":
        users = _summe_users(rng, importance, events, n_users)
        gtscore = users[:, picks].mean(axis=0)
    else:
        users, step_ratings = _tvsum_users(rng, importance, n_users, record)
        gtscore = (step_ratings.mean(axis=0) - 1) / 4
    gtsummary = generate_summary(gtscore, change_points, n_frames, lengths, picks)[picks]
    return VideoRecord(key=f"video_{index + 1}", features=features, gtscore=gtscore.astype(np.float32),
                       gtsummary=gtsummary.astype(np.float32), user_summary=users, change_points=change_points,
                       n_frame_per_seg=lengths, n_frames=n_frames, picks=picks,
                       video_name=f"builtin_{variant}_{index + 1:03d}")


# functions

def _folder(root: str | Path, variant: Variant, **settings: int) -> DatasetFolder:
    """``root`` as a built-in ``variant`` folder of this generator version (and of ``settings``: seed,
    dim, num_videos)."""
    expected = {"name": f"{variant}-builtin", **settings, "generator_version": _GENERATOR_VERSION}
    return DatasetFolder(Path(root), expected, complete=eccv16_files_complete)


def make_videosumm(root: str | Path, *, variant: Variant, seed: int = 0, progress: bool = True, dim: int = 1024,
                   num_videos: int | None = None) -> Path:
    """Write the built-in ``variant`` into ``root`` and return its h5 file (skipped when complete).

    ``root/eccv16_dataset_builtin_<variant>_google_pool5.h5`` holds the videos, ``..._splits.json``
    next to it 5 canonical 80/20 splits drawn from ``seed``. ``dim`` is the feature size and
    ``num_videos`` overrides the variant's count (25 SumMe-like, 50 TVSum-like).
    """
    if variant not in VIDEOSUMM_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VIDEOSUMM_VARIANTS)}")
    root = Path(root)
    h5_path, splits_path = videosumm_files(root, variant)
    num_videos = VIDEOSUMM_VARIANTS[variant]["num_videos"] if num_videos is None else int(num_videos)
    folder = _folder(root, variant, seed=seed, dim=dim, num_videos=num_videos)
    if folder.ready():
        return h5_path
    with folder.rewriting() as meta:
        world_rng = np.random.default_rng([seed, 0])
        world = {"scenes": _unit(world_rng, _SCENE_TYPES, dim), "events": _unit(world_rng, _EVENT_TYPES, dim),
                 "base": world_rng.uniform(0.05, 0.35, size=_SCENE_TYPES)}
        partial = h5_path.with_name(h5_path.name + ".partial")
        with h5py.File(partial, "w") as handle:
            for index in tqdm(range(num_videos), desc=f"{variant}-builtin: generating videos", disable=not progress):
                rng = np.random.default_rng([seed, 1 + list(VIDEOSUMM_VARIANTS).index(variant), index])
                write_video(handle, f"video_{index + 1}", _make_video(rng, variant, index, world))
        partial.replace(h5_path)
        keys = [make_key(h5_path, f"video_{i + 1}") for i in range(num_videos)]
        write_splits(splits_path, make_splits(keys, setting="canonical", seed=seed))
        meta.update({**folder.expected, "kind": "video", "format": "eccv16", "variant": variant, "file": h5_path.name,
                     "splits_file": splits_path.name, "source": "generated by crossmedia.data.builtin.videosumm"})
    return h5_path


def videosumm_ready(root: str | Path, variant: Variant) -> bool:
    """``root`` holds a finished built-in ``variant`` of this generator version, of any seed, size and
    feature dimension (a smaller copy made for tests or demos is kept as it is)."""
    return _folder(root, variant).ready()


# registry entries: the built-in datasets (the real eccv16 files they stand in for register in eccv16_releases.py)

def _builtin_preparer(variant: Variant):
    def preparer(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
        make_videosumm(root, variant=variant, seed=seed, progress=progress)
        return Path(root)

    return preparer


register_dataset("summe-builtin", kind="video", builtin=True, ready=lambda root: videosumm_ready(root, "summe"),
                 summary="25 generated SumMe-like videos (eccv16 h5), 15-18 keyshot annotators, F max over users")(
    _builtin_preparer("summe"))
register_dataset("tvsum-builtin", kind="video", builtin=True, ready=lambda root: videosumm_ready(root, "tvsum"),
                 summary="50 generated TVSum-like videos (eccv16 h5), 20 raters of 1-5 importance, F mean over users")(
    _builtin_preparer("tvsum"))
