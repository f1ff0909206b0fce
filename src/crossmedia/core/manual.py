"""One optimiser step under Lightning's manual optimisation, with gradient accumulation and clipping.

GANs (and any module with several optimisers) train with ``automatic_optimization = False``.
Lightning then refuses ``Trainer(accumulate_grad_batches=N)`` and ``gradient_clip_val`` ("not
supported for manual optimization"), so DESIGN's promise that gradient accumulation works for
every module is kept this way:

- automatic modules: Lightning's own ``--trainer.accumulate_grad_batches``;
- manual modules: an init argument ``accumulate_grad_batches`` (default 1) that the module passes
  to :func:`manual_step` for each optimiser, and a clip value of its own.

:func:`manual_step` does, for one optimiser and one batch, what Lightning's GAN example writes out
by hand: ``toggle_optimizer`` (the other optimisers' parameters stop requiring gradients, so a
generator loss that runs through the discriminator leaves no gradient on it), the loss computed
inside the toggle, ``manual_backward(loss / accumulate)``, then, every ``accumulate`` batches and at
the epoch's last batch, clip, ``step`` and ``zero_grad``; ``untoggle_optimizer``. Scaling by
``1 / accumulate`` makes ``accumulate`` half-batches of a mean loss step exactly as one whole batch
would. With ``accumulate=1`` it is the usual zero-grad / backward / clip / step sequence, number for
number (gradients are zeroed after each step instead of before the next, the same thing).

Usage, a generator G and a discriminator D (losses from :mod:`crossmedia.nn.gan_losses`)::

    class MyGAN(TaskModule):
        def __init__(self, *, lr: float = 2e-4, accumulate_grad_batches: int = 1, clip: float | None = None):
            super().__init__()
            self.save_hyperparameters()
            self.automatic_optimization = False
            self.generator, self.discriminator = Generator(), Discriminator()

        def training_step(self, batch, batch_idx):
            opt_g, opt_d = self.optimizers()
            step = dict(batch_idx=batch_idx, accumulate=self.hparams.accumulate_grad_batches,
                        clip_val=self.hparams.clip)
            fake = self.generator(batch["noise"])
            g_loss = manual_step(self, opt_g, lambda: bce_g_loss(self.discriminator(fake)), **step)
            d_loss = manual_step(self, opt_d, lambda: bce_d_loss(
                self.discriminator(batch["real"]), self.discriminator(fake.detach())), **step)
            self.log_dict({"train/g_loss": g_loss, "train/d_loss": d_loss})

        def configure_optimizers(self):
            return [torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr),
                    torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr)]

Every optimiser steps on the same batches (the rule depends on ``batch_idx`` only), so G and D stay
in step. Under DDP each backward synchronises gradients, as in Lightning's manual accumulation recipe.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import pytorch_lightning as pl
import torch
from torch.optim import Optimizer

__all__ = ["manual_step", "is_step_batch"]

Loss = TypeVar("Loss", torch.Tensor, dict)


def is_step_batch(trainer: pl.Trainer | None, batch_idx: int, accumulate: int) -> bool:
    """True when batch ``batch_idx`` ends an accumulation window: every ``accumulate`` batches, and
    at the epoch's last batch (``trainer.num_training_batches``, when known) so that no gradient is
    carried into the next epoch. Lightning's own rule for automatic accumulation."""
    if accumulate < 1 or int(accumulate) != accumulate:
        raise ValueError(f"accumulate_grad_batches must be an integer >= 1, got {accumulate!r}")
    if (batch_idx + 1) % accumulate == 0:
        return True
    last = getattr(trainer, "num_training_batches", math.inf) if trainer is not None else math.inf
    return math.isfinite(last) and batch_idx + 1 >= last


def _apply(module: pl.LightningModule, optimizer: Optimizer, clip_val: float | None, clip_algorithm: str) -> None:
    """Clip this optimiser's gradients, step, zero them."""
    if clip_val:
        module.clip_gradients(optimizer, gradient_clip_val=clip_val, gradient_clip_algorithm=clip_algorithm)
    optimizer.step()
    optimizer.zero_grad()


def manual_step(module: pl.LightningModule, optimizer: Optimizer, compute_loss: Callable[[], Loss] | None, *,
                batch_idx: int, accumulate: int = 1, clip_val: float | None = None,
                clip_algorithm: str = "norm", key: str = "total") -> Loss | None:
    """Toggle ``optimizer``, back-propagate ``compute_loss()`` scaled by ``1 / accumulate``, and on the
    batches :func:`is_step_batch` names clip (``clip_val``, by ``clip_algorithm`` "norm" or "value",
    over this optimiser's parameters), step and zero its gradients; untoggle.

    ``compute_loss`` runs inside the toggle and returns a scalar tensor, or a dict of them whose
    ``key`` entry is back-propagated; :func:`manual_step` returns what it returned, unscaled (for
    logging). Pass ``None`` for an optimiser that has no loss on this batch (a per-split network
    whose split skips the video): on a step batch the gradients it accumulated earlier in the
    window are still applied, so none leak into the next window.
    """
    step = is_step_batch(module.trainer, batch_idx, accumulate)
    if compute_loss is None:
        pending = any(p.grad is not None for group in optimizer.param_groups for p in group["params"])
        if step and pending:
            _apply(module, optimizer, clip_val, clip_algorithm)
        return None
    module.toggle_optimizer(optimizer)
    try:
        loss = compute_loss()
        total = loss[key] if isinstance(loss, dict) else loss
        module.manual_backward(total / accumulate if accumulate != 1 else total)
        if step:
            _apply(module, optimizer, clip_val, clip_algorithm)
    finally:
        module.untoggle_optimizer(optimizer)
    return loss
