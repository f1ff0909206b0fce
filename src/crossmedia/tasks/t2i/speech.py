"""Speech-to-image: a spoken caption's log-mel spectrogram -> an audio embedding -> the text GAN's generator.

Following the speech-conditioned GANs that replace a text encoder by a speech encoder trained
into the text embedding space (e.g. Wang et al., "S2IGAN: Speech-to-Image Generation via Adversarial
Learning", arXiv 2005.06968, whose speech encoder is trained to match the image/text embedding
before the generator is trained on it), here the generator of a trained text-to-image entry
(``generator_from``, default ``t2i-cls``: its CA block and DCGAN generator) is reused frozen, and
only a convolutional audio encoder a(s) is trained, to land where the GAN's frozen text encoder
puts the same caption, φ(t):

    L = ‖a(s) − φ(t)‖² (mean over dimensions)  +  λ · InfoNCE(a(s), φ(t); τ)

The regression term puts a(s) in the distribution the generator was trained on; the contrastive
term (symmetric, in-batch negatives, :func:`~crossmedia.tasks.t2i.models.contrastive_loss`) keeps
captions that differ in one word apart. At inference ĉ = μ(a(s)) (CA in eval mode) and the
generator draws the image. The text GAN's encoder is a teacher during fit only and is not saved.

Shapes: mel (B, T, n_mels) log-mel frames (25 ms windows, 10 ms hop, 16 kHz), lengths (B,);
a(s), φ(t) (B, E); images (B, 3, S, S) in [-1, 1].
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.nn.conditioning import ConditioningAugmentation
from crossmedia.nn.dcgan import DCGANGenerator
from crossmedia.tasks.t2i.evaluation import GeneratorEvaluationHooks, item_noise
from crossmedia.tasks.t2i.models import AudioEncoder, contrastive_loss
from crossmedia.tasks.t2i.module import TextToImageGAN, to_pil

__all__ = ["SpeechToImage"]

_GAN_KEYS = ("text_dim", "cond_dim", "noise_dim", "g_base", "image_size", "ca")


class SpeechToImage(GeneratorEvaluationHooks, TaskModule):
    """Spoken caption -> image: a trained audio encoder in front of a frozen text-to-image generator.

    Args:
        generator_from: the zoo name of the text-to-image entry whose generator is reused.
        gan: the generator's shape (``text_dim``, ``cond_dim``, ``noise_dim``, ``g_base``,
            ``image_size``, ``ca``), filled in at fit (saved in the card).
        n_mels, channels: the audio front end and the encoder width.
        contrastive_weight, temperature: λ and τ of the loss.
        evaluator, scorer: as for the text GANs.
    """

    task = "t2i"
    summary = "speech-to-image: audio encoder (log-mel CNN) into the frozen t2i-cls generator"
    paper = {"title": "S2IGAN: Speech-to-Image Generation via Adversarial Learning", "arxiv": "2005.06968"}
    card_metrics = TextToImageGAN.card_metrics
    fit_hparams = ("gan",)
    inference = ("generate_from_audio",)

    def __init__(self, *, generator_from: str = "t2i-cls", gan: dict | None = None, n_mels: int = 40,
                 channels: int = 128, contrastive_weight: float = 1.0, temperature: float = 0.1, lr: float = 1e-3,
                 weight_decay: float = 1e-5, evaluator: str | None = "scene-tagger",
                 scorer: str | None = "t2i-encoder"):
        super().__init__()
        self.save_hyperparameters()
        self._eval = {}
        if gan is not None:
            self._build(gan)

    def _build(self, gan: dict) -> None:
        missing = [k for k in _GAN_KEYS if k not in gan]
        if missing:
            raise ValueError(f"SpeechToImage gan= lacks {', '.join(missing)} (fit fills it from generator_from)")
        self.hparams.gan = {k: gan[k] for k in _GAN_KEYS}
        g = self.hparams.gan
        self.audio_encoder = AudioEncoder(n_mels=self.hparams.n_mels, out_dim=g["text_dim"],
                                          channels=self.hparams.channels)
        self.condition = (ConditioningAugmentation(text_dim=g["text_dim"], cond_dim=g["cond_dim"]) if g["ca"]
                          else nn.Sequential(nn.Linear(g["text_dim"], g["cond_dim"]), nn.LeakyReLU(0.2)))
        self.generator = DCGANGenerator(g["cond_dim"], noise_dim=g["noise_dim"], base=g["g_base"],
                                        image_size=g["image_size"])
        self.condition.requires_grad_(False)
        self.generator.requires_grad_(False)

    def configure_model(self) -> None:
        if getattr(self, "_teacher", None) is not None or self._trainer is None or self.trainer.state.fn != "fit":
            return
        from crossmedia.core.registry import load

        self.adopt(load(self.hparams.generator_from))

    def adopt(self, teacher: TextToImageGAN) -> None:
        """Take ``teacher``'s condition block and generator (frozen copies, when not built yet) and keep
        the teacher itself, unsaved, for its text encoder: the target φ(t) of the audio encoder."""
        if not isinstance(teacher, TextToImageGAN):
            raise ValueError(f"generator_from={self.hparams.generator_from!r} is not a text-to-image GAN entry "
                             f"(t2i-cls, t2i-cgan), it builds {type(teacher).__name__}")
        if not hasattr(self, "generator"):
            self._build({k: teacher.hparams[k] for k in _GAN_KEYS})
            self.condition.load_state_dict(teacher.condition.state_dict())
            self.generator.load_state_dict(teacher.generator.state_dict())
        object.__setattr__(self, "_teacher", teacher.eval())  # not a submodule: not saved, not trained

    # inference API

    def embed_audio(self, mel: Tensor, lengths: Tensor) -> Tensor:
        """a(s) (B, E) of log-mel frames (B, T, n_mels) with their lengths (B,)."""
        return self.audio_encoder(mel.to(self.device), lengths.to(self.device)).float()

    def _images(self, embedding: Tensor, noise: Tensor) -> Tensor:
        with eval_mode(self):
            c = self.condition(embedding)
            c = c[0] if isinstance(c, tuple) else c  # CA in eval mode: ĉ = μ
            return self.generator(c, noise)

    @torch.no_grad()
    def generate_from_audio(self, audio, n: int = 1, seed: int | None = None) -> list:
        """``n`` PIL images per spoken caption. ``audio``: a WAV path, a list of paths, or a
        (waveform float array, sample_rate) tuple / list of them."""
        from crossmedia.data.audio import log_mel, read_wav

        items = audio if isinstance(audio, list) else [audio]
        mels = []
        for item in items:
            if isinstance(item, (str, Path)):
                waveform, rate = read_wav(item)
            elif isinstance(item, tuple) and len(item) == 2:
                waveform, rate = item
            else:
                raise TypeError(f"generate_from_audio takes WAV paths or (waveform, sample_rate) tuples, got "
                                f"{type(item).__name__}")
            mels.append(log_mel(torch.as_tensor(waveform, dtype=torch.float32), sample_rate=rate,
                                n_mels=self.hparams.n_mels))
        if n < 1:
            raise ValueError(f"n (images per caption) must be >= 1, got {n}")
        lengths = torch.tensor([len(m) for m in mels for _ in range(n)])
        batch = torch.zeros(len(lengths), int(lengths.max()), self.hparams.n_mels)
        for i, m in enumerate(m for m in mels for _ in range(n)):
            batch[i, : len(m)] = m
        rng = torch.Generator().manual_seed(seed) if seed is not None else None
        noise = torch.randn(len(lengths), self.hparams.gan["noise_dim"], generator=rng)
        with eval_mode(self):
            images = self._images(self.embed_audio(batch, lengths), noise.to(self.device))
        return to_pil(images)

    # training

    def _loss(self, batch: dict) -> tuple[Tensor, Tensor]:
        a = self.embed_audio(batch["mel"], batch["mel_lengths"])
        phi = self._teacher.to(self.device).text_embedding(batch["words"], batch["texts"])
        regression = F.mse_loss(a, phi)
        contrast = contrastive_loss(a, phi, temperature=self.hparams.temperature)
        return regression + self.hparams.contrastive_weight * contrast, regression

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss, regression = self._loss(batch)
        size = len(batch["index"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/regression", regression, batch_size=size)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.audio_encoder.parameters(), lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)

    # evaluation (shared with the text GANs)

    @property
    def image_size(self) -> int:
        """S of the generated images (the generator's)."""
        return int(self.hparams.gan["image_size"])

    def sample_images(self, batch: dict, sample: int) -> Tensor:
        """Images (B, 3, S, S) of a batch's spoken captions, noise seeded by (item index, sample)."""
        noise = item_noise(batch["index"], sample, self.hparams.gan["noise_dim"]).to(self.device)
        with eval_mode(self):
            return self._images(self.embed_audio(batch["mel"], batch["mel_lengths"]), noise)
