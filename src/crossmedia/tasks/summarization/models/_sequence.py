"""Padding masks and LSTMs over padded batches: the plumbing shared by the summarisation models.

Convention used by every model and loss of this package: frame features ``x`` are (B, T, D) and
the optional ``mask`` is a bool (B, T) tensor, True on real frames and False on padding. The
recurrent models (Cycle-SUM) need each video's real frames to come first (a prefix mask, as a
padded collate produces); the attention model (SUM-GDA) accepts any mask. Per-video means over
the real frames are :func:`crossmedia.nn.masking.masked_mean` with ``dim=1`` (every video weighs
the same whatever its length, as in the per-video losses of the papers).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from crossmedia.nn.masking import full_mask

__all__ = ["check_mask", "prefix_lengths", "run_lstm"]


def check_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    """The mask to use for ``x``: ``mask`` checked (bool, (B, T), ≥ 1 real frame per video) or all-True."""
    if x.dim() != 3:
        raise ValueError(f"frame features must be (B, T, D), got shape {tuple(x.shape)}")
    if mask is None:
        return full_mask(x)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match features (B, T) = "
                         f"{tuple(x.shape[:2])}")
    mask = mask.to(device=x.device, dtype=torch.bool)
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every video needs at least one real frame (a mask row is all False)")
    return mask


def prefix_lengths(mask: Tensor) -> Tensor:
    """(B,) number of real frames per video; raises unless each row is True…True False…False."""
    lengths = mask.sum(dim=1)  # (B,)
    steps = torch.arange(mask.shape[1], device=mask.device)  # (T,)
    if not torch.equal(steps[None, :] < lengths[:, None], mask):
        raise ValueError("recurrent models need padding at the end of each video: the mask must be "
                         "True for the first n frames and False after them")
    return lengths


def run_lstm(lstm: nn.LSTM, x: Tensor, mask: Tensor, initial: tuple[Tensor, Tensor] | None = None
             ) -> tuple[Tensor, Tensor]:
    """Run a batch-first ``lstm`` over the real frames only.

    Returns the per-step outputs (B, T, H·directions), zero on padding, and the final hidden
    state h_n (layers·directions, B, H) taken at each video's last real frame, so that neither
    depends on what the padding holds. Unpadded batches skip the packing.
    """
    lengths = prefix_lengths(mask)  # (B,)
    if bool((lengths == x.shape[1]).all()):
        outputs, (h_n, _) = lstm(x, initial)
        return outputs, h_n
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    outputs, (h_n, _) = lstm(packed, initial)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])  # (B, T, H')
    return outputs, h_n
