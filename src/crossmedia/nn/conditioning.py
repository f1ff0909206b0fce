"""Conditioning augmentation (StackGAN, Zhang et al., "StackGAN: Text to Photo-realistic Image
Synthesis with Stacked Generative Adversarial Networks", ICCV 2017, arXiv 1612.03242, Sec. 3.3).

A text embedding φ_t is high-dimensional and the training set has few of them, so a generator
conditioned on φ_t directly sees a sparse, discontinuous conditioning manifold. StackGAN instead
samples the condition from a Gaussian whose mean and diagonal covariance are functions of φ_t:

    (μ, log σ²) = split(act(W φ_t + b)),     ĉ = μ + σ ⊙ ε,  ε ~ N(0, I)        (reparameterisation)

and regularises that Gaussian towards the standard normal, adding to the generator loss

    λ · D_KL(N(μ, diag σ²) ‖ N(0, I)),   D_KL = ½ Σ_d (μ_d² + σ_d² − 1 − log σ_d²)      (Eq. 6)

(λ = 1 in the paper; the official configs use 2.0). Sampling is differentiable in μ and σ. In
eval mode the module returns ĉ = μ, so inference is deterministic.

``act`` is LeakyReLU(0.2) in the paper's own code (StackGAN-v1, TensorFlow) or a GLU over a
twice-wider layer in StackGAN++ and AttnGAN (PyTorch); both are offered. Shapes: (B, text_dim)
-> ĉ, μ, log σ² each (B, cond_dim).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConditioningAugmentation", "kl_to_standard_normal"]

Reduction = Literal["mean", "batchmean"]


def kl_to_standard_normal(mu: Tensor, logvar: Tensor, *, reduction: Reduction = "mean") -> Tensor:
    """D_KL(N(μ, diag σ²) ‖ N(0, I)) from μ and log σ², each (B, D); float32 scalar.

    Per element k = ½ (μ² + σ² − 1 − log σ²). ``reduction="mean"`` averages k over the batch *and*
    the D dimensions, as StackGAN's official code does (its ``KL_loss``), so the weight λ of its
    configs applies as published; ``"batchmean"`` sums over dimensions and averages over the
    batch: the closed-form KL of each sample's Gaussian (= D × the "mean" value).
    """
    mu, logvar = mu.float(), logvar.float()
    per_element = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # (B, D)
    if reduction == "mean":
        return per_element.mean()
    if reduction == "batchmean":
        return per_element.sum(dim=1).mean()
    raise ValueError(f"KL reduction must be 'mean' or 'batchmean', got {reduction!r}")


class ConditioningAugmentation(nn.Module):
    """StackGAN's conditioning augmentation: (B, text_dim) -> (ĉ, μ, log σ²), each (B, cond_dim).

    Args:
        text_dim: width of the text (or sentence, or speech) embedding.
        cond_dim: width of the sampled condition ĉ (128 in StackGAN, 100 in AttnGAN).
        activation: ``"leaky_relu"`` (StackGAN-v1's code, slope 0.2) or ``"glu"`` (StackGAN++/AttnGAN:
            the linear layer is twice as wide and a GLU halves it).
    """

    def __init__(self, *, text_dim: int, cond_dim: int, activation: Literal["leaky_relu", "glu"] = "leaky_relu"
                 ) -> None:
        super().__init__()
        if activation not in ("leaky_relu", "glu"):
            raise ValueError(f"ConditioningAugmentation activation must be 'leaky_relu' or 'glu', got {activation!r}")
        self.cond_dim, self.activation = cond_dim, activation
        self.fc = nn.Linear(text_dim, cond_dim * (4 if activation == "glu" else 2))

    def encode(self, text: Tensor) -> tuple[Tensor, Tensor]:
        """μ and log σ² of the condition, (B, text_dim) -> (B, cond_dim) each."""
        h = self.fc(text)  # (B, 2·cond) or (B, 4·cond)
        h = F.glu(h, dim=1) if self.activation == "glu" else F.leaky_relu(h, 0.2)  # (B, 2·cond)
        mu, logvar = h.chunk(2, dim=1)  # (B, cond), (B, cond)
        return mu, logvar

    def forward(self, text: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(ĉ, μ, log σ²): ĉ = μ + σ ⊙ ε in training mode, ĉ = μ in eval mode."""
        mu, logvar = self.encode(text)
        if not self.training:
            return mu, mu, logvar
        eps = torch.randn_like(mu)  # (B, cond)
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar
