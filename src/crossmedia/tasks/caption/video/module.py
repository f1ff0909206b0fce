"""ST-XlanV and XlanV video captioners (Huang et al., "Semantic Tag Augmented XlanV Model for Video
Captioning", ACM MM 2021) as caption-task LightningModules.

:class:`STXlanVModule` is a :class:`~crossmedia.tasks.caption.self_critical.SCSTModule` whose
"features" are the joined, per-stream encoded video streams of
:class:`~crossmedia.tasks.caption.video.models.STXlanVEncoder` and whose decoder is X-LAN's over
the cross-modal X-Linear encoder (:class:`~crossmedia.tasks.caption.video.models.CrossModalDecoder`).
Everything the image captioners do therefore holds unchanged: cross-entropy with label smoothing,
SCST with the CIDEr-D reward of the training references, greedy CIDEr-D validation, beam-search
test decoding scored by pycocoevalcap (``test/BLEU-4``, ``test/METEOR``, ``test/ROUGE-L``,
``test/CIDEr``).

One run trains one ``stage`` (later stages start from the earlier run with ``init_from``):

* ``"pretrain"``: ``tap_weight * L_TAP + mlm_weight * L_MLM + vcap_weight * L_VCAP``
  (:mod:`crossmedia.tasks.caption.video.pretrain`). TAP replaces a video's tags by another's with
  probability ``tap_prob`` and a 2-way head on the cross-modal ``[CLS]`` output says whether they
  were; MLM puts each of the K captions, BERT-masked, in the text stream and predicts the selected
  tokens from the cross-modal text outputs; VCAP is captioning (cross-entropy) with the text
  stream ``[CLS] [SEP]`` as at inference, so the decoder never sees the caption it writes.
* ``"xe"``: cross-entropy with label smoothing (``label_smoothing``, 0.1 by default);
* ``"scst"``: self-critical sequence training (greedy baseline, CIDEr-D reward), learning rate ``rl_lr``.

:class:`XlanVModule` is the same without the tag stream (``tags=False``: no tag embedding, tag
encoder or TAP head). :meth:`STXlanVModule.caption_video` captions video files or frame tensors.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info

from crossmedia.core.callbacks import run_dir
from crossmedia.core.init_from import remap_rows
from crossmedia.core.modes import eval_mode
from crossmedia.data.karpathy import Vocabulary
from crossmedia.tasks.caption.callbacks import CaptionSamples
from crossmedia.tasks.caption.module import CaptionModule
from crossmedia.tasks.caption.self_critical import SCSTModule
from crossmedia.tasks.caption.video.features import VideoFeatureExtractor, load_video_frames
from crossmedia.tasks.caption.video.models import CrossModalDecoder, PretrainHeads, STXlanVEncoder, text_tokens
from crossmedia.tasks.caption.video.pretrain import IGNORE_INDEX, mlm_mask, tap_replace

__all__ = ["STXlanVModule", "XlanVModule", "VideoCaptionSamples", "STAGES"]

STAGES = ("pretrain", "xe", "scst")
_IMAGE_ONLY = ["decoder", "backbone", "pretrained", "feature_dim"]  # CaptionModule's image-encoder arguments
_FIRST_RANDOM_WORD = 2  # MLM's random replacements skip <eos> (0, padding) and <unk> (1)


class VideoCaptionSamples(CaptionSamples):
    """After each validation epoch: ``num_images`` validation clips captioned by beam search, listed in
    ``samples/captions_epochNNN.txt`` with every reference, their video files copied to
    ``samples/clips_epochNNN/`` and logged as W&B videos captioned "model: ... | reference: ..."
    (data without video files: the text file alone)."""

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._batch is None:
            return
        with eval_mode(pl_module):
            seq = pl_module.generate(self._batch, beam_size=self.beam_size)
        captions = [pl_module.vocabulary.decode(row) for row in seq.tolist()]
        datamodule, index = trainer.datamodule, self._batch["index"].tolist()
        refs, records = datamodule.raw_references("val"), datamodule.split_records("val")
        folder = run_dir(trainer) / "samples"
        clips = folder / f"clips_epoch{trainer.current_epoch:03d}"
        clips.mkdir(parents=True, exist_ok=True)
        lines, videos, texts = [], [], []
        for i, caption in zip(index, captions):
            record = records[i]
            lines.append(f"{record.image_id}\tmodel: {caption}\treferences: {' | '.join(refs[i])}")
            if Path(record.path).is_file():
                videos.append(str(shutil.copyfile(record.path, clips / Path(record.path).name)))
                texts.append(f"model: {caption} | reference: {refs[i][0]}")
        (folder / f"captions_epoch{trainer.current_epoch:03d}.txt").write_text("\n".join(lines) + "\n")
        for logger in trainer.loggers if videos else ():
            if hasattr(logger, "log_video"):  # WandbLogger
                logger.log_video(key="samples/clips", videos=videos, step=trainer.global_step, caption=texts)


class STXlanVModule(SCSTModule):
    """ST-XlanV: appearance, motion and tag streams, cross-modal X-Linear encoder, X-LAN decoder (module docstring).

    Batches (:class:`~crossmedia.tasks.caption.video.data.VideoCaptionDataModule`): ``appearance``
    (B, Ta, Da) + ``appearance_mask``, ``motion`` (B, Tm, Dm) + ``motion_mask``, ``tags`` (B, 2),
    ``captions`` (B, K, L) in training, ``index`` (B,). ``appearance_dim``, ``motion_dim`` and
    ``tag_words`` (the tag vocabulary, id 0 = none) come from the data during fit when not given.
    """

    summary = "video captioning: ST-XlanV (semantic tags + X-Linear streams, TAP/MLM/VCAP pre-training)"
    paper = {"title": "Semantic Tag Augmented XlanV Model for Video Captioning", "arxiv": ""}  # ACM MM 2021
    card_metrics = [{"metric": m, "key": f"test/{m}", "split": "test"} for m in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")]
    fit_hparams = ("vocab", "tag_words", "appearance_dim", "motion_dim", "extractor")
    inference = ("caption_video",)
    # the stream encoders' global features (kept as in X-LAN's encoder, read only by the cross-modal
    # one) and, outside pre-training, the pre-training heads get no gradient by design
    ddp_find_unused_parameters = True

    def __init__(self, *, stage: Literal["pretrain", "xe", "scst"] = "xe", tags: bool = True,
                 tag_words: list[str] | None = None, appearance_dim: int | None = None, motion_dim: int | None = None,
                 heads: int = 8, stream_blocks: int = 2, cross_blocks: int = 2, att_dropout: float = 0.1,
                 max_positions: int = 64, tap_weight: float = 1.0, mlm_weight: float = 1.0, vcap_weight: float = 1.0,
                 tap_prob: float = 0.5, mlm_select: float = 0.15, label_smoothing: float = 0.1, test_beam: int = 4,
                 extractor: dict | None = None, frames: int = 16, fps: float = 8.0, image_size: int = 64,
                 **captioner):
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
        if stage == "pretrain" and not (tap_weight or mlm_weight or vcap_weight):
            raise ValueError("stage 'pretrain' needs at least one of tap_weight, mlm_weight, vcap_weight > 0")
        vocab = captioner.pop("vocab", None)
        captioner.pop("feature_dim", None)
        super().__init__(label_smoothing=label_smoothing, test_beam=test_beam, image_size=image_size,
                         feature_dim=0, rl_start_epoch=0, **captioner)  # feature_dim: no image encoder
        self.save_hyperparameters(ignore=_IMAGE_ONLY)
        self._extractor = None
        if vocab is not None:
            self._build(Vocabulary(vocab))

    # construction

    def _build(self, vocabulary: Vocabulary) -> None:
        h = self.hparams
        missing = [key for key in ("appearance_dim", "motion_dim") + (("tag_words",) if h.tags else ())
                   if h.get(key) is None]
        if missing:
            raise ValueError(f"{type(self).__name__} needs {', '.join(missing)}: give them as init args or train with "
                             "a VideoCaptionDataModule, whose feature files give them")
        self.vocabulary = vocabulary
        h.vocab = list(vocabulary.words)
        size = len(vocabulary)
        self.video = STXlanVEncoder(size, h.appearance_dim, h.motion_dim,
                                    tag_vocab_size=len(h.tag_words) if h.tags else None, dim=h.dim, heads=h.heads,
                                    blocks=h.stream_blocks, dropout=h.dropout, att_dropout=h.att_dropout,
                                    max_positions=h.max_positions)
        self.decoder = CrossModalDecoder(size, dim=h.dim, heads=h.heads, blocks=h.cross_blocks, dropout=h.dropout,
                                         att_dropout=h.att_dropout)
        self.pretrain_heads = PretrainHeads(size, h.dim, tap=h.tags)
        if h.stage != "pretrain":
            self.pretrain_heads.requires_grad_(False)

    def configure_model(self) -> None:
        """Take the feature widths and the tag vocabulary from the data when not given, then build as
        :meth:`CaptionModule.configure_model` does (vocabulary from the data, ``init_from``)."""
        datamodule = self._datamodule()
        if self.hparams.extractor is None and getattr(datamodule, "hparams", {}).get("extract_with") is not None:
            self.hparams.extractor = dict(datamodule.hparams.extract_with)  # the features' extractor, for caption_video
        if datamodule is not None and getattr(datamodule, "tag_words", None) is not None:
            h = self.hparams
            for key in ("appearance_dim", "motion_dim", "tag_words"):
                given, found = h.get(key), getattr(datamodule, key)
                if given is None:
                    h[key] = found
                elif key == "tag_words" and h.tags and list(given) != list(found):
                    self._read_tags_as(list(given), list(found))
                elif key != "tag_words" and given != found:
                    raise ValueError(f"the model reads {key}={given} but the data's features have {found}: "
                                     "use the features it was trained on")
        super().configure_model()

    def _read_tags_as(self, model_words: list[str], data_words: list[str]) -> None:
        """Data whose tags.json names other (or fewer) tag words than the model's tag vocabulary: its
        tag ids are read as the model's ids of the same words (:meth:`on_after_batch_transfer`); a
        word the model does not know is read as none (0). Said in one line."""
        index = {word: i for i, word in enumerate(model_words)}
        self._tag_map = torch.tensor([index.get(word, 0) for word in data_words], dtype=torch.long)
        unknown = [word for word in data_words[1:] if word not in index]
        rank_zero_info(f"video captioning: the data's {len(data_words) - 1} tag words are read in the model's "
                       f"tag vocabulary ({len(model_words) - 1} words)"
                       + (f"; not in it, read as none: {', '.join(unknown)}" if unknown else ""))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Data tag ids -> the model's (:meth:`_read_tags_as`), when the two tag vocabularies differ."""
        tag_map = getattr(self, "_tag_map", None)
        if tag_map is not None and isinstance(batch, dict) and "tags" in batch:
            batch["tags"] = tag_map.to(batch["tags"].device)[batch["tags"]]
        return batch

    def _take_vocabulary(self, vocabulary: Vocabulary, initial: tuple | None) -> tuple | None:
        """Fine-tuning on data with other words: rebuild for the data's vocabulary; starting weights
        (``init_from``) keep every tensor, and the rows of the words both vocabularies share in the
        V-row tensors (decoder embedding and output, MLM head) and in the text stream's V + 3 rows
        (the words, then ``[CLS]``, ``[SEP]``, ``[MASK]``)."""
        if initial is None:
            return super()._take_vocabulary(vocabulary, initial)
        old, new = list(self.vocabulary.words), list(vocabulary.words)
        self._build(vocabulary)
        target = self.state_dict()
        state, shared = remap_rows(initial[0], old, new, target)
        special = ["[CLS]", "[SEP]", "[MASK]"]
        state, _ = remap_rows(state, old + special, new + special, target)
        rank_zero_info(f"video captioning: the data's vocabulary ({len(new)} words) differs from that of "
                       f"{self.hparams.init_from} ({len(old)}): the word rows are rebuilt for it; {shared} shared "
                       f"words keep theirs and every other weight is loaded")
        return state, initial[1]

    # stages

    def in_rl(self) -> bool:
        return self.hparams.stage == "scst"

    def configure_callbacks(self):
        return [VideoCaptionSamples()]

    def lr_factor(self, epoch: int) -> float:
        """SCST: ``rl_lr / lr`` decayed every ``lr_decay_every`` epochs (RL from the first epoch: a
        ``scst`` run starts from the ``xe`` one); other stages: ``lr``'s decay."""
        h = self.hparams
        if self.in_rl():
            return h.rl_lr / h.lr * h.lr_decay ** (epoch // h.lr_decay_every)
        return CaptionModule.lr_factor(self, epoch)

    # encoding

    def features(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The joined encoded streams (B, N, dim) and their mask (B, N), text stream ``[CLS] [SEP]``."""
        parts = self.video.encode_video(batch)
        rows = batch["appearance"].shape[0]
        cls_id, sep_id, _ = self.video.special_ids()
        parts["text"] = self.video.encode_text(text_tokens(None, rows, cls_id, sep_id, batch["appearance"].device))
        return STXlanVEncoder.join(parts)

    # pre-training

    def pretrain_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The weighted pre-training losses of the batch: ``{"tap", "mlm", "vcap"}`` (those with weight > 0)."""
        h = self.hparams
        losses: dict[str, torch.Tensor] = {}
        if h.vcap_weight:
            losses["vcap"] = self.xe_loss(batch)
        tap = bool(h.tap_weight) and h.tags
        if not (tap or h.mlm_weight):
            return losses
        captions = batch["captions"]                                         # (B, K, L)
        rows, per_video, steps = captions.shape
        tags, labels = tap_replace(batch["tags"], h.tap_prob) if tap else (None, None)
        expand = torch.arange(rows, device=captions.device).repeat_interleave(per_video)
        parts = {name: (f[expand], m[expand]) for name, (f, m) in self.video.encode_video(batch, tags=tags).items()}
        words = captions.flatten(0, 1)                                       # (BK, L)
        cls_id, sep_id, mask_id = self.video.special_ids()
        targets = None
        if h.mlm_weight:
            words, targets = mlm_mask(words, len(self.vocabulary), mask_id, 0, select=h.mlm_select,
                                      random_from=min(_FIRST_RANDOM_WORD, len(self.vocabulary) - 1))
        text = text_tokens(words, 0, cls_id, sep_id)                         # (BK, L + 2)
        parts["text"] = self.video.encode_text(text)
        _, refined = self.decoder.refine(*STXlanVEncoder.join(parts))        # (BK, N, dim)
        text_out = refined[:, : text.shape[1]]                              # the text stream comes first
        if tap:
            losses["tap"] = F.cross_entropy(self.pretrain_heads.tap(text_out[:, 0]), labels[expand])
        if h.mlm_weight:
            logits = self.pretrain_heads.mlm(text_out[:, 1: steps + 1])      # (BK, L, V): word t at position t + 1
            if bool((targets != IGNORE_INDEX).any()):
                losses["mlm"] = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
            else:  # nothing selected in this batch: a zero that keeps the graph
                losses["mlm"] = logits.sum() * 0.0
        return losses

    def training_loss(self, batch: dict) -> torch.Tensor:
        if self.hparams.stage != "pretrain":
            return super().training_loss(batch)
        h = self.hparams
        weights = {"tap": h.tap_weight, "mlm": h.mlm_weight, "vcap": h.vcap_weight}
        losses = self.pretrain_losses(batch)
        for name, value in losses.items():
            self.log(f"train/{name}", value, batch_size=batch["index"].shape[0])
        return sum(weights[name] * value for name, value in losses.items())

    # inference

    def _frames(self, video) -> torch.Tensor:
        """A path (``frames`` frames spread evenly over the file, decoded with PyAV, as the features were
        extracted) or frames (T, H, W, 3) uint8, (T, 3, H, W) / (B, T, 3, H, W) float in [0, 1]
        -> (B, T, 3, S, S) float in [0, 1], S = ``image_size``."""
        h = self.hparams
        if isinstance(video, (str, Path)):
            video = torch.from_numpy(load_video_frames(video, h.frames, h.image_size))
        if not isinstance(video, torch.Tensor):
            raise TypeError("caption_video takes a video path or frames as a tensor: (T, H, W, 3) uint8, "
                            f"(T, 3, H, W) or (B, T, 3, H, W) float in [0, 1]; got {type(video).__name__}")
        if video.dtype == torch.uint8:
            if video.dim() != 4 or video.shape[-1] != 3:
                raise ValueError(f"uint8 frames must be (T, H, W, 3), got {tuple(video.shape)}")
            video = video.permute(0, 3, 1, 2).float() / 255.0
        if video.dim() == 4:
            video = video[None]
        if video.dim() != 5 or video.shape[2] != 3:
            raise ValueError(f"frames must be (T, 3, H, W) or (B, T, 3, H, W), got {tuple(video.shape)}")
        if video.shape[-2:] != (h.image_size, h.image_size):
            batch, steps = video.shape[:2]
            video = F.interpolate(video.flatten(0, 1).float(), size=(h.image_size, h.image_size), mode="bilinear",
                                  antialias=True, align_corners=False).clamp(0, 1).unflatten(0, (batch, steps))
        return video.float()

    def extractor(self):
        """The feature and tag extractor, :class:`crossmedia.tasks.caption.video.features.VideoFeatureExtractor`
        built from the ``extractor`` init args (None: its defaults, the zoo's tag networks), made on first use."""
        if self._extractor is None:
            self._extractor = VideoFeatureExtractor(**(self.hparams.extractor or {}))
            self._extractor.to(self.device)
        return self._extractor

    def stream_batch(self, streams) -> dict:
        """The extractor's output as a model batch.

        ``streams``: the extractor's output, a dict of ``appearance`` (B, T, Da), ``motion`` (B, S, Dm)
        and ``tags`` (a list of B dicts), or a list with one dict per clip (``appearance`` (T, Da), ``motion`` (S, Dm) arrays
        or tensors, ``tags`` ``{"content": word, "action": word, ...}``) or a dict of such lists.
        Tag words outside the model's tag vocabulary become 0 (none).
        """
        from crossmedia.data.features import pad_features

        if isinstance(streams, dict):  # the extractor's batched VideoFeatures
            keys = ("appearance", "motion", "tags")
            streams = [dict(zip(keys, values)) for values in zip(*(streams[key] for key in keys))]
        batch: dict = {"index": torch.arange(len(streams))}
        for name in ("appearance", "motion"):
            feats, mask = pad_features([torch.as_tensor(s[name]) for s in streams])
            batch[name], batch[f"{name}_mask"] = feats.to(self.device), mask.to(self.device)
        words = {word: i for i, word in enumerate(self.hparams.tag_words or [])}
        batch["tags"] = torch.tensor([[words.get(s["tags"].get(kind), 0) for kind in ("content", "action")]
                                      for s in streams], dtype=torch.long, device=self.device)
        return batch

    def caption_video(self, video, beam_size: int = 4, extractor=None) -> list[str]:
        """Captions of a video file (decoded with PyAV) or of frames, by beam search.

        ``video``: a path, or frames ((T, H, W, 3) uint8, (T, 3, H, W) or (B, T, 3, H, W) float in
        [0, 1]); frames are resized to ``image_size``. ``extractor``: a callable from frames
        (B, T, 3, S, S) to the streams :meth:`stream_batch` reads (default :meth:`extractor`).
        Returns one caption per clip.
        """
        frames = self._frames(video).to(self.device)
        extract = extractor if extractor is not None else self.extractor()
        with torch.no_grad():
            batch = self.stream_batch(extract(frames))
        with eval_mode(self):
            seq = self.generate(batch, beam_size=beam_size)
        return [self.vocabulary.decode(row) for row in seq.tolist()]


class XlanVModule(STXlanVModule):
    """XlanV: ST-XlanV without the tag stream (no tags, no TAP)."""

    summary = "video captioning: XlanV (X-Linear appearance and motion streams, no semantic tags)"

    def __init__(self, *, tags: bool = False, **kwargs):
        if tags:
            raise ValueError("XlanVModule has no tag stream; use STXlanVModule for tags=True")
        super().__init__(tags=False, **kwargs)
