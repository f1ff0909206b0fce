"""Deep hashing losses: CSQ's central similarity and quantisation terms, and the DSH baseline.

CSQ — Yuan et al., "Central Similarity Quantization for Efficient Image and Video Retrieval",
CVPR 2020, arXiv 1908.00347. With h = tanh(z) ∈ (−1, 1)^K the continuous code of a sample and
c ∈ {−1, +1}^K its hash center, the paper writes both in {0, 1} form, ĥ = (h + 1)/2 and
ĉ = (c + 1)/2, and trains with

    L_C = −(1/K) Σ_k [ĉ_k log ĥ_k + (1 − ĉ_k) log(1 − ĥ_k)]          (central similarity)
    L_Q = Σ_k log cosh(|h_k| − 1)                                       (quantisation)
    L   = L_C + λ L_Q

(the paper's L_Q is written as log cosh(|2ĥ_k − 1| − 1), which is the same thing). The official
code averages L_C over bits and batch (``BCELoss``) and replaces L_Q by mean (|h| − 1)².

DSH — Liu et al., "Deep Supervised Hashing for Fast Image Retrieval", CVPR 2016: a contrastive
loss on pairs of real-valued outputs plus a regulariser pulling every output to ±1.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["central_similarity_loss", "quantization_loss", "dsh_loss"]


def central_similarity_loss(z: Tensor, target_centers: Tensor) -> Tensor:
    """CSQ's central similarity loss L_C, averaged over bits and batch.

    The binary cross-entropy between ĥ = (tanh(z) + 1)/2 and ĉ = (c + 1)/2. Since
    (tanh(z) + 1)/2 = sigmoid(2z), it is computed from the logits 2z, which stays finite and
    accurate for any z (no log(0) when tanh saturates).

    Args:
        z: (B, K) pre-tanh network outputs.
        target_centers: (B, K) ±1 target centers (see ``multilabel_centers``).

    Returns:
        scalar tensor.
    """
    if z.shape != target_centers.shape:
        raise ValueError(f"central_similarity_loss: z {tuple(z.shape)} and target_centers "
                         f"{tuple(target_centers.shape)} must have the same shape (B, bits)")
    target = (target_centers.to(z.dtype) + 1) / 2  # (B, K) in {0, 1}
    return F.binary_cross_entropy_with_logits(2 * z, target)


def _logcosh(x: Tensor) -> Tensor:
    """log cosh(x) = |x| + softplus(−2|x|) − log 2, finite for any x (cosh overflows at |x| ≈ 89)."""
    x = x.abs()
    return x + F.softplus(-2 * x) - math.log(2.0)


def quantization_loss(h: Tensor, kind: Literal["logcosh", "l2"] = "logcosh") -> Tensor:
    """CSQ's quantisation loss, averaged over all elements of ``h``.

    ``"logcosh"`` is the paper's mean log cosh(|h| − 1); ``"l2"`` is the official code's
    mean (|h| − 1)². Both are 0 exactly when every entry of h is ±1.

    Args:
        h: continuous codes, usually tanh of the network outputs, any shape.
        kind: ``"logcosh"`` (paper) or ``"l2"`` (official code).

    Returns:
        scalar tensor.
    """
    gap = h.abs() - 1
    if kind == "logcosh":
        return _logcosh(gap).mean()
    if kind == "l2":
        return gap.pow(2).mean()
    raise ValueError(f"quantization_loss: kind must be 'logcosh' or 'l2', got {kind!r}")


def dsh_loss(h: Tensor, labels: Tensor, *, margin: float | None = None, alpha: float = 0.01) -> Tensor:
    """The Deep Supervised Hashing loss (Liu et al., CVPR 2016) over all in-batch pairs.

    For a pair (i, j) with D_ij = ‖h_i − h_j‖² and s_ij = 1 when the samples share a label,

        L_ij = ½ s_ij D_ij + ½ (1 − s_ij) max(m − D_ij, 0),

    averaged over the B(B − 1)/2 unordered pairs i < j, plus the regulariser
    α · mean_i ‖ |h_i| − 1 ‖₁ (the L1 norm over bits, averaged over samples). h are the raw
    real-valued outputs: DSH has no tanh, so the regulariser is what drives them to ±1.

    Args:
        h: (B, K) real-valued outputs, B ≥ 2.
        labels: (B, C) multi-hot labels (nonzero means "has the label").
        margin: m; ``None`` means 2K, the paper's choice.
        alpha: weight of the regulariser.

    Returns:
        scalar tensor.
    """
    if h.ndim != 2 or labels.ndim != 2 or len(h) != len(labels):
        raise ValueError(f"dsh_loss expects h (B, bits) and labels (B, C), "
                         f"got {tuple(h.shape)} and {tuple(labels.shape)}")
    if len(h) < 2:
        raise ValueError("dsh_loss needs at least two samples to form a pair")
    m = 2.0 * h.shape[1] if margin is None else float(margin)
    hot = (labels != 0).to(h.dtype)  # (B, C)
    similar = (hot @ hot.T > 0).to(h.dtype)  # (B, B)
    sq = h.pow(2).sum(dim=1)  # (B,)
    dist = (sq[:, None] + sq[None, :] - 2 * h @ h.T).clamp_min(0)  # (B, B) squared distances
    pair = 0.5 * similar * dist + 0.5 * (1 - similar) * (m - dist).clamp_min(0)  # (B, B)
    i, j = torch.triu_indices(len(h), len(h), offset=1, device=h.device)  # (2, B(B−1)/2)
    contrastive = pair[i, j].mean()
    regulariser = (h.abs() - 1).abs().sum(dim=1).mean()
    return contrastive + alpha * regulariser
