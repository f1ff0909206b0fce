"""Generated images for people: after each validation epoch, a grid of captions with the real image
and ``samples`` generated ones (different noise) beside it, logged as media and written as
``samples/generated_epochNNN.png`` (+ the captions in a ``.txt``; for speech-conditioned models the
spoken captions are copied next to it as ``.wav`` and logged as W&B audio)."""
from __future__ import annotations

import shutil
import textwrap

import torch

from crossmedia.core.callbacks import MediaCallback, run_dir

__all__ = ["GeneratedSamples"]


class GeneratedSamples(MediaCallback):
    """A (rows x (1 + samples)) grid: real validation image, then images generated from its caption."""

    def __init__(self, *, rows: int = 6, samples: int = 4):
        self.rows, self.samples = rows, samples
        self._batch: dict | None = None

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._batch = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._batch is None and not trainer.sanity_checking:
            n = self.rows
            self._batch = {k: (v[:n] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()}

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._batch is None:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        batch = self._batch
        with torch.no_grad():
            fakes = [pl_module.sample_images(batch, s).float().cpu() for s in range(self.samples)]
        columns = [batch["images"].float().cpu()] + fakes
        rows = len(batch["texts"])
        figure, axes = plt.subplots(rows, len(columns), figsize=(1.6 * len(columns) + 2.6, 1.7 * rows), squeeze=False)
        for r in range(rows):
            for c, images in enumerate(columns):
                axis = axes[r][c]
                axis.imshow(((images[r] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
                axis.set_xticks([])
                axis.set_yticks([])
                if r == 0:
                    axis.set_title("real" if c == 0 else f"sample {c}", fontsize=8)
            axes[r][-1].text(1.08, 0.5, "\n".join(textwrap.wrap(batch["texts"][r], 30)),
                             transform=axes[r][-1].transAxes, va="center", fontsize=7)
        figure.suptitle(f"epoch {trainer.current_epoch}: real | generated from the caption", fontsize=9)
        folder = run_dir(trainer) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        epoch = f"epoch{trainer.current_epoch:03d}"
        (folder / f"generated_{epoch}.txt").write_text("\n".join(batch["texts"]) + "\n")
        self.save_image(trainer, "samples/generated", figure, caption=" | ".join(batch["texts"]))
        for i, path in enumerate(batch.get("audio") or []):
            copy = folder / f"generated_{epoch}_caption{i}.wav"
            shutil.copyfile(path, copy)
            for logger in trainer.loggers:
                if type(logger).__name__ == "WandbLogger":
                    import wandb

                    logger.experiment.log({f"samples/audio_{i}": wandb.Audio(str(copy), caption=batch["texts"][i])},
                                          step=trainer.global_step)
