"""Captions for people: a grid of validation images with the model's caption under each and one reference."""
from __future__ import annotations

import textwrap

import torch

from crossmedia.core.callbacks import MediaCallback, run_dir
from crossmedia.core.modes import eval_mode

__all__ = ["CaptionSamples"]


class CaptionSamples(MediaCallback):
    """After each validation epoch: ``num_images`` validation images captioned by beam search, drawn
    as a grid (logged as media, ``samples/captions_epochNNN.png``) and listed in
    ``samples/captions_epochNNN.txt`` next to their first reference. Feature-only data has no
    pictures; the text file is still written."""

    def __init__(self, *, num_images: int = 8, beam_size: int = 3):
        self.num_images, self.beam_size = num_images, beam_size
        self._batch: dict | None = None

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._batch = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._batch is None and not trainer.sanity_checking:
            self._batch = {k: v[: self.num_images] for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._batch is None:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with eval_mode(pl_module):
            seq = pl_module.generate(self._batch, beam_size=self.beam_size)
        captions = [pl_module.vocabulary.decode(row) for row in seq.tolist()]
        refs = trainer.datamodule.raw_references("val")
        index = self._batch["index"].tolist()
        lines = [f"{i}\tmodel: {c}\treference: {refs[i][0]}" for i, c in zip(index, captions)]
        folder = run_dir(trainer) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"captions_epoch{trainer.current_epoch:03d}.txt").write_text("\n".join(lines) + "\n")
        if "images" not in self._batch:
            return
        images = ((self._batch["images"].float().cpu() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        columns = min(4, len(images))
        rows = (len(images) + columns - 1) // columns
        figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows), squeeze=False)
        for axis in axes.flat:
            axis.axis("off")
        for axis, image, caption, i in zip(axes.flat, images, captions, index):
            axis.imshow(image, interpolation="nearest")
            axis.set_title("\n".join(textwrap.wrap(caption, 28)) or "(empty)", fontsize=8)
            axis.text(0.5, -0.04, "\n".join(textwrap.wrap(refs[i][0], 34)), transform=axis.transAxes,
                      ha="center", va="top", fontsize=7, color="gray")
        figure.suptitle(f"validation captions — epoch {trainer.current_epoch} (gray: a reference)", fontsize=9)
        self.save_image(trainer, "samples/captions", figure)
