"""Self-critical captioners: SCST (Rennie 2017) and self-critical n-step training (Gao 2019).

Both continue a :class:`~crossmedia.tasks.caption.module.CaptionModule`: epochs before
``rl_start_epoch`` train by cross-entropy as it does, epochs from it on by REINFORCE on sampled
captions (``samples_per_image`` per image), with the reward of
:class:`~crossmedia.tasks.caption.reward.CaptionReward` (CIDEr-D with document frequencies of the
training references, minus ``repetition_penalty`` times the n-grams repeated beyond every
reference). The zoo entries run RL only (``rl_start_epoch: 0``), starting from the XE entry with
``init_from``. During RL the learning rate is ``rl_lr``, decayed like XE's from ``rl_start_epoch``,
and the image encoder is frozen (BatchNorm statistics too) unless ``rl_train_encoder``.

The methods differ only in the per-token advantage (:mod:`crossmedia.tasks.caption.rl`):

* :class:`SCSTModule`: the caption's reward minus the greedy caption's (``baseline="greedy"``) or
  minus the mean of the image's other samples (``baseline="mean"``), for every token;
* :class:`SCNSTModule`: ``A_t = Q_min(t+n-1, T) - Q_t-1`` with ``Q`` from prefix rollouts
  (``rollout="greedy"``, or ``"mc"`` with ``rollout_samples`` sampled completions).
"""
from __future__ import annotations

from typing import Literal

import torch

from crossmedia.core.modes import eval_mode
from crossmedia.nn.decoding import Decoded, decode, tree_index
from crossmedia.tasks.caption.module import CaptionModule
from crossmedia.tasks.caption.reward import CaptionReward
from crossmedia.tasks.caption.rl import policy_gradient_loss, scnst_token_advantage, scst_token_advantage

__all__ = ["SelfCriticalModule", "SCSTModule", "SCNSTModule"]


class SelfCriticalModule(CaptionModule):
    """Cross-entropy until ``rl_start_epoch``, then REINFORCE with :meth:`token_advantage` (a subclass's)."""

    paper = {"title": "Self-critical Sequence Training for Image Captioning", "arxiv": "1612.00563"}

    def __init__(self, *, rl_start_epoch: int = 0, rl_lr: float = 5e-5, samples_per_image: int = 1,
                 repetition_penalty: float = 0.0, rl_train_encoder: bool = False, **captioner):
        super().__init__(**captioner)
        self.save_hyperparameters()
        if rl_start_epoch < 0:
            raise ValueError(f"rl_start_epoch must be >= 0 (the epoch RL starts), got {rl_start_epoch}")
        self._reward: CaptionReward | None = None

    def configure_model(self) -> None:
        super().configure_model()
        if self.encoder is not None and self.hparams.rl_start_epoch == 0 and not self.hparams.rl_train_encoder:
            # an RL-only run never trains the encoder: freeze it before DDP registers its parameters
            self.encoder.requires_grad_(False)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self._check_ddp_stage_switch()
        datamodule = self._datamodule()
        if stage == "fit" and datamodule is not None:
            self._reward = CaptionReward(datamodule.reward_scorer(), datamodule.reward_references(),
                                         repetition_penalty=self.hparams.repetition_penalty)

    def _check_ddp_stage_switch(self) -> None:
        """XE then RL in one DDP run freezes the encoder half-way; DDP must then allow unused parameters."""
        h, trainer = self.hparams, self._trainer
        if trainer is None or trainer.world_size < 2 or self.encoder is None or h.rl_train_encoder:
            return
        if not h.rl_start_epoch:  # 0: frozen from the start (configure_model)
            return
        if not getattr(trainer.strategy, "_ddp_kwargs", {}).get("find_unused_parameters", False):
            raise ValueError("this run switches from cross-entropy to RL at epoch "
                             f"{h.rl_start_epoch} and freezes the image encoder then, which plain DDP refuses; use "
                             "--trainer.strategy=ddp_find_unused_parameters_true, or set "
                             "model.init_args.rl_train_encoder=true, or run the RL stage as its own run "
                             "(rl_start_epoch: 0 with init_from: the XE model)")

    def lr_factor(self, epoch: int) -> float:
        """XE's decay before ``rl_start_epoch``; from it ``rl_lr / lr``, decayed the same way."""
        h = self.hparams
        if epoch >= h.rl_start_epoch:
            return h.rl_lr / h.lr * h.lr_decay ** ((epoch - h.rl_start_epoch) // h.lr_decay_every)
        return super().lr_factor(epoch)

    def in_rl(self) -> bool:
        return self.current_epoch >= self.hparams.rl_start_epoch

    def _encoded(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Region features of the batch; without gradient while RL keeps the encoder frozen."""
        if self.in_rl() and self.encoder is not None and not self.hparams.rl_train_encoder:
            with torch.no_grad():
                return self.features(batch)
        return self.features(batch)

    def rewards(self, seq: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """(R,) rewards of the caption rows ``seq`` (R, L) of training images ``image`` (R,)."""
        if self._reward is None:
            raise RuntimeError("no reward: RL needs a CaptionDataModule (training references) during fit")
        candidates = [self.vocabulary.decode(row) for row in seq.tolist()]
        return torch.as_tensor(self._reward(candidates, image.tolist()), dtype=torch.float32, device=self.device)

    def token_advantage(self, eval_ctx: tuple, sampled: Decoded, images: torch.Tensor
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(R, L) advantages of the sampled tokens and what to log (``reward`` at least)."""
        raise NotImplementedError

    def rl_loss(self, batch: dict) -> torch.Tensor:
        """REINFORCE over ``samples_per_image`` sampled captions per image with :meth:`token_advantage`."""
        feats, mask = self._encoded(batch)
        ctx = self.decoder.prepare(feats, mask)
        images = batch["index"]                                                    # (B,)
        expand = torch.arange(images.shape[0], device=self.device).repeat_interleave(self.hparams.samples_per_image)
        rows = tree_index(ctx, expand)                                             # B K rows, image-major
        sampled = decode(self.decoder.step, self.decoder.init_state(rows), rows, max_len=self.hparams.max_len,
                         sample=True)                                              # seq, log_probs, mask: (R, L)
        with eval_mode(self.decoder), torch.no_grad():  # baselines and rollouts: same features, dropout off
            eval_ctx = self.decoder.prepare(feats.detach(), mask)
            advantage, logged = self.token_advantage(eval_ctx, sampled, images)
        for name, value in logged.items():
            self.log(f"train/{name}", value, prog_bar=name == "reward", batch_size=images.shape[0])
        return policy_gradient_loss(sampled.log_probs, advantage, sampled.mask)

    def on_train_epoch_start(self) -> None:
        if self.in_rl() and self.encoder is not None and not self.hparams.rl_train_encoder:
            self.encoder.eval()  # keep BatchNorm statistics as XE left them

    def training_loss(self, batch: dict) -> torch.Tensor:
        return self.rl_loss(batch) if self.in_rl() else self.xe_loss(batch)


class SCSTModule(SelfCriticalModule):
    """SCST: one advantage per caption, its reward minus the greedy caption's or the other samples' mean."""

    summary = "image captioning, self-critical sequence training"

    def __init__(self, *, baseline: Literal["greedy", "mean"] = "greedy", samples_per_image: int = 1, **captioner):
        if baseline not in ("greedy", "mean"):
            raise ValueError(f"baseline must be 'greedy' or 'mean', got {baseline!r}")
        if baseline == "mean" and samples_per_image < 2:
            raise ValueError("baseline='mean' needs samples_per_image >= 2 (the mean of the other samples)")
        super().__init__(samples_per_image=samples_per_image, **captioner)
        self.save_hyperparameters()

    def token_advantage(self, eval_ctx, sampled, images):
        return scst_token_advantage(self.decoder, eval_ctx, sampled, images, self.rewards,
                                    samples_per_image=self.hparams.samples_per_image, max_len=self.hparams.max_len,
                                    baseline=self.hparams.baseline)


class SCNSTModule(SelfCriticalModule):
    """Self-critical n-step training: per-token n-step advantages from prefix rollouts."""

    summary = "image captioning, self-critical n-step training"
    paper = {"title": "Self-critical n-step Training for Image Captioning", "arxiv": "1904.06861"}

    def __init__(self, *, nstep: int = 5, rollout: Literal["greedy", "mc"] = "greedy", rollout_samples: int = 3,
                 **captioner):
        if rollout not in ("greedy", "mc"):
            raise ValueError(f"rollout must be 'greedy' or 'mc', got {rollout!r}")
        super().__init__(**captioner)
        self.save_hyperparameters()

    def token_advantage(self, eval_ctx, sampled, images):
        h = self.hparams
        return scnst_token_advantage(self.decoder, eval_ctx, sampled, images, self.rewards,
                                     samples_per_image=h.samples_per_image, max_len=h.max_len, nstep=h.nstep,
                                     rollout_samples=h.rollout_samples if h.rollout == "mc" else 0)
