"""Spoken captions: a speech synthesiser (eSpeak NG) and readers of spoken-caption datasets.

**Synthesis.** :class:`Speaker` drives the eSpeak NG library (formant synthesis, GPL-3; the
``espeakng-loader`` wheel bundles ``libespeak-ng`` and its voice data, so nothing is installed
system-wide) through :mod:`ctypes`: ``espeak_Initialize`` in synchronous mode with a synth
callback that collects the int16 samples at the library's rate (22,050 Hz),
``espeak_SetVoiceByName`` (``"en"``, ``"en-us"``, a variant such as ``"en+f3"`` ...) and
``espeak_SetParameter`` for the rate (words per minute) and pitch (0-100). The samples are
resampled to 16 kHz by :func:`crossmedia.data.audio.resample` (polyphase, 320/441).

eSpeak keeps state from one utterance to the next that its API cannot reset (the pitch
"flutter" phase and the noise generators are static variables; ``espeak_Terminate`` and
re-initialising do not clear them), so the same sentence spoken twice in one process differs by
a few samples. For identical samples, every utterance is synthesised in a child forked from one
small *speaking process* (spawned once per Python process; it imports only
:mod:`crossmedia.data.espeak`), whose library was initialised once and has never spoken: each
utterance starts from the same state, and the fork copies a small process (about a millisecond;
forking a 2 GB training or test process took tens). Within one Python process the same request
gives the same samples; two processes may differ by a few samples, as eSpeak's initialisation
itself is not repeatable (measured: two fresh processes, one sentence, two digests). Where
``os.fork`` does not exist (Windows) this process speaks itself and repeated sentences may differ
slightly.

**Datasets.** A spoken-caption dataset is an image-caption dataset plus a recording of (some of)
its captions. Two layouts are read:

* a Karpathy split file (:mod:`crossmedia.data.karpathy`) whose sentences carry an ``audio``
  field, a WAV path relative to ``audio_root``, or null for a sentence nobody spoke (our built-in
  ``spoken-scenes``): :func:`read_spoken_karpathy`; :func:`read_spoken_folder` reads a prepared
  folder through its ``meta.json``;
* the Flickr8k Audio Caption Corpus layout (Harwath & Glass, ASRU 2015): ``wavs/`` plus
  ``wav2capt.txt`` with lines ``<wav file> <image file> #<k>`` (the k-th caption of the image):
  :func:`read_wav_folder` attaches those WAVs to records read by the Karpathy reader (whose
  sentences are in the order of ``Flickr8k.token.txt``, ``#0`` .. ``#4``).

Both give :class:`SpokenImage` records (a :class:`~crossmedia.data.karpathy.CaptionedImage` plus
``audio``, aligned with ``captions``). Readers never open WAVs; :func:`verify_audio` does.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import wave
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from crossmedia.data.audio import resample
from crossmedia.data.espeak import _LOCK, SpeechSynthesisError, _engine, _Engine, synthesise_isolated  # noqa: F401
from crossmedia.data.folder import read_meta
from crossmedia.data.karpathy import CaptionedImage, read_karpathy

__all__ = ["SAMPLE_RATE", "SpeechSynthesisError", "Speaker", "SpeechFormatError", "SpokenImage",
           "read_spoken_karpathy", "read_spoken_folder", "read_wav_folder", "verify_audio"]

SAMPLE_RATE = 16000  # of every spoken-caption corpus we read, and of what Speaker returns

class SpeechFormatError(ValueError):
    """A spoken-caption file is malformed; the message names the file, the entry (or line) and the field."""


@dataclass(frozen=True)
class SpokenImage(CaptionedImage):
    """An image, its captions and their recordings: ``audio[k]`` is the WAV of ``captions[k]`` (None: not spoken)."""

    audio: list[Path | None]


_SPEAKER_PROCESS: tuple[int, ProcessPoolExecutor] | None = None  # (owner pid, executor)


def _speaking_process() -> ProcessPoolExecutor:
    """This process's speaking process: one small spawned process (it imports only
    :mod:`crossmedia.data.espeak`) whose library is initialised once and never speaks; every
    utterance is synthesised in a child it forks. Forking it costs a millisecond, where forking
    this process (torch loaded, often 2 GB resident) cost tens and was most of a dataset's time."""
    global _SPEAKER_PROCESS
    if _SPEAKER_PROCESS is None or _SPEAKER_PROCESS[0] != os.getpid():  # none yet, or inherited by a fork
        _SPEAKER_PROCESS = (os.getpid(), ProcessPoolExecutor(max_workers=1,
                                                             mp_context=multiprocessing.get_context("spawn")))
    return _SPEAKER_PROCESS[1]


# helpers: reading


def _load(json_path: Path) -> Any:
    try:
        return json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SpeechFormatError(f"{json_path}: cannot be read as JSON ({error})") from error


# classes


