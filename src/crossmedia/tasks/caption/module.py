"""Captioning LightningModules: cross-entropy (:class:`CaptionModule`), then self-critical RL
(:class:`SCSTModule`, :class:`SCNSTModule` in :mod:`crossmedia.tasks.caption.self_critical`).

:class:`CaptionModule` holds what every captioner shares: a grid/region encoder (or precomputed
features) with an Up-Down or X-LAN decoder, cross-entropy training on the K reference captions of
each image (optional label smoothing; optional scheduled sampling, whose probability starts at
``ss_start`` epochs and grows by ``ss_increase`` every ``ss_every`` epochs up to ``ss_max``), the
learning-rate step decay (``lr_decay`` every ``lr_decay_every`` epochs), evaluation, and
:meth:`~CaptionModule.caption` for PIL images.

Where training starts: ``init_from`` (the whole captioner: a zoo name, ``.safetensors`` or
``.ckpt``, read by :mod:`crossmedia.core.init_from`; how the RL entries start from the XE one) or
``encoder_from`` (only the image encoder, e.g. the built-in ``scene-tagger`` of
:mod:`crossmedia.tasks.caption.tagger`, as real captioners start from an ImageNet or bottom-up
encoder). Both are applied in ``fit`` only.

Validation decodes greedily (``val_beam``) and logs our CIDEr-D as ``val/CIDEr``; the test loop
decodes with beam search (``test_beam``) and logs pycocoevalcap's BLEU-1..4, METEOR, ROUGE-L and
CIDEr (PTB tokenizer) as ``test/<metric>``, and on data with ground-truth objects the scene checks
of :mod:`crossmedia.tasks.caption.scene_metrics` (word precision, object errors and recall). Both
are :class:`~crossmedia.tasks.caption.metrics.CaptionMetric` s built in ``setup`` from the data
module's :class:`~crossmedia.tasks.caption.data.CaptionData` interface.
"""
from __future__ import annotations

from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info

from crossmedia.core.init_from import initial_weights, remap_rows, with_prefix
from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.data.karpathy import Vocabulary
from crossmedia.metrics.gather import gather_by_index
from crossmedia.nn.decoding import beam_search, decode, sequence_mask, tree_index
from crossmedia.tasks.caption.data import CaptionData, image_tensor
from crossmedia.tasks.caption.metrics import CaptionMetric
from crossmedia.tasks.caption.models import GridEncoder, build_decoder

__all__ = ["CaptionModule"]

_SCENE_METRICS = {"colour-word precision": "colour_precision", "shape-word precision": "shape_precision",
                  "object errors per caption": "object_errors", "object recall": "object_recall"}


