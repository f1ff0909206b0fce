"""The eSpeak NG library through :mod:`ctypes`, with nothing heavier than NumPy imported.

:mod:`crossmedia.data.speech` speaks through it (see its docstring for why every utterance is
synthesised in a forked child of a process whose library was initialised and never spoke). This
module is light on purpose: :func:`synthesise_isolated` runs in the worker processes that speak a
whole dataset in parallel (``Speaker.speak_many``), and forking a small worker per utterance costs
a millisecond where forking a large process (a test run or training job with torch loaded, 2 GB
resident) costs tens, which made that fork, not the synthesis, most of the time of a dataset.
"""
from __future__ import annotations

import ctypes
import os
import threading
import warnings
from typing import Any

import numpy as np

__all__ = ["SpeechSynthesisError", "synthesise_isolated"]

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


def synthesise_isolated(request: tuple[str, str, int, int]) -> tuple[int, np.ndarray, int]:
    """(status, int16 samples, library rate) of ``(text, voice, speed, pitch)``, synthesised in a
    child forked from this process (whose library never speaks): the same request gives the same samples."""
    with _LOCK:
        engine = _engine()
        status, samples = engine.synthesise_forked(*request) if hasattr(os, "fork") else engine.synthesise(*request)
        return status, samples, engine.rate