class Speaker:
    """Text to speech with eSpeak NG: ``speak(text, voice, speed, pitch) -> (float32 waveform, 16000)``.

    The library is loaded and initialised once per process, on the first :meth:`speak` (many
    Speakers share it; calls are serialised by a lock). Deterministic: the same text, voice,
    speed and pitch give identical samples (see the module docstring).

    Args:
        sample_rate: rate of the returned waveforms (the library speaks at 22,050 Hz).
        isolate: synthesise each utterance in a forked child (default: wherever ``os.fork`` exists).
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, *, isolate: bool | None = None) -> None:
        self.sample_rate = int(sample_rate)
        self.isolate = hasattr(os, "fork") if isolate is None else bool(isolate)

    @property
    def library_rate(self) -> int:
        """The rate eSpeak NG synthesises at (22,050 Hz)."""
        with _LOCK:
            return _engine().rate

    def speak(self, text: str, voice: str = "en", speed: int = 160, pitch: int = 50) -> tuple[np.ndarray, int]:
        """``text`` spoken by ``voice`` at ``speed`` words per minute (80-450) and ``pitch`` (0-100).

        Returns (mono float32 waveform in [-1, 1], ``self.sample_rate``); int16 samples s become s / 32768.
        """
        request = self._checked(text, voice, speed, pitch)
        if self.isolate:
            return self._finish(request, *_speaking_process().submit(synthesise_isolated, request).result())
        with _LOCK:
            engine = _engine()
            status, samples = engine.synthesise(*request)
            rate = engine.rate
        return self._finish(request, status, samples, rate)

    def speak_many(self, requests: Iterable[tuple[str, str, int, int]]) -> Iterator[tuple[np.ndarray, int]]:
        """:meth:`speak` of each ``(text, voice, speed, pitch)``, in order: the same samples, sent to
        the speaking process in chunks (a dataset's thousands of utterances)."""
        requests = [self._checked(*request) for request in requests]
        if not self.isolate:
            yield from (self.speak(*request) for request in requests)
            return
        for request, result in zip(requests, _speaking_process().map(synthesise_isolated, requests, chunksize=32)):
            yield self._finish(request, *result)

    @staticmethod
    def _checked(text: str, voice: str, speed: int, pitch: int) -> tuple[str, str, int, int]:
        if not text.strip():
            raise ValueError("Speaker.speak needs some text, got an empty string")
        if not 80 <= speed <= 450 or not 0 <= pitch <= 100:
            raise ValueError(f"speed must be 80-450 words per minute and pitch 0-100, got speed={speed}, pitch={pitch}")
        return text, voice, int(speed), int(pitch)

    def _finish(self, request: tuple[str, str, int, int], status: int, samples: np.ndarray,
                rate: int) -> tuple[np.ndarray, int]:
        text, voice = request[:2]
        if status == 1:
            raise SpeechSynthesisError(f"eSpeak NG has no voice {voice!r}; use a language such as 'en', 'en-us', "
                                       f"'en-gb-scotland', optionally with a variant: 'en+f3', 'en-us+m3'")
        if status != 0 or len(samples) == 0:
            raise SpeechSynthesisError(f"eSpeak NG failed to speak {text!r} with voice {voice!r} (status {status})")
        waveform = samples.astype(np.float32) / np.float32(32768.0)
        return resample(waveform, rate, self.sample_rate), self.sample_rate


# functions


def read_spoken_karpathy(json_path: str | Path, image_root: str | Path | None = None,
                         audio_root: str | Path | None = None) -> list[SpokenImage]:
    """The images of a Karpathy split file whose sentences carry ``audio`` (a WAV path or null).

    Images, splits and captions are read by :func:`crossmedia.data.karpathy.read_karpathy` (same
    rules, same errors; ``image_root`` defaults to the JSON's folder). ``audio[k]`` is
    ``audio_root / sentences[k]["audio"]`` (``audio_root`` defaults to the JSON's folder), None
    when the field is null or absent. A file in which no sentence has audio, or an ``audio``
    that is not a string or null, raises :class:`SpeechFormatError` naming the file, the entry
    and the field. WAVs are not opened (:func:`verify_audio` does).
    """
    json_path = Path(json_path)
    audio_root = Path(audio_root) if audio_root is not None else json_path.parent
    records = read_karpathy(json_path, image_root=image_root)  # validates everything but the audio
    entries = _load(json_path)["images"]
    spoken, found = [], 0
    for index, (record, entry) in enumerate(zip(records, entries)):
        audio: list[Path | None] = []
        for k, sentence in enumerate(entry["sentences"]):
            value = sentence.get("audio")
            if value is not None and (not isinstance(value, str) or not value):
                raise SpeechFormatError(f"{json_path}: images[{index}] ({entry['filename']}) sentences[{k}] field "
                                        f"'audio' is {value!r}; it must be a WAV path relative to {audio_root} or null")
            audio.append(None if value is None else audio_root / value)
            found += value is not None
        spoken.append(SpokenImage(**vars(record), audio=audio))
    if not found:
        raise SpeechFormatError(f"{json_path}: no sentence has an 'audio' field; this is a caption file without "
                                f"speech (read it with crossmedia.data.karpathy.read_karpathy)")
    return spoken


def read_spoken_folder(root: str | Path) -> list[SpokenImage]:
    """The images of a prepared spoken-caption folder (e.g. ``data/spoken-scenes``), via its ``meta.json``.

    ``meta.json`` names the Karpathy file (``file``), the folder image paths start from
    (``image_root``) and the one audio paths start from (``audio_root``), each relative to ``root``
    unless absolute. Each record gives an image's path, split, captions and their WAVs.
    """
    root = Path(root)
    meta = read_meta(root)
    if meta is None or meta.get("format") != "karpathy" or "audio_root" not in meta:
        raise FileNotFoundError(f"{root} is not a prepared spoken-caption dataset (no meta.json with format "
                                f"'karpathy' and an 'audio_root'); prepare it with: crossmedia data prepare NAME")
    return read_spoken_karpathy(root / meta["file"], image_root=root / meta["image_root"],
                                audio_root=root / meta["audio_root"])


def read_wav_folder(folder: str | Path, records: Sequence[CaptionedImage], *, mapping: str = "wav2capt.txt",
                    wavs: str = "wavs") -> list[SpokenImage]:
    """``records`` with the WAVs of a Flickr8k-Audio-style ``folder`` attached: ``audio`` aligned with captions.

    Each line of ``folder / mapping`` is ``<wav file> <image file> #<k>``: ``folder / wavs / <wav
    file>`` speaks caption k (from 0) of the record whose image file name is ``<image file>``.
    Lines for images not in ``records`` (another split) are passed over; captions no line names
    get None. A malformed line, a k beyond the image's captions or a caption named twice raises
    :class:`SpeechFormatError` naming the file and the line number.
    """
    folder = Path(folder)
    mapping_file = folder / mapping
    if not mapping_file.is_file():
        raise FileNotFoundError(f"{mapping_file} does not exist; a spoken-caption folder holds {wavs}/ and {mapping} "
                                f"(lines '<wav file> <image file> #<k>', as in the Flickr8k Audio Caption Corpus)")
    by_name: dict[str, int] = {}
    for index, record in enumerate(records):
        if record.path.name in by_name:
            raise SpeechFormatError(f"two records share the image file name {record.path.name!r} "
                                    f"({records[by_name[record.path.name]].path}, {record.path}); {mapping_file} "
                                    f"names images by file name only")
        by_name[record.path.name] = index
    audio: list[list[Path | None]] = [[None] * len(record.captions) for record in records]
    with mapping_file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 3 or not fields[2].startswith("#") or not fields[2][1:].isdigit():
                raise SpeechFormatError(f"{mapping_file}:{number}: expected '<wav file> <image file> #<k>', got "
                                        f"{line.strip()!r}")
            wav_name, image_name, k = fields[0], fields[1], int(fields[2][1:])
            if image_name not in by_name:
                continue
            index = by_name[image_name]
            if k >= len(audio[index]):
                raise SpeechFormatError(f"{mapping_file}:{number}: {image_name} has {len(audio[index])} captions, "
                                        f"so #{k} names none of them")
            if audio[index][k] is not None:
                raise SpeechFormatError(f"{mapping_file}:{number}: caption #{k} of {image_name} already has "
                                        f"{audio[index][k]}; each caption has one recording")
            audio[index][k] = folder / wavs / wav_name
    return [SpokenImage(**vars(record), audio=paths) for record, paths in zip(records, audio)]


def verify_audio(records: Iterable[SpokenImage], *, progress: bool = False) -> int:
    """Open the header of every WAV the records name; returns how many. Raises naming the first bad file.

    A missing file raises :class:`FileNotFoundError`, a file that is not PCM WAV or holds no
    samples :class:`SpeechFormatError`; both name the image the recording belongs to.
    """
    checked = 0
    for record in tqdm(records, desc="checking audio", disable=not progress):
        for k, path in enumerate(record.audio):
            if path is None:
                continue
            if not path.is_file():
                raise FileNotFoundError(f"audio {path} (caption {k} of image {record.path.name}, image_id "
                                        f"{record.image_id!r}) does not exist; put it there or point audio_root "
                                        f"at the folder that holds it")
            try:
                with wave.open(str(path), "rb") as file:
                    if file.getnframes() == 0:
                        raise SpeechFormatError(f"audio {path} (caption {k} of image {record.path.name}) holds "
                                                f"no samples; replace it with the original")
            except (wave.Error, EOFError) as error:
                raise SpeechFormatError(f"audio {path} (caption {k} of image {record.path.name}) is not a PCM WAV "
                                        f"file ({error}); replace it with the original") from error
            checked += 1
    return checked
