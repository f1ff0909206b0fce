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
a few samples. For identical samples, every utterance is synthesised in a child process forked
from the parent, whose library was initialised once and has never spoken: each utterance starts
from the same state (about 15 ms per utterance for the fork). Where ``os.fork`` does not exist
(Windows) the parent speaks itself and repeated sentences may differ slightly.

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

import ctypes
import json
import os
import threading
import warnings
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from crossmedia.data.audio import resample
from crossmedia.data.folder import read_meta
from crossmedia.data.karpathy import CaptionedImage, read_karpathy

__all__ = ["SAMPLE_RATE", "SpeechSynthesisError", "Speaker", "SpeechFormatError", "SpokenImage",
           "read_spoken_karpathy", "read_spoken_folder", "read_wav_folder", "verify_audio"]

SAMPLE_RATE = 16000  # of every spoken-caption corpus we read, and of what Speaker returns

# eSpeak NG API constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3  # espeak_PARAMETER
_STATUS = {1: "buffer full", 2: "not found", -1: "internal error"}
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SpeechSynthesisError(RuntimeError):
    """eSpeak NG cannot be loaded or cannot speak a request; the message says why and the fix."""


class SpeechFormatError(ValueError):
    """A spoken-caption file is malformed; the message names the file, the entry (or line) and the field."""


@dataclass(frozen=True)
class SpokenImage(CaptionedImage):
    """An image, its captions and their recordings: ``audio[k]`` is the WAV of ``captions[k]`` (None: not spoken)."""

    audio: list[Path | None]


# helpers: the eSpeak NG library, loaded and initialised once per process


class _Engine:
    """The process's eSpeak NG library, initialised (never used to speak when utterances are forked)."""

    def __init__(self) -> None:
        library_path, data_path = self._locate()
        try:
            self.lib = ctypes.CDLL(library_path)
        except OSError as error:
            raise SpeechSynthesisError(f"cannot load the eSpeak NG library {library_path} ({error}); reinstall it: "
                                       f"pip install --force-reinstall espeakng-loader") from error
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        for name in ("espeak_SetVoiceByName", "espeak_SetParameter", "espeak_Synth", "espeak_Synchronize"):
            getattr(lib, name).restype = ctypes.c_int
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise SpeechSynthesisError(f"eSpeak NG ({library_path}) failed to initialise with its voice data "
                                       f"{data_path!r}; reinstall it: pip install --force-reinstall espeakng-loader")
        self.chunks: list[np.ndarray] = []
        self.callback = _SynthCallback(self._collect)  # kept referenced: the library calls it
        lib.espeak_SetSynthCallback(self.callback)

    @staticmethod
    def _locate() -> tuple[str, bytes | None]:
        try:
            import espeakng_loader
        except ImportError:
            from ctypes.util import find_library

            system = find_library("espeak-ng")
            if system is None:
                raise SpeechSynthesisError("eSpeak NG is not installed: pip install espeakng-loader (it bundles the "
                                           "library and its voices), or install libespeak-ng") from None
            return system, None
        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path().encode()

    def _collect(self, wav: Any, count: int, events: Any) -> int:
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0: go on synthesising

    def synthesise(self, text: str, voice: str, speed: int, pitch: int) -> tuple[int, np.ndarray]:
        """(status, int16 samples at ``self.rate``): status 0, or 1 for an unknown voice, 2 for a failed synthesis."""
        self.chunks = []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            return 1, np.zeros(0, np.int16)
        self.lib.espeak_SetParameter(_RATE, int(speed), 0)
        self.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        data = text.encode("utf-8")
        if self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
            return 2, np.zeros(0, np.int16)
        self.lib.espeak_Synchronize()
        return 0, np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)

    def synthesise_forked(self, text: str, voice: str, speed: int, pitch: int) -> tuple[int, np.ndarray]:
        """:meth:`synthesise` in a forked child, so this process's library state never changes."""
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():  # Python >= 3.12 warns on fork with threads; the child only runs eSpeak
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: speak, send (status, samples), exit without Python's clean-up
            code = 3
            try:
                os.close(read_end)
                status, samples = self.synthesise(text, voice, speed, pitch)
                payload = np.int64(status).tobytes() + samples.astype("<i2").tobytes()
                view = memoryview(payload)
                while view:
                    view = view[os.write(write_end, view):]
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        parts = []
        with os.fdopen(read_end, "rb") as pipe:
            while chunk := pipe.read(1 << 20):
                parts.append(chunk)
        _, exit_status = os.waitpid(pid, 0)
        payload = b"".join(parts)
        if exit_status != 0 or len(payload) < 8:
            return 2, np.zeros(0, np.int16)
        return int(np.frombuffer(payload[:8], np.int64)[0]), np.frombuffer(payload[8:], "<i2").copy()


_ENGINE: _Engine | None = None  # a forked process (a DataLoader worker) inherits it, still unused
_LOCK = threading.Lock()


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


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
        if not text.strip():
            raise ValueError("Speaker.speak needs some text, got an empty string")
        if not 80 <= speed <= 450 or not 0 <= pitch <= 100:
            raise ValueError(f"speed must be 80-450 words per minute and pitch 0-100, got speed={speed}, pitch={pitch}")
        with _LOCK:
            engine = _engine()
            run = engine.synthesise_forked if self.isolate else engine.synthesise
            status, samples = run(text, voice, speed, pitch)
            rate = engine.rate
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
