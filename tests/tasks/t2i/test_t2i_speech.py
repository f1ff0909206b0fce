"""Speech-to-image on tiny data: the audio encoder learns to land on the text embedding; generate_from_audio
gives PIL images from WAV files and waveforms; the teacher is not saved."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crossmedia.data.karpathy import Vocabulary
from crossmedia.tasks.t2i.module import GANINTCLS
from crossmedia.tasks.t2i.speech import SpeechToImage

VOCAB = [Vocabulary.EOS, Vocabulary.UNK, "a", "red", "blue", "green", "square"]


def _teacher():
    torch.manual_seed(0)
    return GANINTCLS(text_encoder="random", vocabulary=VOCAB, text_dim=32, word_dim=16, hidden=16, cond_dim=16,
                     noise_dim=8, g_base=8, d_base=8, image_size=16, evaluator=None, scorer=None).eval()


def _s2i():
    model = SpeechToImage(n_mels=8, channels=16, evaluator=None, scorer=None)
    model.adopt(_teacher())
    return model


def _batch(n=6):
    """Three 'spoken' colour words as distinct tones in the mel bands; their captions name the colour."""
    g = torch.Generator().manual_seed(0)
    names = ["red", "blue", "green"] * (n // 3)
    mel = 0.1 * torch.randn(n, 30, 8, generator=g)
    for i, name in enumerate(names):
        mel[i, :, ["red", "blue", "green"].index(name) * 2] += 3.0
    words = [["a", name, "square"] for name in names]
    return {"mel": mel, "mel_lengths": torch.full((n,), 30), "words": words, "texts": [" ".join(w) for w in words],
            "index": torch.arange(n)}


def test_audio_encoder_loss_falls_and_only_it_learns(descend, one_thread):
    model, batch = _s2i(), _batch()
    assert [n for n, p in model.named_parameters() if p.requires_grad] == \
        [n for n, _ in model.named_parameters() if n.startswith("audio_encoder.")]
    before = {k: v.clone() for k, v in model.generator.state_dict().items()}
    opt = model.configure_optimizers()
    losses = descend(lambda step: model._loss(batch)[0], opt, 40)
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(before[k], v) for k, v in model.generator.state_dict().items())
    assert not any(k.startswith("_teacher") for k in model.state_dict())  # the teacher is not saved


def test_generate_from_audio_takes_wav_files_and_waveforms(tmp_path):
    from crossmedia.data.audio import read_wav, write_wav

    model = _s2i().eval()
    wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    path = write_wav(tmp_path / "caption.wav", wave, 16000)
    images = model.generate_from_audio(str(path), n=3, seed=0)
    assert len(images) == 3 and all(isinstance(im, Image.Image) and im.size == (16, 16) for im in images)
    same = model.generate_from_audio(read_wav(path), n=3, seed=0)  # the file's PCM16 samples as a tuple
    assert [im.tobytes() for im in images] == [im.tobytes() for im in same]
    with pytest.raises(TypeError, match="WAV paths or"):
        model.generate_from_audio(42)


def test_a_teacher_that_is_not_a_text_gan_is_refused():
    with pytest.raises(ValueError, match="not a text-to-image GAN entry"):
        SpeechToImage(evaluator=None, scorer=None).adopt(torch.nn.Linear(2, 2))
