"""Hinge ranking losses for image–text embeddings on a batch similarity matrix.

S (B, B), S[i, j] = s(image i, caption j); caption i describes image i (positives on the
diagonal), every other pair of the batch is a negative. With margin α and [x]₊ = max(0, x):

    caption retrieval (row i):   c_s(i, j)  = [α + S[i, j] − S[i, i]]₊,   j ≠ i
    image retrieval (column j):  c_im(i, j) = [α + S[i, j] − S[j, j]]₊,   i ≠ j

- VSE0, the sum of hinges (Kiros et al. 2014; the baseline of VSE++):
  ℓ_SH = Σ_i Σ_{j≠i} c_s(i, j) + Σ_j Σ_{i≠j} c_im(i, j)
- VSE++, max of hinges (Faghri et al., "VSE++: Improving Visual-Semantic Embeddings with Hard
  Negatives", BMVC 2018, arXiv 1707.05612): only the hardest negative of each positive pair,
  ℓ_MH = Σ_i max_{j≠i} c_s(i, j) + Σ_j max_{i≠j} c_im(i, j)

Both are **summed over the batch** (not averaged), as the reference ``ContrastiveLoss`` of
fartashf/vsepp does (``max_violation`` selects ℓ_MH); 0.2 is its training scripts' default
margin. Negatives that do not violate the margin contribute 0, so with no violation the loss is 0.

Order embeddings (Vendrov et al., "Order-Embeddings of Images and Language", ICLR 2016, arXiv
1511.06361): embeddings are non-negative (absolute values) and a caption, the more
abstract concept, lies *above* its image in the reversed product order (x ≼ y iff x ≥ y
coordinate-wise: abstract = nearer the origin). With x = the image and y = the caption, the order
violation is

    E(x, y) = ‖max(0, y − x)‖²   (0 iff the caption lies above the image),

the score is s(image, caption) = −E(image, caption), and the same hinge structure applies
(margin 0.05). VSE++'s ``order_sim`` uses the unsquared norm −‖max(0, y − x)‖; ``squared=False``
gives that.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["VSE_MARGIN", "ORDER_MARGIN", "hinge_costs", "contrastive_loss", "vse0_loss", "vsepp_loss",
           "order_violation", "order_similarity"]

VSE_MARGIN = 0.2  # VSE0 / VSE++ margin (VSE++'s default)
ORDER_MARGIN = 0.05  # order embeddings' margin (Vendrov et al.)


def _check_square(sims: Tensor) -> None:
    if sims.ndim != 2 or sims.shape[0] != sims.shape[1] or sims.shape[0] == 0:
        raise ValueError(f"sims must be a square (B, B) batch similarity matrix (caption i of image i), "
                         f"got shape {tuple(sims.shape)}")


def hinge_costs(sims: Tensor, margin: float) -> tuple[Tensor, Tensor]:
    """The hinge of every negative: (B, B) -> c_s (B, B) (image i's row), c_im (B, B) (caption j's column).

    c_s[i, j] = [α + S[i, j] − S[i, i]]₊ and c_im[i, j] = [α + S[i, j] − S[j, j]]₊, 0 on the diagonal.
    """
    _check_square(sims)
    positive = sims.diagonal()  # (B,)
    eye = torch.eye(len(sims), dtype=torch.bool, device=sims.device)  # (B, B)
    cost_s = (margin + sims - positive[:, None]).clamp_min(0).masked_fill(eye, 0)  # (B, B)
    cost_im = (margin + sims - positive[None, :]).clamp_min(0).masked_fill(eye, 0)  # (B, B)
    return cost_s, cost_im


def contrastive_loss(sims: Tensor, *, margin: float = VSE_MARGIN, hardest: bool = True) -> Tensor:
    """Hinge triplet loss on a (B, B) batch similarity matrix, both directions, summed: a scalar.

    ``hardest=True``: VSE++'s max of hinges ℓ_MH; ``False``: VSE0's sum of hinges ℓ_SH.
    """
    cost_s, cost_im = hinge_costs(sims, margin)  # (B, B), (B, B)
    if hardest:
        return cost_s.max(dim=1).values.sum() + cost_im.max(dim=0).values.sum()
    return cost_s.sum() + cost_im.sum()


def vse0_loss(sims: Tensor, *, margin: float = VSE_MARGIN) -> Tensor:
    """VSE0: sum of hinges over all negatives, both directions (a scalar, summed over the batch)."""
    return contrastive_loss(sims, margin=margin, hardest=False)


def vsepp_loss(sims: Tensor, *, margin: float = VSE_MARGIN) -> Tensor:
    """VSE++: the hinge of the hardest negative per positive pair, both directions (summed)."""
    return contrastive_loss(sims, margin=margin, hardest=True)


def order_violation(images: Tensor, captions: Tensor, *, squared: bool = True) -> Tensor:
    """E(image i, caption j) = ‖max(0, caption_j − image_i)‖²: (B, D), (B', D) -> (B, B').

    ``squared=False``: the norm itself (VSE++'s ``order_sim``). Embeddings are expected ≥ 0.
    """
    if images.ndim != 2 or captions.ndim != 2 or images.shape[1] != captions.shape[1]:
        raise ValueError(f"images (B, D) and captions (B', D) must share D, got {tuple(images.shape)} "
                         f"and {tuple(captions.shape)}")
    gap = (captions[None, :, :] - images[:, None, :]).clamp_min(0)  # (B, B', D) y − x where positive
    energy = gap.pow(2).sum(dim=-1)  # (B, B')
    return energy if squared else energy.sqrt()


def order_similarity(images: Tensor, captions: Tensor, *, squared: bool = True) -> Tensor:
    """s = −E(image, caption) (:func:`order_violation`): (B, D), (B', D) -> (B, B'), for the hinge losses
    (with ``margin=ORDER_MARGIN``) and as the ``similarity`` of the retrieval metrics."""
    return -order_violation(images, captions, squared=squared)
