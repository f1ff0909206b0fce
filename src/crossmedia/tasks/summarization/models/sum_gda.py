"""SUM-GDA: video summarisation via global diverse attention.

Li, Ye, Zhang, Yuan, Xu and Shao, "Exploring Global Diverse Attention via Pairwise Temporal
Relation for Video Summarization", Pattern Recognition 2021 (arXiv 2009.10942).

A fully feed-forward network (no recurrence) that scores every frame of a video at once. With
x_i ∈ R^D the feature of frame i of a video with n real frames:

    e_ij = (W_q x_i)ᵀ (W_k x_j) / √d                  pairwise temporal relation         (1)
    α_ij = exp(e_ij) / Σ_k exp(e_ik)                  attention matrix A, softmax by row (2)
    d_j  = Π_{i≠j} (1 − α_ij)                         global diverse attention           (3)
    d̂_j  = d_j / Σ_k d_k                              normalised diverse attention       (4)
    c_j  = W_o (n d̂_j · W_v x_j)                      diverse-attention-weighted context (5)
    y_j  = LayerNorm(x_j + c_j)                       residual + normalisation           (6)
    s_j  = σ(w₂ᵀ LayerNorm(ReLU(W₁ y_j)) + b₂)        regressor → importance score       (7)

(3) is the GDA idea: 1 − α_ij is how dissimilar frame i finds frame j, so a frame that many
others attend to (a redundant, often-repeated view) gets a small product and a frame that nobody
else resembles gets a large one — attention that favours diverse frames. It is computed as
log d_j = Σ_{i≠j} log1p(−α_ij) and (4) as a softmax of those logs, so a product of thousands of
factors < 1 never underflows (a hub frame of a 2,000-frame video can have d_j ≈ e^−1400).

Choices where the paper leaves room (documented in the module API too):

- ``product_over="queries"`` is (3) as written above. The public re-implementations of SUM-GDA
  (in the CA-SUM / XAI-SUM code) take the product along the other axis, d_i = Π_j (1 − α_ij);
  ``product_over="keys"`` gives that. Both exclude i = j ("other frames").
- The factor n in (5) makes the weights average 1 whatever the video length, and the residual in
  (6) (as in VASNet, which SUM-GDA builds on) keeps the diverse weight from being cancelled by
  the LayerNorm, which is scale-invariant. With ``heads > 1`` each head has its own A and d̂.

Losses: supervised training regresses the annotators' frame scores (MSE, masked); the
unsupervised variant (SUM-GDA_unsup) is trained without annotations, see
:func:`sum_gda_unsupervised_loss`.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, einsum, nn

from crossmedia.nn.masking import masked_mean

from ._sequence import check_mask

__all__ = ["SumGDA", "log_diversity", "diverse_attention", "sum_gda_supervised_loss",
           "sum_gda_unsupervised_loss", "selection_terms"]

ProductOver = Literal["queries", "keys"]


# helpers

def selection_terms(scores: Tensor, features: Tensor, mask: Tensor | None = None, *,
                    eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """L_div and L_rep of :func:`sum_gda_unsupervised_loss` per video, each (B,), from one
    cosine-similarity matrix of the frames.

    L_div (repelling): the score-weighted mean cosine similarity of distinct frame pairs,
    Σ_{i≠j} s_i s_j (1 − δ_ij) / Σ_{i≠j} s_i s_j. L_rep (representativeness): each real
    frame's expected cosine distance to its nearest summary frame, E_Y[min_{j∈Y} δ_tj] with frame
    j in Y independently with probability s_j (an empty Y costs t's largest distance), averaged
    over the real frames. Exact, see :func:`sum_gda_unsupervised_loss`.
    """
    mask = check_mask(features, mask)
    if scores.shape != mask.shape:
        raise ValueError(f"scores {tuple(scores.shape)} must be (B, T) = {tuple(mask.shape)}")
    s = scores.masked_fill(~mask, 0.0)  # (B, T)
    f = F.normalize(features.to(scores.dtype), dim=-1)  # (B, T, D)
    similarity = einsum("b i d, b j d -> b i j", f, f)  # (B, T, T) cosine
    pair = mask[:, :, None] & mask[:, None, :]  # (B, T, T) real pairs

    off_diagonal = pair & ~torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    pair_weight = (s[:, :, None] * s[:, None, :]).masked_fill(~off_diagonal, 0.0)  # (B, T, T)
    repelling = (pair_weight * similarity).sum(dim=(1, 2)) / (pair_weight.sum(dim=(1, 2)) + eps)

    distance = (1.0 - similarity).clamp(min=0.0).masked_fill(~pair, 0.0)  # (B, T, T) δ_tj
    farthest = distance.amax(dim=-1)  # (B, T) cost of an empty summary
    distance = distance.masked_fill(~mask[:, None, :], float("inf"))  # padding sorts last
    nearest, order = distance.sort(dim=-1)  # (B, T, T) neighbours of t, nearest first
    s_sorted = s[:, None, :].expand_as(order).gather(-1, order)  # (B, T, T) s_(k)
    log_absent = torch.log1p(-s_sorted.clamp(max=1.0 - eps))  # (B, T, T) log(1 − s_(k))
    log_before = log_absent.cumsum(dim=-1) - log_absent  # (B, T, T) log Π_{l<k} (1 − s_(l))
    first = s_sorted * log_before.exp()  # (B, T, T) P(k-th nearest is the nearest in Y)
    expected = (first * nearest.nan_to_num(posinf=0.0)).sum(-1)  # (B, T)
    expected = expected + log_absent.sum(-1).exp() * farthest  # + P(Y empty) · farthest
    return repelling, masked_mean(expected, mask, dim=1)  # (B,), (B,)


def log_diversity(attention: Tensor, mask: Tensor | None = None, *,
                  product_over: ProductOver = "queries", eps: float = 1e-6) -> Tensor:
    """log d of Eq. (3): Σ log1p(−α) over the other real frames, never −inf.

    Args:
        attention: (B, T, T) or (B, h, T, T) row-stochastic attention, α_ij = A[..., i, j].
        mask: optional bool (B, T), True on real frames; padded rows and columns are left out.
        product_over: ``"queries"`` gives log d_j = Σ_{i≠j} log(1 − α_ij) (a column of A),
            ``"keys"`` gives log d_i = Σ_{j≠i} log(1 − α_ij) (a row of A).
        eps: α is clamped to 1 − eps so that log(1 − α) stays finite.

    Returns:
        (B, T) or (B, h, T) log diversity weights (0 on padded frames).
    """
    squeeze = attention.dim() == 3
    a = attention.unsqueeze(1) if squeeze else attention  # (B, h, T, T)
    t = a.shape[-1]
    log_dissimilarity = torch.log1p(-a.clamp(max=1.0 - eps))  # (B, h, T, T) log(1 − α_ij)
    keep = ~torch.eye(t, dtype=torch.bool, device=a.device)  # (T, T) other frames only
    if mask is not None:
        keep = keep & mask[:, None, :, None] & mask[:, None, None, :]  # (B, 1, T, T)
    log_dissimilarity = log_dissimilarity.masked_fill(~keep, 0.0)
    if product_over == "queries":
        out = log_dissimilarity.sum(dim=-2)  # (B, h, T) indexed by j
    elif product_over == "keys":
        out = log_dissimilarity.sum(dim=-1)  # (B, h, T) indexed by i
    else:
        raise ValueError(f"product_over must be 'queries' or 'keys', got {product_over!r}")
    return out.squeeze(1) if squeeze else out


def diverse_attention(attention: Tensor, mask: Tensor | None = None, *,
                      product_over: ProductOver = "queries") -> Tensor:
    """d̂ of Eq. (4): the diversity weights normalised to sum to 1 over each video's real frames.

    The normalisation d_j / Σ_k d_k is a softmax of log d, so it is exact even where every d_j
    would underflow in a direct product. Shapes as in :func:`log_diversity`; 0 on padding.
    """
    log_d = log_diversity(attention, mask, product_over=product_over)  # (B, [h,] T)
    if mask is not None:
        pad = ~mask if log_d.dim() == 2 else ~mask[:, None, :]
        log_d = log_d.masked_fill(pad, float("-inf"))
    return log_d.softmax(dim=-1)


# classes

class SumGDA(nn.Module):
    """SUM-GDA frame scorer, Eqs. (1)–(7): (B, T, D) features → (B, T) scores in [0, 1].

    Args:
        in_dim: frame feature size D (1024 for GoogLeNet pool5).
        hidden: width of the query/key/value projections and of the regressor (1024 in the public re-implementations).
        heads: attention heads; ``hidden`` must be divisible by it (the paper has one).
        dropout: dropout on the context and inside the regressor (0.5 as in VASNet).
        product_over: axis of the product in Eq. (3), see :func:`log_diversity`.
    """

    def __init__(self, *, in_dim: int, hidden: int = 256, heads: int = 1, dropout: float = 0.5,
                 product_over: ProductOver = "queries"):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        if product_over not in ("queries", "keys"):
            raise ValueError(f"product_over must be 'queries' or 'keys', got {product_over!r}")
        self.heads = heads
        self.product_over = product_over
        self.scale = 1.0 / math.sqrt(hidden // heads)
        self.to_qkv = nn.Linear(in_dim, 3 * hidden, bias=False)
        self.to_out = nn.Linear(hidden, in_dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(in_dim)
        self.regressor = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.LayerNorm(hidden), nn.Linear(hidden, 1),
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Score every frame.

        Args:
            x: (B, T, D) frame features.
            mask: optional bool (B, T), True on real frames.

        Returns:
            scores (B, T) in [0, 1] (0 on padding) and the attention matrix A (B, T, T) of
            Eq. (2), averaged over heads (rows and columns of padded frames are 0).
        """
        mask = check_mask(x, mask)
        q, k, v = rearrange(self.to_qkv(x), "b t (three h d) -> three b h t d",
                            three=3, h=self.heads)  # 3 × (B, h, T, d)
        relation = einsum("b h i d, b h j d -> b h i j", q, k) * self.scale  # (B, h, T, T) Eq. (1)
        relation = relation.masked_fill(~mask[:, None, None, :], float("-inf"))
        attention = relation.softmax(dim=-1)  # (B, h, T, T) Eq. (2)
        attention = attention * mask[:, None, :, None]  # padded query rows → 0
        weights = diverse_attention(attention, mask, product_over=self.product_over)  # (B, h, T) (3)-(4)
        n = mask.sum(dim=1).to(x.dtype)  # (B,)
        context = (n[:, None, None] * weights).unsqueeze(-1) * v  # (B, h, T, d) Eq. (5)
        context = rearrange(context, "b h t d -> b t (h d)")  # (B, T, hidden)
        y = self.norm(x + self.dropout(self.to_out(context)))  # (B, T, D) Eq. (6)
        scores = self.regressor(y).squeeze(-1).sigmoid()  # (B, T) Eq. (7)
        return scores.masked_fill(~mask, 0.0), attention.mean(dim=1)


# losses

def sum_gda_supervised_loss(scores: Tensor, gtscore: Tensor, mask: Tensor | None = None
                            ) -> dict[str, Tensor]:
    """Supervised SUM-GDA loss: the mean squared error between predicted and annotated scores.

    Args:
        scores: (B, T) predicted importance in [0, 1].
        gtscore: (B, T) ground-truth frame importance (the eccv16 ``gtscore``, in [0, 1]).
        mask: optional bool (B, T); padded frames do not count. Each video weighs the same.

    Returns:
        ``{"mse": ..., "total": ...}`` (equal here; ``total`` is what to back-propagate).
    """
    if scores.shape != gtscore.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and gtscore {tuple(gtscore.shape)} differ")
    mask = check_mask(scores.unsqueeze(-1), mask)
    mse = masked_mean((scores - gtscore.to(scores.dtype)) ** 2, mask, dim=1).mean()  # per video, then over videos
    return {"mse": mse, "total": mse}


def sum_gda_unsupervised_loss(scores: Tensor, features: Tensor, mask: Tensor | None = None, *,
                              budget: float = 0.15, diversity_weight: float = 1.0,
                              representativeness_weight: float = 1.0, length_weight: float = 1.0,
                              eps: float = 1e-6) -> dict[str, Tensor]:
    """Unsupervised SUM-GDA (SUM-GDA_unsup) objective: a diverse, representative, short summary.

    With s_t the scores, f_t = x_t / ‖x_t‖ and δ_tj = 1 − f_tᵀ f_j the cosine distance between
    frames, per video (n real frames), reading s_j as the probability that frame j is in the
    summary Y:

        L_div = Σ_{i≠j} s_i s_j (1 − δ_ij) / Σ_{i≠j} s_i s_j     repelling: the summary's frames
                                                                  should not look alike
        L_rep = (1/n) Σ_t E_Y[ min_{j∈Y} δ_tj ]                   every frame should be close to
                                                                  a summary frame (k-medoids)
        L_len = | (1/n) Σ_t s_t − σ |                             summary length ≈ budget σ

        L = λ_div L_div + λ_rep L_rep + λ_len L_len

    L_rep is exact: with frame t's neighbours sorted by distance, the k-th nearest is the
    nearest summary frame with probability s_(k) Π_{l<k} (1 − s_(l)) (the products are summed
    in log space), and an empty summary costs t's largest distance. L_div and L_rep are the
    differentiable forms of the diversity and representativeness criteria of unsupervised
    summarisers (SUM-GAN's repelling regulariser, Mahasseni et al. 2017; the rewards of
    DR-DSN, Zhou et al. 2018); L_len is SUM-GAN's sparsity term with σ the 15 % budget. L_div
    does not change when all scores are scaled, L_rep falls as scores grow, and L_len holds the
    summary length. All act on the input features, which the network cannot move.

    Args:
        scores: (B, T) predicted importance in [0, 1].
        features: (B, T, D) the frame features the scores were predicted from.
        mask: optional bool (B, T), True on real frames.
        budget: σ, the target mean score (fraction of the video in the summary).
        diversity_weight, representativeness_weight, length_weight: λ_div, λ_rep, λ_len.

    Returns:
        ``{"diversity", "representativeness", "length", "total"}`` scalar tensors.
    """
    diversity, representativeness = (term.mean() for term in selection_terms(scores, features, mask, eps=eps))
    mask = check_mask(features, mask)
    s = scores.masked_fill(~mask, 0.0)  # (B, T)
    length = (masked_mean(s, mask, dim=1) - budget).abs().mean()
    total = (diversity_weight * diversity + representativeness_weight * representativeness
             + length_weight * length)
    return {"diversity": diversity, "representativeness": representativeness, "length": length,
            "total": total}
