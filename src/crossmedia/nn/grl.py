"""Gradient reversal layer (Ganin & Lempitsky, "Unsupervised Domain Adaptation by
Backpropagation", ICML 2015, arXiv 1409.7495, Sec. 3.3).

A pseudo-function R_λ with

    R_λ(x) = x   (forward),        ∂R_λ/∂x = −λ I   (backward).

Put between a feature extractor and a domain (or modality) classifier, one backward pass trains
the classifier to tell the domains apart and the extractor to make them indistinguishable: the
min-max game of adversarial feature learning without alternating optimisers. ACMR (Wang et al.,
ACM MM 2017) uses it between its projectors and its modality classifier.

λ is usually ramped from 0 to 1 over training (Ganin & Lempitsky, Sec. 5.2.2):

    λ_p = 2 / (1 + exp(−γ p)) − 1,   γ = 10,   p ∈ [0, 1] the training progress   (:func:`grl_lambda`)

Shapes: any tensor -> the same tensor; the gradient coming back has the same shape.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["GradientReversal", "grad_reverse", "grl_lambda"]


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, lambda_: float) -> Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.lambda_ * grad, None


def grad_reverse(x: Tensor, lambda_: float = 1.0) -> Tensor:
    """Identity forward; the gradient is multiplied by −λ on the way back."""
    return _ReverseGrad.apply(x, float(lambda_))


def grl_lambda(progress: float, gamma: float = 10.0) -> float:
    """Ganin & Lempitsky's schedule λ_p = 2 / (1 + e^(−γp)) − 1 for progress p in [0, 1]: 0 -> ~1."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"training progress must lie in [0, 1], got {progress}")
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class GradientReversal(nn.Module):
    """R_λ as a module; set ``.lambda_`` during training to follow a schedule (:func:`grl_lambda`)."""

    def __init__(self, *, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = float(lambda_)

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}"
