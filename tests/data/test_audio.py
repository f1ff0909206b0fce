"""WAV files, resampling and log-mel features (data/audio.py), checked with numbers."""
from __future__ import annotations

import wave

import numpy as np
import pytest
import torch

from crossmedia.data.audio import (AudioFormatError, hz_to_mel, log_mel, mel_centres, mel_filterbank, mel_frames,
                                   mel_to_hz, read_wav, resample, write_wav)


def _tone(hz: float, seconds: float = 1.0, sr: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def test_wav_round_trip_and_frame_count(tmp_path):
    tone = _tone(440.0)
    path = write_wav(tmp_path / "tone.wav", tone, 16000)
    waveform, sr = read_wav(path)
    assert sr == 16000 and waveform.dtype == np.float32 and waveform.shape == (16000,)
    assert np.abs(waveform - tone).max() <= 1 / 32767  # PCM16 quantisation
    assert log_mel(waveform).shape == (98, 40)  # 1 + (16000 - 400) // 160
    assert mel_frames(16000) == 98 and mel_frames(400) == 1 and mel_frames(399) == 0 and mel_frames(559) == 1
    assert mel_frames(560) == 2 and log_mel(np.zeros(399, np.float32)).shape == (0, 40)


def test_stereo_is_averaged_and_bad_files_are_named(tmp_path):
    left, right = np.array([1000, -2000, 300], "<i2"), np.array([3000, 0, -300], "<i2")
    with wave.open(str(tmp_path / "stereo.wav"), "wb") as file:
        file.setnchannels(2)
        file.setsampwidth(2)
        file.setframerate(8000)
        file.writeframes(np.stack([left, right], axis=1).tobytes())
    waveform, sr = read_wav(tmp_path / "stereo.wav")
    assert sr == 8000
    np.testing.assert_allclose(waveform, [2000 / 32768, -1000 / 32768, 0.0], atol=1e-7)

    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(AudioFormatError, match="notes.wav"):
        read_wav(tmp_path / "notes.wav")
    with wave.open(str(tmp_path / "24bit.wav"), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(3)
        file.setframerate(16000)
        file.writeframes(b"\0" * 30)
    with pytest.raises(AudioFormatError, match="24bit.wav.*24-bit"):
        read_wav(tmp_path / "24bit.wav")
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        read_wav(tmp_path / "missing.wav")


def test_filterbank_rows_are_htk_triangles():
    fbank = mel_filterbank(40, 512, 16000).numpy()  # (40, 257)
    assert fbank.shape == (40, 257) and fbank.min() == 0.0 and fbank.max() <= 1.0
    assert hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))
    assert mel_to_hz(hz_to_mel(1234.5)) == pytest.approx(1234.5)
    edges = mel_centres(40, 16000)
    assert edges[0] == 0 and edges[-1] == pytest.approx(8000) and np.allclose(np.diff(hz_to_mel(edges)), 2840.03 / 41,
                                                                             atol=0.01)
    freqs = np.arange(257) * 16000 / 512
    for m in (5, 20, 39):  # each row: zero outside (c_{m-1}, c_{m+1}), rises then falls, peak near its centre
        row = fbank[m]
        support = np.nonzero(row)[0]
        assert freqs[support].min() > edges[m] and freqs[support].max() < edges[m + 2]
        peak = support[row[support].argmax()]
        assert np.all(np.diff(row[support[0]:peak + 1]) > 0) and np.all(np.diff(row[peak:support[-1] + 1]) < 0)
        assert abs(freqs[peak] - edges[m + 1]) <= 16000 / 512
    inside = (freqs >= edges[1]) & (freqs <= edges[-2])
    np.testing.assert_allclose(fbank.sum(axis=0)[inside], 1.0, atol=1e-5)  # neighbours cross at half height


def test_a_1khz_tone_peaks_in_the_mel_bin_centred_nearest_1khz():
    features = log_mel(_tone(1000.0))  # (98, 40)
    centres = mel_centres(40, 16000)[1:-1]
    expected = int(np.abs(centres - 1000.0).argmin())
    assert (features.argmax(dim=1) == expected).all()
    assert features[:, expected].mean() - features.mean() > 5.0  # far above the other bands (log scale)
    assert log_mel(_tone(3000.0)).argmax(dim=1).mode().values.item() == int(np.abs(centres - 3000.0).argmin())


def test_batched_log_mel_matches_one_at_a_time():
    batch = torch.from_numpy(np.stack([_tone(500.0, 0.3), _tone(2000.0, 0.3)]))
    out = log_mel(batch)
    assert out.shape == (2, mel_frames(4800), 40)
    torch.testing.assert_close(out[1], log_mel(batch[1]))


def test_resample_keeps_a_tone_and_the_length_ratio():
    tone = _tone(440.0, 1.0, sr=22050)
    out = resample(tone, 22050, 16000)
    assert out.shape == (16000,) and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out[1000:-1000] * np.hanning(14000)))
    assert abs(spectrum.argmax() * 16000 / 14000 - 440.0) < 2.0
    np.testing.assert_array_equal(resample(tone, 22050, 22050), tone)
    with pytest.raises(ValueError, match="positive"):
        resample(tone, 0, 16000)
