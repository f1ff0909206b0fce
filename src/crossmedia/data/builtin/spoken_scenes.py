"""Built-in ``spoken-scenes``: the captions of the built-in ``scenes`` images, spoken by eSpeak NG.

For every image of the ``scenes`` dataset, its first ``spoken_per_image`` (default 1) captions
are synthesised by :class:`crossmedia.data.speech.Speaker` and written as 16 kHz mono PCM16
``audio/<imgid:05d>_<k>.wav``. Voice, speed and pitch vary per caption, drawn from
``default_rng([seed, imgid, k])``: one of :data:`VOICES` (British, American, Scottish,
Caribbean English, plain or with a male/female variant), 130-190 words per minute, pitch 30-70.
So a model cannot recognise a caption by its speaker, and a given caption always sounds the
same.

The folder holds ``dataset_scenes_spoken.json``, the ``scenes`` split file in which every
sentence also has ``audio`` (its WAV path relative to the folder, null when not spoken),
``voice``, ``speed`` and ``pitch`` (null when not spoken), and ``meta.json`` with ``image_root``
pointing at the ``scenes`` folder (relative when possible), so
:func:`crossmedia.data.speech.read_spoken_folder` gives every image's path, split, captions and
WAVs, and :func:`crossmedia.data.karpathy.read_caption_folder` reads it as a caption dataset.

The ``scenes`` folder is the sibling ``<root>/../scenes`` unless given (``data/scenes`` for
``data/spoken-scenes``); it is generated first when missing. ``meta.json`` records the digest
of the ``scenes`` split file, so regenerating ``scenes`` makes this folder stale.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from crossmedia.data.audio import write_wav
from crossmedia.data.builtin.scenes import JSON_NAME as SCENES_JSON
from crossmedia.data.builtin.scenes import make_scenes, scenes_ready
from crossmedia.data.folder import DatasetFolder, count_entries, read_meta
from crossmedia.data.registry import ensure, register_dataset
from crossmedia.data.speech import SAMPLE_RATE, Speaker

__all__ = ["VOICES", "SPEED_RANGE", "PITCH_RANGE", "JSON_NAME", "voice_of", "make_spoken_scenes",
           "spoken_scenes_ready"]

VOICES: tuple[str, ...] = ("en", "en-us", "en-gb-scotland", "en-029", "en+f3", "en+m3", "en-us+f2", "en-us+m1",
                           "en+f4", "en-us+m7")
SPEED_RANGE = (130, 190)  # words per minute, inclusive
PITCH_RANGE = (30, 70)  # eSpeak's 0-100 scale, inclusive
JSON_NAME = "dataset_scenes_spoken.json"
SPOKEN_PER_IMAGE = 1
_GENERATOR_VERSION = 1


def voice_of(seed: int, imgid: int, k: int) -> tuple[str, int, int]:
    """(voice, speed, pitch) of caption ``k`` of image ``imgid``, drawn from ``default_rng([seed, imgid, k])``."""
    rng = np.random.default_rng([seed, imgid, k])
    voice = VOICES[int(rng.integers(len(VOICES)))]
    return voice, int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1)), int(rng.integers(PITCH_RANGE[0],
                                                                                         PITCH_RANGE[1] + 1))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files_complete(root: Path, meta: dict[str, Any]) -> bool:
    """The split file and the ``num_audio`` WAVs are there, and ``scenes`` is the one they were made from."""
    scenes_json = root / meta.get("image_root", "") / SCENES_JSON
    if not (root / JSON_NAME).is_file() or not scenes_json.is_file():
        return False
    if count_entries(root / "audio", lambda entry: entry.name.endswith(".wav")) != meta.get("num_audio"):
        return False
    return _digest(scenes_json) == meta.get("scenes_sha256")


def _folder(root: Path, **settings: Any) -> DatasetFolder:
    return DatasetFolder(root, {"name": "spoken-scenes", **settings, "generator_version": _GENERATOR_VERSION},
                         complete=_files_complete)


def spoken_scenes_ready(root: str | Path) -> bool:
    """``root`` holds a finished ``spoken-scenes`` folder of this generator version (any seed and size)
    whose ``scenes`` folder is still the one it was spoken from."""
    return _folder(Path(root)).ready()


def _scenes_folder(scenes_root: Path, num_images: int | None, progress: bool) -> Path:
    if num_images is None:
        return ensure("scenes", scenes_root, progress=progress)
    if scenes_ready(scenes_root) and (read_meta(scenes_root) or {}).get("num_images", 0) >= num_images:
        return scenes_root
    return make_scenes(scenes_root, num_images=num_images, progress=progress,
                       seed=int((read_meta(scenes_root) or {}).get("seed", 0)))


def make_spoken_scenes(root: str | Path, *, seed: int = 0, progress: bool = True, num_images: int | None = None,
                       spoken_per_image: int = SPOKEN_PER_IMAGE, scenes_root: str | Path | None = None) -> Path:
    """Write ``spoken-scenes`` into ``root`` and return ``root`` (kept when a complete copy exists).

    Speaks the first ``spoken_per_image`` captions of the first ``num_images`` images of the
    ``scenes`` folder ``scenes_root`` (default ``root/../scenes``; all its images by default).
    When ``num_images`` is given and ``scenes_root`` holds fewer images, or none, a ``scenes``
    folder of ``num_images`` images is generated there (so its val and test splits exist).
    """
    root = Path(root)
    scenes_root = Path(scenes_root) if scenes_root is not None else root.parent / "scenes"
    if not 1 <= spoken_per_image <= 5:
        raise ValueError(f"spoken_per_image must be 1-5 (scenes images have 5 captions), got {spoken_per_image}")
    if num_images is not None and num_images < 1:
        raise ValueError(f"num_images must be positive, got {num_images}")
    scenes_root = _scenes_folder(scenes_root, num_images, progress)
    scenes_json = scenes_root / SCENES_JSON
    entries = json.loads(scenes_json.read_text(encoding="utf-8"))["images"]
    entries = entries if num_images is None else entries[:num_images]
    folder = _folder(root, seed=seed, num_images=len(entries), spoken_per_image=spoken_per_image,
                     scenes_sha256=_digest(scenes_json))
    if folder.ready():
        return root
    with folder.rewriting() as meta:
        audio_dir = root / "audio"
        audio_dir.mkdir(exist_ok=True)
        for stale in audio_dir.glob("*.wav"):  # a previous, larger or other-seed run
            stale.unlink()
        seconds = 0.0
        spoken = [(entry, k, sentence, *voice_of(seed, entry["imgid"], k)) for entry in entries
                  for k, sentence in enumerate(entry["sentences"][:spoken_per_image])]
        waves = Speaker().speak_many((sentence["raw"], voice, speed, pitch) for _, _, sentence, voice, speed, pitch in spoken)
        for (entry, k, sentence, voice, speed, pitch), (waveform, rate) in tqdm(
                zip(spoken, waves), total=len(spoken), desc="spoken-scenes: speaking captions", disable=not progress):
            name = f"audio/{entry['imgid']:05d}_{k}.wav"
            write_wav(root / name, waveform, rate)
            seconds += len(waveform) / rate
            sentence.update({"audio": name, "voice": voice, "speed": speed, "pitch": pitch})
        for entry in entries:
            for sentence in entry["sentences"][spoken_per_image:]:
                sentence.update({"audio": None, "voice": None, "speed": None, "pitch": None})
        partial = root / (JSON_NAME + ".partial")
        partial.write_text(json.dumps({"images": entries, "dataset": "scenes-spoken"}) + "\n", encoding="utf-8")
        os.replace(partial, root / JSON_NAME)
        try:
            image_root = os.path.relpath(scenes_root.resolve(), root.resolve())
        except ValueError:  # another drive (Windows)
            image_root = str(scenes_root.resolve())
        counts = {split: sum(e["split"] in ((split, "restval") if split == "train" else (split,)) for e in entries)
                  for split in ("train", "val", "test")}
        meta.update({**folder.expected, "kind": "caption", "format": "karpathy", "file": JSON_NAME,
                     "image_root": image_root, "audio_root": ".", "sample_rate": SAMPLE_RATE,
                     "num_audio": len(entries) * spoken_per_image, "seconds_of_audio": round(seconds, 1),
                     "counts": counts, "voices": list(VOICES), "speed_range": list(SPEED_RANGE),
                     "pitch_range": list(PITCH_RANGE),
                     "source": "generated by crossmedia.data.builtin.spoken_scenes (eSpeak NG)"})
    return root


@register_dataset("spoken-scenes", kind="caption", builtin=True, ready=spoken_scenes_ready,
                  summary="the scenes captions spoken by eSpeak NG (2 per image, varied voices), 16 kHz WAV")
def _prepare_spoken_scenes(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    return make_spoken_scenes(root, seed=seed, progress=progress)
