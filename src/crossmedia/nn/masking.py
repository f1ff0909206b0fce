"""Padding masks: the plumbing every sequence model of the package shares.

Convention: features ``x`` are (B, T, D) (regions, frames, words) and a ``mask`` is bool,
True on real positions and False on padding.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["full_mask", "length_mask", "masked_mean"]


def full_mask(x: Tensor) -> Tensor:
    """An all-True (B, T) mask for features ``x`` of shape (B, T, ...)."""
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


def length_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """(B, T) bool mask, True for the first ``lengths[b]`` positions of row b."""
    steps = torch.arange(int(max_len if max_len is not None else lengths.max()), device=lengths.device)  # (T,)
    return steps[None, :] < lengths[:, None]  # (B, T)


def masked_mean(x: Tensor, mask: Tensor | None, dim: int) -> Tensor:
    """Mean of ``x`` over ``dim`` counting only positions where ``mask`` (broadcastable, bool) is
    True; a row with no True position gives 0 (its count is clamped to 1)."""
    if mask is None:
        return x.mean(dim)
    weight = mask.to(x.dtype)
    return (x * weight).sum(dim) / weight.sum(dim).clamp_min(1.0)
