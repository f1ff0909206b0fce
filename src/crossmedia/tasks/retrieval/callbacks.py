"""Retrieval samples for people: a few fixed validation captions, each with its top-5 validation images.

After each validation epoch the queries are the first caption of each of the first ``num_queries``
validation images (the same sentences every epoch, on any number of processes). Their best
``top`` images among all validation images are drawn one query per row, the caption's own image
framed green and the others red, into ``<run>/samples/samples_retrieval_epochNNN.png`` (logged as
W&B media like every task's samples) and, when a W&B logger is active, logged as a
``samples/retrieval_table`` table with one row per (query, rank): query, rank, image, score, true.

Cost: the queries are embedded once per epoch; each validation batch adds a (B, Q) score matrix
on the image embeddings the module's ``validation_step`` returns (``{"images": (B, D)}``) and keeps
the running top-k per query. Under DDP each process ranks its own images, the (Q, k) candidates
are gathered (a few numbers) and rank 0 alone reads the winning image files and writes.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import torch
from einops import rearrange
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from crossmedia.core.callbacks import MediaCallback

__all__ = ["RetrievalSamples", "QueryResult", "top_images_grid"]

TRUE_COLOUR, FALSE_COLOUR = "green", "red"


@dataclass
class QueryResult:
    """One query's row: its sentence, the index of its own image, and the ranked images with scores."""

    text: str
    true_index: int
    images: list[Image.Image]
    indices: list[int]
    scores: list[float]


# helpers

