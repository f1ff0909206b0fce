"""The captioning LightningModule: cross-entropy, then self-critical reinforcement learning.

One module trains every stage, switched by epoch as in the self-critical captioning code:

* epochs ``< rl_start_epoch`` (or all, when it is ``None``): cross-entropy on the K reference
  captions of each image (optional label smoothing; optional scheduled sampling, whose
  probability starts at ``ss_start`` epochs and grows by ``ss_increase`` every ``ss_every`` epochs
  up to ``ss_max``);
* epochs ``>= rl_start_epoch``: ``rl="scst"`` (reward minus the greedy caption's reward, or with
  ``baseline="mean"`` minus the mean of the other samples) or ``rl="scnst"`` (per-token n-step
  advantages from prefix rollouts: ``rollout="greedy"`` or ``"mc"`` with ``rollout_samples``
  completions). The reward is CIDEr-D with document frequencies of the training references.
  The image encoder is frozen during RL unless ``rl_train_encoder``.

Where training starts: ``init_from`` (the whole captioner: a zoo name, ``.safetensors`` or
``.ckpt``; how the RL entries start from the XE one) or ``encoder_from`` (only the image encoder,
e.g. the built-in ``scene-tagger`` of :mod:`crossmedia.tasks.caption.tagger`, as real captioners
start from an ImageNet or bottom-up encoder). Both are applied in ``fit`` only.

Validation decodes greedily (``val_beam``) and logs our CIDEr-D as ``val/CIDEr``; the test loop
decodes with beam search (``test_beam``) and logs pycocoevalcap's BLEU-1..4, METEOR, ROUGE-L and
CIDEr (PTB tokenizer) as ``test/<metric>``. :meth:`CaptionModule.caption` captions PIL images.
"""
from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from crossmedia.data.karpathy import Vocabulary
from crossmedia.nn.decoding import beam_search, decode, sequence_mask, tree_index
from crossmedia.tasks.caption.data import gather_by_index, image_tensor
from crossmedia.tasks.caption.models import GridEncoder, build_decoder
from crossmedia.tasks.caption.rl import (nstep_advantage, policy_gradient_loss, prefix_rollouts, q_table,
                                         scst_advantage)

__all__ = ["CaptionModule"]

_TEST_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


