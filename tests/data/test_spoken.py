"""Spoken captions: eSpeak NG synthesis, the built-in ``spoken-scenes`` and the spoken-caption readers."""
from __future__ import annotations

import hashlib
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from crossmedia.data import speech
from crossmedia.data.audio import log_mel, mel_frames, read_wav, write_wav
from crossmedia.data.builtin import scenes
from crossmedia.data.builtin.spoken_scenes import VOICES, make_spoken_scenes, spoken_scenes_ready, voice_of
from crossmedia.data.karpathy import CaptionedImage, read_caption_folder, read_karpathy, verify_images
from crossmedia.data.registry import ensure
from crossmedia.data import espeak
from crossmedia.data.speech import (Speaker, SpeechFormatError, SpeechSynthesisError, SpokenImage, read_spoken_folder,
                                    read_spoken_karpathy, read_wav_folder, verify_audio)

NUM_IMAGES = 12


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.wav"))}


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("data")
    return make_spoken_scenes(base / "spoken-scenes", seed=0, progress=False, num_images=NUM_IMAGES,
                              spoken_per_image=2)  # two per image: the aligned None slots are checked too


# synthesis


def test_speaker_says_a_short_caption_deterministically():
    speaker = Speaker()
    waveform, sr = speaker.speak("a red circle")
    assert sr == 16000 and waveform.dtype == np.float32 and speaker.library_rate == 22050
    assert 0.3 <= len(waveform) / sr <= 3.0
    assert np.abs(waveform).max() > 0.1 and np.sqrt(np.mean(waveform ** 2)) > 0.01  # not silence
    voiced = np.abs(waveform[: len(waveform) // 160 * 160]).reshape(-1, 160).max(axis=1) > 0.05  # 10 ms frames
    assert voiced.mean() > 0.3  # speech in at least 30 % of the 10 ms frames
    for _ in range(2):  # identical samples on every call, whatever was spoken in between
        np.testing.assert_array_equal(speaker.speak("a red circle")[0], waveform)
        speaker.speak("two blue squares above a star", voice="en+f3", speed=190, pitch=20)
    slow, fast = speaker.speak("a red circle", speed=100)[0], speaker.speak("a red circle", speed=300)[0]
    assert len(slow) > 1.5 * len(fast)
    other_voice = speaker.speak("a red circle", voice="en-us+m3")[0]
    assert len(other_voice) != len(waveform)


def test_speaker_errors_name_the_problem(monkeypatch):
    speaker = Speaker()
    with pytest.raises(SpeechSynthesisError, match="no voice 'klingon-xx'"):
        speaker.speak("a red circle", voice="klingon-xx")
    with pytest.raises(ValueError, match="speed must be 80-450"):
        speaker.speak("a red circle", speed=1000)
    with pytest.raises(ValueError, match="empty"):
        speaker.speak("  ")
    monkeypatch.setattr(espeak, "_ENGINE", None)  # the library this process would load (the speaking process's too)
    monkeypatch.setattr(espeak._Engine, "_locate", staticmethod(lambda: ("/nonexistent/libespeak-ng.so", None)))
    with pytest.raises(SpeechSynthesisError, match="cannot load the eSpeak NG library /nonexistent"):
        Speaker(isolate=False).speak("a red circle")


# the built-in spoken-scenes


def test_spoken_scenes_reads_as_images_captions_and_wavs(spoken):
    records = read_spoken_folder(spoken)
    assert len(records) == NUM_IMAGES and all(isinstance(r, SpokenImage) for r in records)
    assert [r.split for r in records] == ["train"] * 10 + ["val", "test"]
    scenes_root = spoken.parent / "scenes"
    assert records[4].path.resolve() == (scenes_root / "images" / "00004.png").resolve()
    assert records[4].audio[:2] == [spoken / "audio" / "00004_0.wav", spoken / "audio" / "00004_1.wav"]
    assert all(len(r.audio) == len(r.captions) == 5 and r.audio[2:] == [None] * 3 for r in records)
    assert verify_audio(records) == 2 * NUM_IMAGES
    verify_images(records)
    plain = read_karpathy(scenes_root / "dataset_scenes.json")
    assert [(r.captions, r.raw, r.split, r.image_id) for r in records] == \
           [(r.captions, r.raw, r.split, r.image_id) for r in plain]
    assert read_caption_folder(spoken)[4].path == records[4].path  # also a plain caption dataset
    meta = json.loads((spoken / "meta.json").read_text())
    assert meta["image_root"] == "../scenes" and meta["num_audio"] == 24 and meta["sample_rate"] == 16000


def test_spoken_wavs_are_the_captions_in_varied_voices(spoken):
    entries = json.loads((spoken / "dataset_scenes_spoken.json").read_text())["images"]
    seconds = []
    for entry in entries:
        for k, sentence in enumerate(entry["sentences"]):
            if k >= 2:
                assert (sentence["audio"], sentence["voice"], sentence["speed"]) == (None, None, None)
                continue
            assert (sentence["voice"], sentence["speed"], sentence["pitch"]) == voice_of(0, entry["imgid"], k)
            waveform, sr = read_wav(spoken / sentence["audio"])
            assert sr == 16000 and 0.5 < len(waveform) / sr < 6.0 and np.abs(waveform).max() > 0.1
            assert log_mel(waveform).shape == (mel_frames(len(waveform)), 40)
            seconds.append(len(waveform) / sr)
    voices = [s["voice"] for e in entries for s in e["sentences"][:2]]
    speeds = [s["speed"] for e in entries for s in e["sentences"][:2]]
    assert len(set(voices)) >= 5 and set(voices) <= set(VOICES) and min(speeds) >= 130 and max(speeds) <= 190
    assert len(set(speeds)) >= 10
    assert json.loads((spoken / "meta.json").read_text())["seconds_of_audio"] == pytest.approx(sum(seconds), abs=0.1)


def test_same_seed_gives_identical_wavs_and_another_seed_other_voices(spoken, tmp_path):
    again = make_spoken_scenes(tmp_path / "again", seed=0, progress=False, num_images=NUM_IMAGES,
                               scenes_root=spoken.parent / "scenes", spoken_per_image=2)
    assert _digests(again / "audio") == _digests(spoken / "audio")
    assert [voice_of(1, i, 0) for i in range(NUM_IMAGES)] != [voice_of(0, i, 0) for i in range(NUM_IMAGES)]


def test_ensure_builds_keeps_and_repairs_spoken_scenes(tmp_path, monkeypatch):
    monkeypatch.setattr(scenes, "NUM_IMAGES", 6)  # the default size, made small for the test
    root = ensure("spoken-scenes", tmp_path / "spoken-scenes", progress=False)
    assert spoken_scenes_ready(root) and len(read_spoken_folder(root)) == 6
    assert (tmp_path / "scenes" / "images" / "00005.png").is_file()  # the sibling scenes folder was made
    stamp, reference = (root / "meta.json").stat().st_mtime_ns, _digests(root / "audio")
    assert ensure("spoken-scenes", root, progress=False) == root and (root / "meta.json").stat().st_mtime_ns == stamp
    (root / "audio" / "00003_0.wav").unlink()  # incomplete: spoken again
    assert not spoken_scenes_ready(root)
    ensure("spoken-scenes", root, progress=False)
    assert _digests(root / "audio") == reference
    scenes.make_scenes(tmp_path / "scenes", seed=5, num_images=6, progress=False)  # the images changed: stale
    assert not spoken_scenes_ready(root)


# readers of the real layouts


def _karpathy(tmp_path: Path, audio: list[list]) -> Path:
    images = [{"filename": f"{i}.jpg", "split": "train", "imgid": i,
               "sentences": [{"tokens": ["a", "dog"], "raw": "A dog.", **({} if a is ... else {"audio": a})}
                             for a in row]} for i, row in enumerate(audio)]
    path = tmp_path / "dataset_spoken.json"
    path.write_text(json.dumps({"images": images}))
    return path


def test_read_spoken_karpathy_and_its_errors(tmp_path):
    path = _karpathy(tmp_path, [["wavs/0_0.wav", None], [..., "wavs/1_1.wav"]])
    records = read_spoken_karpathy(path, audio_root=tmp_path / "speech")
    assert records[0].audio == [tmp_path / "speech" / "wavs" / "0_0.wav", None]
    assert records[1].audio == [None, tmp_path / "speech" / "wavs" / "1_1.wav"]  # an absent field is None
    assert records[1].path == tmp_path / "1.jpg" and isinstance(records[1], CaptionedImage)
    with pytest.raises(FileNotFoundError, match=r"0_0.wav \(caption 0 of image 0.jpg"):
        verify_audio(records)
    (tmp_path / "speech" / "wavs").mkdir(parents=True)
    write_wav(tmp_path / "speech" / "wavs" / "0_0.wav", np.zeros(100, np.float32), 16000)
    (tmp_path / "speech" / "wavs" / "1_1.wav").write_bytes(b"RIFF....")
    with pytest.raises(SpeechFormatError, match="1_1.wav.*not a PCM WAV"):
        verify_audio(records)

    bad = _karpathy(tmp_path, [["a.wav", None], [None, 7]])
    with pytest.raises(SpeechFormatError, match=r"dataset_spoken.json: images\[1\] \(1.jpg\) sentences\[1\] "
                                                r"field 'audio' is 7"):
        read_spoken_karpathy(bad)
    with pytest.raises(SpeechFormatError, match="no sentence has an 'audio' field"):
        read_spoken_karpathy(_karpathy(tmp_path, [[..., ...]]))


def _records(names: list[str]) -> list[CaptionedImage]:
    return [CaptionedImage(path=Path("/images") / name, split="train", captions=[["a"]] * 5, raw=["A."] * 5,
                           image_id=name) for name in names]


def test_read_wav_folder_attaches_flickr8k_audio(tmp_path):
    (tmp_path / "wavs").mkdir()
    (tmp_path / "wav2capt.txt").write_text(
        "1000268201_693b08cb0e_0.wav 1000268201_693b08cb0e.jpg #0\n"
        "1000268201_693b08cb0e_3.wav 1000268201_693b08cb0e.jpg #3\n"
        "\n"
        "1001773457_577c3a7d70_1.wav 1001773457_577c3a7d70.jpg #1\n"
        "99999_other_split_0.wav 99999_other_split.jpg #0\n")
    records = read_wav_folder(tmp_path, _records(["1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg"]))
    wavs = tmp_path / "wavs"
    assert records[0].audio == [wavs / "1000268201_693b08cb0e_0.wav", None, None, wavs / "1000268201_693b08cb0e_3.wav",
                                None]
    assert records[1].audio == [None, wavs / "1001773457_577c3a7d70_1.wav", None, None, None]
    assert records[1].raw == ["A."] * 5 and records[1].image_id == "1001773457_577c3a7d70.jpg"


@pytest.mark.parametrize("line, message", [
    ("a.wav a.jpg 0", r"wav2capt.txt:2: expected '<wav file> <image file> #<k>'"),
    ("a.wav a.jpg", r"wav2capt.txt:2: expected"),
    ("a.wav a.jpg #5", r"wav2capt.txt:2: a.jpg has 5 captions, so #5 names none"),
    ("b.wav a.jpg #0", r"wav2capt.txt:2: caption #0 of a.jpg already has .*a.wav"),
])
def test_read_wav_folder_names_the_bad_line(tmp_path, line, message):
    (tmp_path / "wav2capt.txt").write_text(f"a.wav a.jpg #0\n{line}\n")
    with pytest.raises(SpeechFormatError, match=message):
        read_wav_folder(tmp_path, _records(["a.jpg"]))
    with pytest.raises(FileNotFoundError, match="elsewhere.*wav2capt.txt does not exist"):
        read_wav_folder(tmp_path / "elsewhere", _records(["a.jpg"]))


def test_wav_headers_are_read_by_verify_audio(tmp_path):
    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(16000)
    record = SpokenImage(path=tmp_path / "x.png", split="train", captions=[["a"]], raw=["a"], image_id=0,
                         audio=[path])
    with pytest.raises(SpeechFormatError, match="empty.wav .*holds no samples"):
        verify_audio([record])