def top_images_grid(results: list[QueryResult], *, size: int = 96, text_width: int = 220) -> Image.Image:
    """One row per query: its sentence (wrapped) on the left, then its ranked images left to right,
    each framed green when it is the query's own image and red otherwise, with ``rank. score`` below."""
    pad, border = 6, 3
    font = ImageFont.load_default(size=11)
    line = 14
    columns = max((len(r.images) for r in results), default=0)
    row_height = size + 2 * border + line + pad
    grid = Image.new("RGB", (text_width + columns * (size + 2 * border + pad) + pad, pad + len(results) * row_height),
                     "white")
    draw = ImageDraw.Draw(grid)
    for row, result in enumerate(results):
        y = pad + row * row_height
        wrapped = textwrap.wrap(result.text, 34)[: max(1, (size + line) // line)]
        draw.multiline_text((pad, y), "\n".join(wrapped), fill="black", font=font, spacing=2)
        for col, (image, index, score) in enumerate(zip(result.images, result.indices, result.scores)):
            x = text_width + col * (size + 2 * border + pad)
            colour = TRUE_COLOUR if index == result.true_index else FALSE_COLOUR
            draw.rectangle([x, y, x + size + 2 * border - 1, y + size + 2 * border - 1], fill=colour)
            grid.paste(image.convert("RGB").resize((size, size)), (x + border, y + border))
            draw.text((x, y + size + 2 * border + 1), f"{col + 1}. {score:.3f}", fill="black", font=font)
    return grid


def _merge_top(scores: Tensor, indices: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The best ``k`` distinct indices per row of candidate ``scores`` / ``indices`` (Q, C), best first;
    index −1 marks an empty slot (score −inf), kept only when fewer than k are real."""
    order = scores.argsort(dim=1, descending=True, stable=True)  # (Q, C)
    scores, indices = scores.gather(1, order), indices.gather(1, order)
    seen_before = (indices.unsqueeze(2) == indices.unsqueeze(1)).tril(diagonal=-1).any(dim=2)  # (Q, C)
    keep = ~seen_before | (indices < 0)  # a DistributedSampler repeats items to even out the processes
    position = torch.where(keep, torch.arange(scores.shape[1], device=scores.device), scores.shape[1])  # (Q, C)
    first = position.sort(dim=1, stable=True).indices[:, :k]  # (Q, k) the kept columns, in score order
    return scores.gather(1, first), indices.gather(1, first)


# classes

class RetrievalSamples(MediaCallback):
    """Text → image samples of the validation set (module docstring); none on precomputed image
    features (there is no image to show).

    Args:
        num_queries: how many validation images give a query (their first caption), from the first.
        top: images shown per query.
        size: side in pixels of each shown image.
    """

    def __init__(self, *, num_queries: int = 6, top: int = 5, size: int = 96):
        self.num_queries, self.top, self.size = num_queries, top, size
        self._reset()

    def _reset(self) -> None:
        self.queries: Tensor | None = None  # (Q, D) query embeddings
        self.scores: Tensor | None = None  # (Q, k) running best scores of this process
        self.indices: Tensor | None = None  # (Q, k) their validation indices (−1: none yet)

    @staticmethod
    def _dataset(trainer):
        loaders = trainer.val_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        dataset = getattr(loader, "dataset", None)
        return dataset if hasattr(dataset, "encoded") and hasattr(dataset, "records") else None

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._reset()
        dataset = self._dataset(trainer)
        if trainer.sanity_checking or dataset is None or not len(dataset):
            return
        count = min(self.num_queries, len(dataset))
        ids = torch.stack([dataset.encoded[i][0][0] for i in range(count)]).to(pl_module.device)  # (Q, L)
        lengths = torch.stack([dataset.encoded[i][1][0] for i in range(count)]).to(pl_module.device)  # (Q,)
        with torch.no_grad():
            self.queries = pl_module.embed_texts(ids, lengths).float()  # (Q, D)
        k = min(self.top, len(dataset))
        self.scores = torch.full((count, k), float("-inf"), device=pl_module.device)  # (Q, k)
        self.indices = torch.full((count, k), -1, dtype=torch.long, device=pl_module.device)  # (Q, k)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.queries is None or not isinstance(outputs, dict) or "images" not in outputs:
            return
        scores = pl_module.similarity(outputs["images"].float(), self.queries).T  # (Q, B)
        scores, columns = scores.topk(min(self.scores.shape[1], scores.shape[1]), dim=1)  # (Q, k')
        indices = batch["index"].to(scores.device)[columns]  # (Q, k')
        self.scores, self.indices = _merge_top(torch.cat([self.scores, scores], dim=1),
                                               torch.cat([self.indices, indices], dim=1), self.scores.shape[1])

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.queries is None:
            return
        scores, indices = self.scores, self.indices
        if trainer.world_size > 1:  # collective: every process takes part, rank 0 uses the result
            scores, indices = (rearrange(trainer.strategy.all_gather(x), "w q k -> q (w k)") for x in (scores, indices))
            scores, indices = _merge_top(scores, indices, self.scores.shape[1])
        self._reset()
        if not trainer.is_global_zero:
            return
        results = self._results(self._dataset(trainer), scores.cpu(), indices.cpu())
        grid = top_images_grid(results, size=self.size)
        self.save_image(trainer, "samples/retrieval", grid,
                        caption=f"caption | top-{scores.shape[1]} validation images (green: the caption's image)")
        self._log_table(trainer, results)

    def _results(self, dataset, scores: Tensor, indices: Tensor) -> list[QueryResult]:
        results = []
        for q, (row_scores, row_indices) in enumerate(zip(scores.tolist(), indices.tolist())):
            found = [(i, s) for i, s in zip(row_indices, row_scores) if i >= 0]
            images = []
            for i, _ in found:
                with Image.open(dataset.records[i].path) as image:
                    images.append(image.convert("RGB").resize((self.size, self.size)))
            results.append(QueryResult(text=dataset.records[q].raw[0], true_index=q, images=images,
                                       indices=[i for i, _ in found], scores=[s for _, s in found]))
        return results

    @staticmethod
    def _log_table(trainer, results: list[QueryResult]) -> None:
        loggers = [logger for logger in trainer.loggers if hasattr(logger, "log_table")]  # WandbLogger
        if not loggers:
            return
        import wandb

        rows = [[r.text, rank + 1, wandb.Image(image), score, index == r.true_index]
                for r in results for rank, (image, index, score) in enumerate(zip(r.images, r.indices, r.scores))]
        for logger in loggers:
            logger.log_table(key="samples/retrieval_table", columns=["query", "rank", "image", "score", "true"],
                             data=rows, step=trainer.global_step)

