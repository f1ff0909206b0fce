"""Hashing samples for people: retrieval examples as an image grid, the precision-recall curve.

Both are written to ``<run>/samples/`` and logged to W&B as media after each validation epoch.
"""
from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from crossmedia.core.callbacks import MediaCallback

__all__ = ["HashingSamples", "retrieval_grid", "pr_figure"]


# helpers

def _thumbnail(x: torch.Tensor, size: int) -> Image.Image:
    """A normalised image (3, H, W) or clip (T, 3, H, W; middle frame shown) -> PIL thumbnail."""
    if x.dim() == 4:
        x = x[x.shape[0] // 2]
    array = ((x.float().clamp(-1, 1) + 1) * 127.5).byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array).resize((size, size), Image.NEAREST)


def retrieval_grid(queries, query_labels, query_codes, db_images, db_labels, db_codes, *, top: int = 8,
                   size: int = 48) -> Image.Image:
    """One row per query: the query, then its ``top`` nearest database items by Hamming distance,
    framed green when they share a label with the query and red when they do not."""
    pad = 4
    distance = (db_codes.shape[1] - query_codes @ db_codes.T) / 2  # (Q, N)
    order = torch.sort(distance, dim=1, stable=True).indices[:, :top]
    grid = Image.new("RGB", ((top + 1) * (size + pad) + pad * 5, len(queries) * (size + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    for row, q in enumerate(range(len(queries))):
        y = pad + row * (size + pad)
        grid.paste(_thumbnail(queries[q], size), (pad, y))
        for col, j in enumerate(order[q].tolist()):
            x = pad * 4 + (col + 1) * (size + pad)
            relevant = bool((query_labels[q] * db_labels[j]).sum() > 0)
            draw.rectangle([x - 2, y - 2, x + size + 1, y + size + 1], outline="green" if relevant else "red", width=2)
            grid.paste(_thumbnail(db_images[j], size), (x, y))
    return grid


def pr_figure(precision: torch.Tensor, recall: torch.Tensor, *, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4, 4))
    axis.plot(recall.cpu().numpy(), precision.cpu().numpy(), marker=".")
    axis.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1.02), ylim=(0, 1.02))
    axis.grid(alpha=0.3)
    return figure


# classes

class HashingSamples(MediaCallback):
    """Collects validation codes and a few images, then draws the grid and the PR curve."""

    def __init__(self, *, num_queries: int = 6, top: int = 8, max_database: int = 5000, max_pr_queries: int = 500):
        self.num_queries, self.top, self.max_database = num_queries, top, max_database
        self.max_pr_queries = max_pr_queries
        self._reset()

    def _reset(self) -> None:
        self.query, self.database = [], []  # lists of (images, labels, codes)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._reset()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or outputs is None:
            return
        images, labels = batch
        store = self.database if dataloader_idx == 1 else self.query
        limit = self.max_database if dataloader_idx == 1 else self.max_pr_queries
        keep = limit - sum(len(part[1]) for part in store)
        if keep <= 0:
            return
        if dataloader_idx == 1:
            shown = images[:keep]
        else:  # query images are only needed for the first rows of the grid
            shown = images[: max(0, self.num_queries - sum(len(part[0]) for part in store))]
        store.append((shown.cpu(), labels[:keep].cpu(), outputs["codes"][:keep].cpu()))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.query or not self.database:
            return
        from crossmedia.tasks.hashing.metrics import pr_curve

        q_images, q_labels, q_codes = (torch.cat(part) for part in zip(*self.query))
        d_images, d_labels, d_codes = (torch.cat(part) for part in zip(*self.database))
        n = len(q_images)
        grid = retrieval_grid(q_images, q_labels[:n], q_codes[:n], d_images, d_labels, d_codes, top=self.top)
        self.save_image(trainer, "samples/retrieval", grid,
                        caption="query | top-8 by Hamming distance (green: shares a label)")
        precision, recall = pr_curve(q_codes, q_labels, d_codes, d_labels)
        figure = pr_figure(precision, recall, title=f"PR by Hamming radius (epoch {trainer.current_epoch})")
        self.save_image(trainer, "samples/pr_curve", figure)
        self._reset()