class CaptionModule(TaskModule):
    """Image captioning: grid/region encoder + Up-Down or X-LAN decoder, trained with cross-entropy."""

    task = "caption"
    summary = "image captioning"
    paper = {"title": "Bottom-Up and Top-Down Attention for Image Captioning and Visual Question Answering",
             "arxiv": "1707.07998"}
    card_metrics = [{"metric": m, "key": f"test/{m}", "split": "test"} for m in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")] + [
        # on data with ground-truth objects (the built-in scenes): are the caption's words true?
        {"metric": metric, "key": f"test/{key}", "split": "test", "optional": True}
        for metric, key in _SCENE_METRICS.items()]
    fit_hparams = ("vocab",)  # filled in from the data during fit; export copies them into the card
    inference = ("caption",)

    def __init__(self, *, vocab: list[str] | None = None, decoder: Literal["updown", "xlan"] = "updown",
                 backbone: str = "resnet18", pretrained: bool = False, stage: int = 2, feature_dim: int | None = None,
                 image_size: int = 64, dim: int = 256, dropout: float = 0.3, max_len: int = 16,
                 lr: float = 5e-4, weight_decay: float = 0.0, lr_decay: float = 0.8, lr_decay_every: int = 3,
                 label_smoothing: float = 0.0, ss_start: int = -1, ss_every: int = 5, ss_increase: float = 0.05,
                 ss_max: float = 0.25, val_beam: int = 1, test_beam: int = 3, length_penalty: float = 0.0,
                 spice: bool = False, init_from: str | None = None, encoder_from: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        if init_from and encoder_from:
            raise ValueError("give init_from (the whole captioner) or encoder_from (only its image encoder), not both")
        self.encoder = None if feature_dim is not None else GridEncoder(backbone, pretrained=pretrained, stage=stage)
        self.feat_dim = feature_dim if feature_dim is not None else self.encoder.dim
        self.vocabulary: Vocabulary | None = None
        self.decoder = None
        if vocab is not None:
            self._build(Vocabulary(vocab))
        self.val_metric: CaptionMetric | None = None
        self.test_metric: CaptionMetric | None = None

    # construction

    def _build(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.hparams.vocab = list(vocabulary.words)
        extra = {"dim": self.hparams.dim, "dropout": self.hparams.dropout}
        self.decoder = build_decoder(self.hparams.decoder, len(vocabulary), self.feat_dim, **extra)

    def _initial_weights(self) -> tuple[dict, list[str] | None]:
        """(state dict, vocabulary or None) named by ``init_from`` (see :mod:`crossmedia.core.init_from`)."""
        start = initial_weights(self.hparams.init_from, "init_from")
        if start.model is not None and not isinstance(start.model, CaptionModule):
            raise ValueError(f"init_from: zoo entry {self.hparams.init_from!r} is a {type(start.model).__name__}, "
                             "not a captioner (to start only the image encoder from it, use encoder_from)")
        vocab = list(start.model.vocabulary.words) if start.model is not None else start.hparams.get("vocab")
        return start.state, vocab

    def _load_encoder(self) -> None:
        """Start the image encoder from ``encoder_from``'s ``encoder.*`` weights (e.g. ``scene-tagger``)."""
        source = self.hparams.encoder_from
        if self.encoder is None:
            raise ValueError("encoder_from: this model reads precomputed features (feature_dim is set) and has "
                             "no image encoder to start from weights")
        encoder = with_prefix(initial_weights(source, "encoder_from").state, "encoder.")
        if not encoder:
            raise ValueError(f"encoder_from: {source!r} has no image encoder weights (no 'encoder.*' keys)")
        try:
            self.encoder.load_state_dict(encoder, strict=True)
        except RuntimeError as error:
            raise ValueError(f"encoder_from: {source!r} does not fit this model's encoder (backbone "
                             f"{self.hparams.backbone!r}, stage {self.hparams.stage}); give the same backbone "
                             f"and stage as the model it comes from. {error}") from None

    def _datamodule(self) -> CaptionData | None:
        """The trainer's data module when it offers the :class:`CaptionData` interface, else None."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return datamodule if isinstance(datamodule, CaptionData) else None

    def _fitting(self) -> bool:
        return self._trainer is None or self._trainer.state.fn == "fit"

    def configure_model(self) -> None:
        """Build the decoder from the data's vocabulary when the module was created without one;
        with ``init_from``, start training from those weights (and their vocabulary), with
        ``encoder_from`` start the image encoder from that model's. Only ``fit`` starts from them:
        validating or testing a trained model (``zoo eval``) keeps its weights."""
        initial = None
        fitting = self._fitting()
        if self.hparams.init_from and fitting and not getattr(self, "_initialised", False):
            initial = self._initial_weights()
            if initial[1] is not None and self.decoder is None:
                self._build(Vocabulary(initial[1]))
        datamodule = self._datamodule()
        data_vocabulary = datamodule.vocabulary if datamodule is not None else None
        if self.decoder is None:
            if data_vocabulary is None:
                raise RuntimeError("CaptionModule has no vocabulary: pass vocab=[...] or train with a "
                                   "CaptionDataModule, whose training captions give one")
            self._build(data_vocabulary)
        elif data_vocabulary is not None and list(data_vocabulary.words) != list(self.vocabulary.words):
            if not fitting:  # a trained decoder is evaluated on the words it was trained on, or not at all
                raise ValueError(f"the model's vocabulary ({len(self.vocabulary)} words) differs from the one the data "
                                 f"builds from its training captions ({len(data_vocabulary)}): evaluate it on the data "
                                 f"it was trained on, or fine-tune it on this data first (fit rebuilds the vocabulary)")
            initial = self._take_vocabulary(data_vocabulary, initial)
        if initial is not None:
            self.load_state_dict(initial[0], strict=True)
            self._initialised = True
        elif self.hparams.encoder_from and fitting and not getattr(self, "_initialised", False):
            self._load_encoder()
            self._initialised = True  # a resumed run's checkpoint is restored after this, as usual

    def _take_vocabulary(self, vocabulary: Vocabulary, initial: tuple | None) -> tuple | None:
        """Fine-tuning on data with other words: rebuild the decoder for the data's vocabulary; the
        starting weights (if any) keep every tensor, and their word rows for the words both share."""
        old = list(self.vocabulary.words)
        self._build(vocabulary)
        if initial is None:
            kept = "no starting weights, so nothing else changes"
        else:
            state, shared = remap_rows(initial[0], old, list(vocabulary.words), self.state_dict())
            initial = (state, initial[1])
            kept = f"{shared} shared words keep their rows and every other weight is loaded"
        rank_zero_info(f"caption: the data's vocabulary ({len(vocabulary)} words) differs from the model's "
                       f"({len(old)}): the decoder's word embedding and output layer are rebuilt for it; {kept}")
        return initial

    def setup(self, stage: str) -> None:
        """The evaluation metrics, from the data module's references (and scene objects, if any)."""
        datamodule = self._datamodule()
        if datamodule is None:
            return
        metric = partial(CaptionMetric, decode=self._decode, gather=partial(gather_by_index, self),
                         max_len=self.hparams.max_len)
        if stage in ("fit", "validate"):
            self.val_metric = metric(references=datamodule.token_references("val"), protocol="cider")
        if stage == "test":
            self.test_metric = metric(references=datamodule.raw_references("test"), protocol="coco",
                                      objects=datamodule.scene_objects("test"), spice=self.hparams.spice)

    def _decode(self, row: list[int]) -> str:
        return self.vocabulary.decode(row)  # the vocabulary may only come in configure_model, after setup

    def lr_factor(self, epoch: int) -> float:
        """The learning rate of ``epoch`` as a multiple of ``lr``: ``lr_decay ** (epoch // lr_decay_every)``."""
        return self.hparams.lr_decay ** (epoch // self.hparams.lr_decay_every)

    def configure_optimizers(self):
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)}

    # encoding / decoding

    def in_rl(self) -> bool:
        """Whether this epoch trains by reinforcement learning (never, for the cross-entropy module)."""
        return False

    def features(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Region features (B, N, D) and their mask (B, N) or None (all valid) of a batch."""
        if "feats" in batch:
            if self.encoder is not None:
                raise ValueError("the batch holds precomputed features but the model encodes images: build it with "
                                 "feature_dim=D (the feature width) to train on features")
            return batch["feats"], batch.get("mask")
        if self.encoder is None:
            raise ValueError("the batch holds images but the model was built for precomputed features "
                             "(feature_dim is set): give the data module features=PATH or drop feature_dim")
        return self.encoder(batch["images"]), None

    def _encoded(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.features(batch)

    def generate(self, batch: dict, *, beam_size: int = 1, sample: bool = False, temperature: float = 1.0) -> torch.Tensor:
        """Token ids (B, L) of greedy (beam 1), beam-search or sampled captions, without gradient."""
        with torch.no_grad():
            ctx = self.decoder.prepare(*self.features(batch))
            state = self.decoder.init_state(ctx)
            if beam_size > 1:
                seq, _ = beam_search(self.decoder.step, state, ctx, beam_size=beam_size, max_len=self.hparams.max_len,
                                     length_penalty=self.hparams.length_penalty)
                return seq                                                   # (B, L)
            return decode(self.decoder.step, state, ctx, max_len=self.hparams.max_len, sample=sample,
                          temperature=temperature).seq                       # (B, L)

    def preprocess(self, images) -> dict:
        """PIL images (or a (B, 3, H, W) tensor normalised to [-1, 1]) as a batch ``{"images": (B, 3, S, S)}``."""
        from PIL import Image

        if isinstance(images, torch.Tensor):
            return {"images": (images[None] if images.dim() == 3 else images).to(self.device)}
        items = [images] if isinstance(images, Image.Image) else list(images)
        if not all(isinstance(image, Image.Image) for image in items):
            raise TypeError("caption() takes PIL images or a (B, 3, H, W) tensor normalised to [-1, 1]")
        return {"images": torch.stack([image_tensor(image, self.hparams.image_size) for image in items]).to(self.device)}

    def caption(self, images, beam_size: int = 3) -> list[str]:
        """Captions for PIL images (or a normalised tensor batch), by beam search."""
        if self.encoder is None:
            raise ValueError("this model reads precomputed features; call generate({'feats': ..., 'mask': ...})")
        with eval_mode(self):
            seq = self.generate(self.preprocess(images), beam_size=beam_size)
        return [self.vocabulary.decode(row) for row in seq.tolist()]

    # training: cross-entropy

    def xe_loss(self, batch: dict) -> torch.Tensor:
        """Mean token cross-entropy of the K reference captions per image (teacher forcing; with
        scheduled sampling a word is replaced by one sampled from the previous step's output)."""
        ctx = self.decoder.prepare(*self._encoded(batch))
        captions = batch["captions"]                                   # (B, K, L)
        per_image, steps = captions.shape[1], captions.shape[2]
        ctx = tree_index(ctx, torch.arange(captions.shape[0], device=self.device).repeat_interleave(per_image))
        targets = captions.flatten(0, 1)                               # (BK, L)
        inputs = torch.cat([targets.new_zeros(targets.shape[0], 1), targets[:, :-1]], 1)  # (BK, L): <bos>=0 then words
        state = self.decoder.init_state(ctx)
        ss = self.scheduled_sampling_prob()
        log_probs, previous = [], None
        for t in range(steps):
            words = inputs[:, t]                                       # (BK,)
            if ss > 0 and previous is not None:
                swap = torch.rand(words.shape, device=self.device) < ss
                sampled = torch.multinomial(previous.detach().exp(), 1).squeeze(1)
                words = torch.where(swap, sampled, words)
            previous, state = self.decoder.step(words, state, ctx)     # (BK, V)
            log_probs.append(previous)
        log_probs = torch.stack(log_probs, 1)                          # (BK, L, V)
        mask = sequence_mask(targets).float()                          # (BK, L)
        nll = F.nll_loss(log_probs.flatten(0, 1), targets.flatten(), reduction="none").view_as(mask)
        if self.hparams.label_smoothing:
            eps = self.hparams.label_smoothing
            nll = (1 - eps) * nll - eps * log_probs.mean(-1)
        return (nll * mask).sum() / mask.sum()

    def scheduled_sampling_prob(self) -> float:
        h = self.hparams
        if h.ss_start < 0 or self.current_epoch < h.ss_start:
            return 0.0
        return min(h.ss_increase * ((self.current_epoch - h.ss_start) // h.ss_every + 1), h.ss_max)

    def training_loss(self, batch: dict) -> torch.Tensor:
        """This epoch's loss (cross-entropy here; the self-critical modules switch to RL)."""
        return self.xe_loss(batch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["index"].shape[0])
        self.log("train/rl", float(self.in_rl()), batch_size=batch["index"].shape[0])
        return loss

    def configure_callbacks(self):
        from crossmedia.tasks.caption.callbacks import CaptionSamples

        return [CaptionSamples()]

    # evaluation

    def _metric(self, split: str) -> CaptionMetric:
        metric = self.val_metric if split == "val" else self.test_metric
        if metric is None:
            raise RuntimeError(f"CaptionModule scores its {split} captions against the data module's references: "
                               "evaluate with a data module offering crossmedia.tasks.caption.data.CaptionData "
                               "(e.g. CaptionDataModule), not bare dataloaders")
        return metric

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._metric("val").update(self.generate(batch, beam_size=self.hparams.val_beam), batch["index"])

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metric.compute()
        self.val_metric.reset()
        if self.trainer.sanity_checking or not scores:
            return
        self.log("val/CIDEr", scores["CIDEr"], prog_bar=True, sync_dist=False)
        self.last_samples = self.val_metric.samples

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._metric("test").update(self.generate(batch, beam_size=self.hparams.test_beam), batch["index"])

    def on_test_epoch_end(self) -> None:
        scores = self.test_metric.compute()
        self.test_metric.reset()
        for name, value in scores.items():
            self.log(f"test/{name}", float(value), sync_dist=False)
        self.last_samples = self.test_metric.samples
