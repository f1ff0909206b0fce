"""Audio for speech-to-image: PCM WAV files, resampling and log-mel features.

WAV files are read and written with the standard library's :mod:`wave` (PCM, 16-bit; 8-bit and
32-bit integer PCM are read too); stereo is averaged to mono and samples are scaled to [-1, 1)
(an int16 sample s becomes s / 32768). Spoken-caption corpora (Flickr8k Audio, SpokenCOCO, our
built-in ``spoken-scenes``) are 16 kHz mono PCM16.

Log-mel features follow the usual speech front end (e.g. Harwath et al., "Unsupervised Learning
of Spoken Language with Visual Context", NeurIPS 2016; DAVEnet uses 40 log-mel bands, 25 ms
windows, 10 ms hop). A waveform x of N samples is cut into frames of ``win = win_ms·sr/1000``
samples every ``hop = hop_ms·sr/1000`` samples, with no padding (``center=False``)::

    frames = 1 + (N - win) // hop        for N >= win (0 frames when N < win)

e.g. 1.0 s at 16 kHz, 25 ms / 10 ms: 1 + (16000 - 400) // 160 = 98. Each frame is multiplied by a
periodic Hann window of ``win`` samples, zero-padded to ``n_fft`` and transformed; its power
spectrum |X_k|², k = 0 .. n_fft/2 (bin k at f_k = k·sr/n_fft Hz), is projected onto ``n_mels``
triangular filters and logged: ``log(mel + 1e-6)``. (``torch.stft`` with ``center=False``
counts frames by ``n_fft``, not by the window length, so the frames are cut with ``unfold`` and
transformed with ``torch.fft.rfft``: the same spectrum, the documented frame count.)

The filterbank is HTK's: mel(f) = 2595 · log10(1 + f / 700). ``n_mels + 2`` points are spaced
evenly in mel from ``f_min`` to ``f_max`` (default 0 and sr/2) and mapped back to Hz, c_0 < c_1 <
... < c_{n_mels+1}; filter m (m = 1 .. n_mels, row m-1) is the triangle

    w_m(f) = (f - c_{m-1}) / (c_m - c_{m-1})    for c_{m-1} <= f <= c_m
           = (c_{m+1} - f) / (c_{m+1} - c_m)    for c_m <= f <= c_{m+1},     0 elsewhere,

peak 1 at its centre c_m (no area normalisation, as in HTK and Kaldi). Neighbouring triangles
cross at half height, so Σ_m w_m(f) = 1 for every f between c_1 and c_{n_mels}.
"""
from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["AudioFormatError", "read_wav", "write_wav", "resample", "hz_to_mel", "mel_to_hz", "mel_centres",
           "mel_filterbank", "mel_frames", "log_mel"]

_WIDTHS = {1: "8-bit", 2: "16-bit", 4: "32-bit"}


class AudioFormatError(ValueError):
    """An audio file is not a PCM WAV file we can read; the message names the file."""


