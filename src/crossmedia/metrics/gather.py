"""Per-item evaluation outputs gathered from every DDP process, one row per dataset index.

Under DDP each process evaluates a shard of the split, and Lightning's ``DistributedSampler`` pads
the shards with repeats so that they have equal length. Metrics that need the whole split at once
(a caption per image for CIDEr, one logit row per image) gather every process's rows with their
dataset indices and keep one row per index, in index order.
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch

__all__ = ["gather_by_index"]


def gather_by_index(module: pl.LightningModule, values: torch.Tensor, index: torch.Tensor
                    ) -> tuple[torch.Tensor, list[int]]:
    """The rows of ``values`` from every process, one row per dataset position, in position order.

    Args:
        module: the LightningModule evaluating (its trainer's ``world_size`` and ``all_gather`` are used;
            without a trainer, or on one process, nothing is gathered).
        values: (B, ...) one row per evaluated item of this process; the same shape on every process.
        index: (B,) the item's position in its split.

    Returns:
        (rows, positions): (M, ...) rows for the M distinct positions seen, and those positions sorted.
        A position seen more than once (the sampler's padding repeats) keeps its first row, taking
        the processes in rank order.
    """
    trainer = module._trainer
    if trainer is not None and trainer.world_size > 1:
        values, index = module.all_gather(values).flatten(0, 1), module.all_gather(index).flatten()  # (W·B, ...), (W·B,)
    first: dict[int, int] = {}
    for row, i in enumerate(index.tolist()):
        first.setdefault(i, row)
    order = sorted(first)
    return values[torch.tensor([first[i] for i in order], dtype=torch.long, device=values.device)], order