class CaptionModule(pl.LightningModule):
    """Image captioning: grid/region encoder + Up-Down or X-LAN decoder, XE -> SCST / SCNST."""

    task = "caption"
    summary = "image captioning"
    paper = {"title": "Self-critical n-step Training for Image Captioning", "arxiv": "1904.06861"}
    card_metrics = [{"metric": m, "key": f"test/{m}", "split": "test"} for m in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")] + [
        # on data with ground-truth objects (the built-in scenes): are the caption's words true?
        {"metric": f"{kind}-word precision", "key": f"test/{kind}_precision", "split": "test", "optional": True}
        for kind in ("colour", "shape")]
    fit_hparams = ("vocab",)  # filled in from the data during fit; export copies them into the card

    def __init__(self, *, vocab: list[str] | None = None, decoder: Literal["updown", "xlan"] = "updown",
                 backbone: str = "resnet18", pretrained: bool = False, stage: int = 2, feature_dim: int | None = None,
                 image_size: int = 64, dim: int = 256, dropout: float = 0.3, max_len: int = 16,
                 lr: float = 5e-4, weight_decay: float = 0.0, lr_decay: float = 0.8, lr_decay_every: int = 3,
                 label_smoothing: float = 0.0, ss_start: int = -1, ss_every: int = 5, ss_increase: float = 0.05,
                 ss_max: float = 0.25, rl_start_epoch: int | None = None, rl: Literal["scst", "scnst"] = "scnst",
                 rl_lr: float = 5e-5, baseline: Literal["greedy", "mean"] = "greedy", samples_per_image: int = 1,
                 nstep: int = 5, rollout: Literal["greedy", "mc"] = "greedy", rollout_samples: int = 3,
                 rl_train_encoder: bool = False, val_beam: int = 1, test_beam: int = 3, length_penalty: float = 0.0,
                 spice: bool = False, init_from: str | None = None, encoder_from: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        if init_from and encoder_from:
            raise ValueError("give init_from (the whole captioner) or encoder_from (only its image encoder), not both")
        if rl == "scst" and baseline == "mean" and samples_per_image < 2:
            raise ValueError("baseline='mean' needs samples_per_image >= 2 (the mean of the other samples)")
        self.encoder = None if feature_dim is not None else GridEncoder(backbone, pretrained=pretrained, stage=stage)
        self.feat_dim = feature_dim if feature_dim is not None else self.encoder.dim
        self.vocabulary: Vocabulary | None = None
        self.decoder = None
        if vocab is not None:
            self._build(Vocabulary(vocab))
        self._refs: list[list[str]] | None = None
        self._scorer = None
        self._reset_outputs()

    # construction

    def _build(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.hparams.vocab = list(vocabulary.words)
        extra = {"dim": self.hparams.dim, "dropout": self.hparams.dropout}
        self.decoder = build_decoder(self.hparams.decoder, len(vocabulary), self.feat_dim, **extra)

    def _initial_weights(self) -> tuple[dict, list[str] | None]:
        """(state dict, vocabulary or None) named by ``init_from``: a zoo name (sha256-verified), a
        ``.safetensors`` file, or a ``.ckpt`` from a run you trained yourself."""
        state, model, vocab = _weights_from(self.hparams.init_from, "init_from")
        if model is not None and not isinstance(model, CaptionModule):
            raise ValueError(f"init_from: zoo entry {self.hparams.init_from!r} is a {type(model).__name__}, "
                             "not a captioner (to start only the image encoder from it, use encoder_from)")
        return state, (list(model.vocabulary.words) if model is not None else vocab)

    def _load_encoder(self) -> None:
        """Start the image encoder from ``encoder_from``'s ``encoder.*`` weights (e.g. ``scene-tagger``)."""
        source = self.hparams.encoder_from
        if self.encoder is None:
            raise ValueError("encoder_from: this model reads precomputed features (feature_dim is set) and has "
                             "no image encoder to start from weights")
        state, _, _ = _weights_from(source, "encoder_from")
        encoder = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        if not encoder:
            raise ValueError(f"encoder_from: {source!r} has no image encoder weights (no 'encoder.*' keys)")
        try:
            self.encoder.load_state_dict(encoder, strict=True)
        except RuntimeError as error:
            raise ValueError(f"encoder_from: {source!r} does not fit this model's encoder (backbone "
                             f"{self.hparams.backbone!r}, stage {self.hparams.stage}); give the same backbone "
                             f"and stage as the model it comes from. {error}") from None

    def _datamodule(self):
        return getattr(self._trainer, "datamodule", None) if self._trainer is not None else None

    def configure_model(self) -> None:
        """Build the decoder from the data's vocabulary when the module was created without one;
        with ``init_from``, start training from those weights (and their vocabulary), with
        ``encoder_from`` start the image encoder from that model's. Only ``fit`` starts from them:
        validating or testing a trained model (``zoo eval``) keeps its weights."""
        initial = None
        fitting = self._trainer is None or self._trainer.state.fn == "fit"
        if self.hparams.init_from and fitting and not getattr(self, "_initialised", False):
            initial = self._initial_weights()
            if initial[1] is not None and self.decoder is None:
                self._build(Vocabulary(initial[1]))
        datamodule = self._datamodule()
        data_vocabulary = getattr(datamodule, "vocabulary", None)
        if self.decoder is None:
            if data_vocabulary is None:
                raise RuntimeError("CaptionModule has no vocabulary: pass vocab=[...] or train with a "
                                   "CaptionDataModule, whose training captions give one")
            self._build(data_vocabulary)
        elif data_vocabulary is not None and list(data_vocabulary.words) != list(self.vocabulary.words):
            raise ValueError("the model's vocabulary differs from the one the data builds from its training "
                             "captions: leave model vocab empty to take the data's, or set data min_count to match")
        if initial is not None:
            self.load_state_dict(initial[0], strict=True)
            self._initialised = True
        elif self.hparams.encoder_from and fitting and not getattr(self, "_initialised", False):
            self._load_encoder()
            self._initialised = True  # a resumed run's checkpoint is restored after this, as usual
        if self.encoder is not None and self.hparams.rl_start_epoch == 0 and not self.hparams.rl_train_encoder:
            # an RL-only run never trains the encoder: freeze it before DDP registers its parameters
            self.encoder.requires_grad_(False)

    def setup(self, stage: str) -> None:
        self._check_ddp_stage_switch()
        datamodule = self._datamodule()
        if stage == "fit" and self.hparams.rl_start_epoch is not None and datamodule is not None:
            self._refs = datamodule.reward_references()
            self._scorer = datamodule.reward_scorer()

    def _check_ddp_stage_switch(self) -> None:
        """XE then RL in one DDP run freezes the encoder half-way; DDP must then allow unused parameters."""
        h, trainer = self.hparams, self._trainer
        if trainer is None or trainer.world_size < 2 or self.encoder is None or h.rl_train_encoder:
            return
        if not h.rl_start_epoch:  # None: XE only; 0: frozen from the start (configure_model)
            return
        if not getattr(trainer.strategy, "_ddp_kwargs", {}).get("find_unused_parameters", False):
            raise ValueError("this run switches from cross-entropy to RL at epoch "
                             f"{h.rl_start_epoch} and freezes the image encoder then, which plain DDP refuses; use "
                             "--trainer.strategy=ddp_find_unused_parameters_true, or set "
                             "model.init_args.rl_train_encoder=true, or run the RL stage as its own run "
                             "(rl_start_epoch: 0 with init_from: the XE model)")

    def configure_optimizers(self):
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        h = self.hparams

        def factor(epoch: int) -> float:
            if h.rl_start_epoch is not None and epoch >= h.rl_start_epoch:
                return h.rl_lr / h.lr * h.lr_decay ** ((epoch - h.rl_start_epoch) // h.lr_decay_every)
            return h.lr_decay ** (epoch // h.lr_decay_every)

        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor)}

    # encoding / decoding

    def in_rl(self) -> bool:
        start = self.hparams.rl_start_epoch
        return start is not None and self.current_epoch >= start

    def features(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
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
        """Region features of the batch; without gradient while RL keeps the encoder frozen."""
        if self.in_rl() and self.encoder is not None and not self.hparams.rl_train_encoder:
            with torch.no_grad():
                return self.features(batch)
        return self.features(batch)

    def generate(self, batch: dict, *, beam_size: int = 1, sample: bool = False, temperature: float = 1.0) -> torch.Tensor:
        """Token ids (B, L) of greedy (beam 1), beam-search or sampled captions, without gradient."""
        with torch.no_grad():
            ctx = self.decoder.prepare(*self.features(batch))
            state = self.decoder.init_state(ctx)
            if beam_size > 1:
                seq, _ = beam_search(self.decoder.step, state, ctx, beam_size=beam_size, max_len=self.hparams.max_len,
                                     length_penalty=self.hparams.length_penalty)
                return seq
            return decode(self.decoder.step, state, ctx, max_len=self.hparams.max_len, sample=sample,
                          temperature=temperature).seq

    def preprocess(self, images) -> dict:
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
        was_training = self.training
        self.eval()
        try:
            seq = self.generate(self.preprocess(images), beam_size=beam_size)
        finally:
            self.train(was_training)
        return [self.vocabulary.decode(row) for row in seq.tolist()]

    # training

    def _xe_loss(self, batch: dict) -> torch.Tensor:
        ctx = self.decoder.prepare(*self._encoded(batch))
        captions = batch["captions"]                                   # (B, K, L)
        per_image, steps = captions.shape[1], captions.shape[2]
        ctx = tree_index(ctx, torch.arange(captions.shape[0], device=self.device).repeat_interleave(per_image))
        targets = captions.flatten(0, 1)
        inputs = torch.cat([targets.new_zeros(targets.shape[0], 1), targets[:, :-1]], 1)
        state = self.decoder.init_state(ctx)
        ss = self.scheduled_sampling_prob()
        log_probs, previous = [], None
        for t in range(steps):
            words = inputs[:, t]
            if ss > 0 and previous is not None:
                swap = torch.rand(words.shape, device=self.device) < ss
                sampled = torch.multinomial(previous.detach().exp(), 1).squeeze(1)
                words = torch.where(swap, sampled, words)
            previous, state = self.decoder.step(words, state, ctx)
            log_probs.append(previous)
        log_probs = torch.stack(log_probs, 1)                          # (BK, L, V)
        mask = sequence_mask(targets).float()
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

    def rewards(self, seq: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """CIDEr-D (training-reference df) of each caption row of ``seq`` against its image's references."""
        if self._scorer is None:
            raise RuntimeError("no reward: RL needs a CaptionDataModule (training references) during fit")
        vocab = self.vocabulary
        candidates = [vocab.decode(row) for row in seq.tolist()]
        refs = [self._refs[i] for i in image.tolist()]
        return torch.as_tensor(self._scorer.scores(candidates, refs), dtype=torch.float32, device=self.device)

    def _eval_context(self, feats: torch.Tensor, mask: torch.Tensor | None) -> tuple:
        """The decoder context of the same features in eval mode without gradient (dropout off), for
        baselines and rollouts."""
        was = self.decoder.training
        self.decoder.eval()
        with torch.no_grad():
            out = self.decoder.prepare(feats.detach(), mask)
        self.decoder.train(was)
        return out

    def _rl_loss(self, batch: dict) -> torch.Tensor:
        h = self.hparams
        feats, mask = self._encoded(batch)
        ctx = self.decoder.prepare(feats, mask)
        images = batch["index"]
        k = h.samples_per_image
        expand = torch.arange(images.shape[0], device=self.device).repeat_interleave(k)
        sampled = decode(self.decoder.step, self.decoder.init_state(tree_index(ctx, expand)), tree_index(ctx, expand),
                         max_len=h.max_len, sample=True)
        sample_images = images[expand]
        eval_ctx = self._eval_context(feats, mask)
        was = self.decoder.training
        self.decoder.eval()
        try:
            if h.rl == "scst":
                greedy = None
                if h.baseline == "greedy":
                    with torch.no_grad():
                        greedy = decode(self.decoder.step, self.decoder.init_state(eval_ctx), eval_ctx, max_len=h.max_len).seq
                    width = self.hparams.max_len + 1
                    rewards = self.rewards(torch.cat([_pad_to(sampled.seq, width), _pad_to(greedy, width)]),
                                           torch.cat([sample_images, images]))
                    sample_r, greedy_r = rewards[: expand.numel()], rewards[expand.numel():]
                    advantage = scst_advantage(sample_r.view(-1, k), greedy_r).flatten()
                    self.log("train/greedy_reward", greedy_r.mean(), batch_size=images.shape[0])
                else:
                    sample_r = self.rewards(sampled.seq, sample_images)
                    advantage = scst_advantage(sample_r.view(-1, k)).flatten()
                token_advantage = advantage[:, None].expand_as(sampled.log_probs)
            else:
                samples = h.rollout_samples if h.rollout == "mc" else 0
                row, prefix_len, completed = prefix_rollouts(self.decoder, tree_index(eval_ctx, expand), sampled.seq,
                                                             max_len=h.max_len, samples=samples)
                rewards = self.rewards(torch.cat([_pad_to(sampled.seq, completed.shape[1]), completed]),
                                       torch.cat([sample_images, sample_images[row]]))
                sample_r, rollout_r = rewards[: expand.numel()], rewards[expand.numel():]
                lengths = sampled.mask.sum(1)
                q = q_table(rollout_r, row, prefix_len, sample_r, lengths, sampled.seq.shape[1])
                token_advantage = nstep_advantage(q, lengths, h.nstep)
                self.log("train/value0", q[:, 0].mean(), batch_size=images.shape[0])
        finally:
            self.decoder.train(was)
        self.log("train/reward", sample_r.mean(), prog_bar=True, batch_size=images.shape[0])
        return policy_gradient_loss(sampled.log_probs, token_advantage, sampled.mask)

    def on_train_epoch_start(self) -> None:
        frozen = self.in_rl() and self.encoder is not None and not self.hparams.rl_train_encoder
        if frozen:
            self.encoder.eval()  # keep BatchNorm statistics as XE left them

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.in_rl():
            loss = self._rl_loss(batch)
        else:
            loss = self._xe_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["index"].shape[0])
        self.log("train/rl", float(self.in_rl()), batch_size=batch["index"].shape[0])
        return loss

    def configure_callbacks(self):
        from crossmedia.tasks.caption.callbacks import CaptionSamples

        return [CaptionSamples()]

    # evaluation

    def _collect(self, batch: dict, beam: int) -> None:
        seq = self.generate(batch, beam_size=beam)
        self._outputs["seq"].append(_pad_to(seq, self.hparams.max_len + 1))
        self._outputs["index"].append(batch["index"])

    def _gathered(self) -> tuple[list[str], list[int]]:
        seq = torch.cat(self._outputs["seq"]) if self._outputs["seq"] else torch.zeros(0, self.hparams.max_len + 1)
        index = torch.cat(self._outputs["index"]) if self._outputs["index"] else torch.zeros(0, dtype=torch.long)
        self._reset_outputs()
        seq, order = gather_by_index(self, seq, index)
        return [self.vocabulary.decode(row) for row in seq.long().tolist()], order

    def _reset_outputs(self) -> None:
        self._outputs = {"seq": [], "index": []}

    on_validation_epoch_start = on_test_epoch_start = _reset_outputs

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch, self.hparams.val_beam)

    def on_validation_epoch_end(self) -> None:
        from crossmedia.tasks.caption.cider import corpus_cider

        captions, order = self._gathered()
        if self.trainer.sanity_checking or not captions:
            return
        refs = self.trainer.datamodule.token_references("val")
        score, _ = corpus_cider(captions, [refs[i] for i in order])
        self.log("val/CIDEr", score, prog_bar=True, sync_dist=False)
        self.last_samples = list(zip(order, captions))

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch, self.hparams.test_beam)

    def on_test_epoch_end(self) -> None:
        from crossmedia.tasks.caption.metrics import coco_caption_scores

        captions, order = self._gathered()
        refs = self.trainer.datamodule.raw_references("test")
        scores = coco_caption_scores(dict(zip(order, captions)), {i: refs[i] for i in order}, spice=self.hparams.spice)
        for name, value in scores.items():
            self.log(f"test/{name}", float(value), sync_dist=False)
        objects = self.trainer.datamodule.scene_objects("test")
        if objects is not None:
            from crossmedia.data.builtin.scenes import word_precision

            for kind, value in word_precision(captions, [objects[i] for i in order]).items():
                self.log(f"test/{kind}_precision", value, sync_dist=False)
        self.last_samples = list(zip(order, captions))


def _weights_from(source: str, option: str) -> tuple[dict, pl.LightningModule | None, list[str] | None]:
    """(state dict, zoo model or None, vocabulary or None) from a zoo name (sha256-verified), a
    ``.safetensors`` file or a ``.ckpt`` of your own run; ``option`` names the setting in errors."""
    from pathlib import Path

    path = Path(source)
    if path.suffix == ".ckpt":
        if not path.is_file():
            raise FileNotFoundError(f"{option}: checkpoint {path} does not exist")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        return checkpoint["state_dict"], None, checkpoint.get("hyper_parameters", {}).get("vocab")
    if path.suffix == ".safetensors":
        from crossmedia.core.checkpoint_io import load_weights

        if not path.is_file():
            raise FileNotFoundError(f"{option}: weights file {path} does not exist")
        return load_weights(path), None, None
    from crossmedia import zoo

    model = zoo.load(source)
    return model.state_dict(), model, None


def _pad_to(seq: torch.Tensor, length: int) -> torch.Tensor:
    if seq.shape[1] >= length:
        return seq[:, :length]
    return F.pad(seq, (0, length - seq.shape[1]))