# WAV files


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(mono float32 waveform in [-1, 1), sample rate in Hz) of a PCM WAV file.

    16-bit (and 8-bit unsigned, 32-bit signed) integer PCM is read; stereo and multi-channel
    audio is averaged to mono. Raises :class:`AudioFormatError` naming the file for anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist")
    try:
        with wave.open(str(path), "rb") as file:
            channels, width, rate, count = (file.getnchannels(), file.getsampwidth(), file.getframerate(),
                                            file.getnframes())
            data = file.readframes(count)
    except (wave.Error, EOFError) as error:
        raise AudioFormatError(f"{path}: not a PCM WAV file ({error}); convert it to 16-bit PCM WAV, e.g. "
                               f"ffmpeg -i IN -ac 1 -ar 16000 -acodec pcm_s16le OUT.wav") from error
    if width not in _WIDTHS:
        raise AudioFormatError(f"{path}: {8 * width}-bit samples are not supported (only "
                               f"{', '.join(_WIDTHS.values())} integer PCM); convert it to 16-bit PCM WAV")
    if width == 1:  # 8-bit WAV is unsigned, centred on 128
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        dtype, scale = (np.dtype("<i2"), 32768.0) if width == 2 else (np.dtype("<i4"), 2147483648.0)
        samples = np.frombuffer(data, dtype=dtype).astype(np.float32) / np.float32(scale)
    samples = samples[: len(samples) // channels * channels].reshape(-1, channels)
    return (samples[:, 0] if channels == 1 else samples.mean(axis=1)).astype(np.float32), rate


def write_wav(path: str | Path, waveform: np.ndarray | Tensor, sample_rate: int) -> Path:
    """Write a mono waveform (values in [-1, 1], clipped) as a 16-bit PCM WAV file; returns ``path``.

    A sample x becomes round(x · 32767) as int16, so :func:`read_wav` gives it back to within 1/32768.
    """
    path = Path(path)
    samples = np.asarray(waveform.detach().cpu() if isinstance(waveform, Tensor) else waveform, dtype=np.float64)
    if samples.ndim != 1:
        raise ValueError(f"write_wav writes mono audio: expected a 1-D waveform, got shape {samples.shape}")
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(int(sample_rate))
        file.writeframes(pcm.tobytes())
    return path


def resample(waveform: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """``waveform`` (1-D) at ``target_rate``: polyphase filtering (``scipy.signal.resample_poly``).

    The ratio target/source is reduced to p/q (22,050 -> 16,000 Hz is 320/441); the signal is
    upsampled by p, low-pass filtered with a Kaiser-windowed FIR (cut-off at the lower Nyquist
    rate) and downsampled by q. Output length ceil(N · p / q). Equal rates return a copy.
    """
    if sample_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {sample_rate} -> {target_rate}")
    waveform = np.asarray(waveform, dtype=np.float32)
    if sample_rate == target_rate:
        return waveform.copy()
    from scipy.signal import resample_poly  # scipy comes with scikit-learn

    ratio = Fraction(int(target_rate), int(sample_rate))
    return resample_poly(waveform, ratio.numerator, ratio.denominator).astype(np.float32)


# log-mel features


def hz_to_mel(hz: float | np.ndarray) -> float | np.ndarray:
    """HTK mel scale: 2595 · log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: float | np.ndarray) -> float | np.ndarray:
    """Inverse of :func:`hz_to_mel`: 700 · (10^(m / 2595) - 1)."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_centres(n_mels: int = 40, sample_rate: int = 16000, f_min: float = 0.0, f_max: float | None = None
                ) -> np.ndarray:
    """The ``n_mels + 2`` filter edges c_0 .. c_{n_mels+1} in Hz (evenly spaced in mel); centres are [1:-1]."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}, "
                         f"sample_rate={sample_rate}")
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))


def mel_filterbank(n_mels: int = 40, n_fft: int = 512, sample_rate: int = 16000, f_min: float = 0.0,
                   f_max: float | None = None) -> Tensor:
    """HTK triangular filters, float32 (n_mels, n_fft // 2 + 1); row m-1 is w_m at the FFT bin frequencies."""
    edges = mel_centres(n_mels, sample_rate, f_min, f_max)  # (n_mels + 2,)
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # (bins,)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1) each
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32))


def _frame_sizes(sample_rate: int, win_ms: float, hop_ms: float, n_fft: int) -> tuple[int, int]:
    win, hop = round(sample_rate * win_ms / 1000), round(sample_rate * hop_ms / 1000)
    if not 0 < win <= n_fft or hop <= 0:
        raise ValueError(f"window {win} samples ({win_ms} ms at {sample_rate} Hz) must be in 1..n_fft={n_fft} and the "
                         f"hop ({hop_ms} ms) positive; raise n_fft to at least {win}")
    return win, hop


def mel_frames(num_samples: int, sample_rate: int = 16000, win_ms: float = 25.0, hop_ms: float = 10.0,
               n_fft: int = 512) -> int:
    """Frames :func:`log_mel` gives for ``num_samples`` samples: 1 + (N - win) // hop, 0 when N < win."""
    win, hop = _frame_sizes(sample_rate, win_ms, hop_ms, n_fft)
    return 0 if num_samples < win else 1 + (num_samples - win) // hop


def log_mel(waveform: Tensor | np.ndarray, sample_rate: int = 16000, n_mels: int = 40, win_ms: float = 25.0,
            hop_ms: float = 10.0, n_fft: int = 512, f_min: float = 0.0, f_max: float | None = None) -> Tensor:
    """Log-mel spectrogram: (N,) -> (frames, n_mels) or (B, N) -> (B, frames, n_mels), float32.

    frames = :func:`mel_frames` (N) (no padding; see the module docstring for every step). A
    waveform shorter than one window gives 0 frames.
    """
    x = torch.as_tensor(waveform, dtype=torch.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"log_mel expects a waveform (N,) or a batch (B, N), got shape {tuple(x.shape)}")
    batched = x.ndim == 2
    x = x if batched else x[None]  # (B, N)
    win, hop = _frame_sizes(sample_rate, win_ms, hop_ms, n_fft)
    count = mel_frames(x.shape[1], sample_rate, win_ms, hop_ms, n_fft)
    fbank = mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max).to(x.device)  # (n_mels, bins)
    if count == 0:
        out = x.new_zeros(x.shape[0], 0, n_mels)
    else:
        frames = x[:, : win + (count - 1) * hop].unfold(1, win, hop)  # (B, frames, win)
        window = torch.hann_window(win, periodic=True, dtype=torch.float32, device=x.device)
        power = torch.fft.rfft(frames * window, n=n_fft).abs().pow(2)  # (B, frames, bins)
        out = torch.log(power @ fbank.T + 1e-6)  # (B, frames, n_mels)
    return out if batched else out[0]

