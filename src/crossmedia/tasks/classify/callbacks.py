"""Classification samples for people: validation images (a clip's middle frame) with their predicted and true classes.

Written to ``<run>/samples/`` and logged to W&B as media after each validation epoch.
"""
from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from crossmedia.core.callbacks import MediaCallback

__all__ = ["ClassifySamples", "prediction_grid"]


def prediction_grid(images: torch.Tensor, predicted: list[str], truth: list[str], *, columns: int = 8,
                    size: int = 48) -> Image.Image:
    """Normalised images (N, 3, H, W) in a grid, each framed green when ``predicted`` equals ``truth``,
    red when not, and captioned ``predicted`` (``predicted/truth`` when wrong)."""
    pad, text = 4, 12
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * (size + pad) + pad, rows * (size + pad + text) + pad), "white")
    draw = ImageDraw.Draw(grid)
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).byte().permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
    for i, (guess, label) in enumerate(zip(predicted, truth)):
        x, y = pad + (i % columns) * (size + pad), pad + (i // columns) * (size + pad + text)
        grid.paste(Image.fromarray(pixels[i]).resize((size, size), Image.NEAREST), (x, y))
        right = guess == label
        draw.rectangle([x - 2, y - 2, x + size + 1, y + size + 1], outline="green" if right else "red", width=2)
        draw.text((x, y + size + 1), guess if right else f"{guess}/{label}"[:9], fill="black")
    return grid


class ClassifySamples(MediaCallback):
    """Keeps the first ``count`` validation images, then draws :func:`prediction_grid`."""

    def __init__(self, *, count: int = 32):
        self.count = count
        self.kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.kept = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        left = self.count - sum(len(part[0]) for part in self.kept)
        if trainer.sanity_checking or not trainer.is_global_zero or outputs is None or left <= 0:
            return
        images, labels = batch
        if images.ndim == 5:
            images = images[:, images.shape[1] // 2]  # (B, 3, S, S): a clip's middle frame
        self.kept.append((images[:left].cpu(), labels[:left].cpu(), outputs[:left].argmax(dim=1).cpu()))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.kept:
            return
        images, labels, guesses = (torch.cat(part) for part in zip(*self.kept))
        names = pl_module.hparams.class_names or [str(i) for i in range(pl_module.hparams.num_classes)]
        grid = prediction_grid(images, [names[i] for i in guesses.tolist()], [names[i] for i in labels.tolist()])
        self.save_image(trainer, "samples/predictions", grid, caption="predicted (/true when wrong)")
        self.kept = []
