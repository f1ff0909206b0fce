"""Adversarial losses: the standard (BCE, non-saturating) and hinge GAN losses, and GAN-INT-CLS's
matching-aware discriminator loss.

Every function takes discriminator *logits* (pre-sigmoid scores) of any shape — (B,) or (B, 1)
for a global discriminator, (B, 1, H, W) for a PatchGAN — averages over all elements and returns
a float32 scalar to minimise. Logits are upcast to float32 first, so the losses are safe under
bf16 autocast. Below, D(·) is the logit and σ the logistic sigmoid; E is the mean over elements.

Standard GAN (Goodfellow et al., NeurIPS 2014, arXiv 1406.2661), with the generator's
non-saturating loss of the same paper (maximise log D(G(z)) instead of minimising log(1 − D(G(z)))):

    L_D = −E log σ(D(x)) − E log(1 − σ(D(G(z))))        (:func:`bce_d_loss`)
    L_G = −E log σ(D(G(z)))                              (:func:`bce_g_loss`)

Hinge GAN (Lim & Ye 2017, arXiv 1705.02894; Miyato et al., ICLR 2018, SN-GAN):

    L_D = E max(0, 1 − D(x)) + E max(0, 1 + D(G(z)))    (:func:`hinge_d_loss`)
    L_G = −E D(G(z))                                     (:func:`hinge_g_loss`)

Matching-aware discriminator (GAN-CLS, Reed et al., "Generative Adversarial Text to Image
Synthesis", ICML 2016, arXiv 1605.05396, Algorithm 1): D scores (image, text) pairs and must call
"fake" both a generated image with its text and a real image with the *wrong* text, so it learns
to judge the match, not only realism. With s_r = σ(D(x, h)), s_w = σ(D(x, ĥ)), s_f = σ(D(G(z, h), h)):

    L_D = −[log s_r + (log(1 − s_w) + log(1 − s_f)) / 2]   (:func:`matching_aware_d_loss`)

and the generator keeps L_G = −log s_f (:func:`bce_g_loss` on the fake/right-text logits).
``kind="hinge"`` gives the same structure with hinge terms (real: max(0, 1 − D); fake:
max(0, 1 + D)).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["bce_d_loss", "bce_g_loss", "hinge_d_loss", "hinge_g_loss", "matching_aware_d_loss"]

Kind = Literal["bce", "hinge"]


# helpers

def _real_term(logits: Tensor, kind: Kind) -> Tensor:
    """The discriminator's loss for logits it should call real: E −log σ(D) or E max(0, 1 − D)."""
    logits = logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    if kind == "hinge":
        return F.relu(1.0 - logits).mean()
    raise ValueError(f"GAN loss kind must be 'bce' or 'hinge', got {kind!r}")


def _fake_term(logits: Tensor, kind: Kind) -> Tensor:
    """The discriminator's loss for logits it should call fake: E −log(1 − σ(D)) or E max(0, 1 + D)."""
    logits = logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
    if kind == "hinge":
        return F.relu(1.0 + logits).mean()
    raise ValueError(f"GAN loss kind must be 'bce' or 'hinge', got {kind!r}")


# losses

def bce_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Standard discriminator loss: −E log σ(D(x)) − E log(1 − σ(D(G(z)))); scalar."""
    return _real_term(real_logits, "bce") + _fake_term(fake_logits, "bce")


def bce_g_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss: −E log σ(D(G(z))); scalar."""
    return _real_term(fake_logits, "bce")


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Hinge discriminator loss: E max(0, 1 − D(x)) + E max(0, 1 + D(G(z))); scalar."""
    return _real_term(real_logits, "hinge") + _fake_term(fake_logits, "hinge")


def hinge_g_loss(fake_logits: Tensor) -> Tensor:
    """Hinge generator loss: −E D(G(z)); scalar."""
    return -fake_logits.float().mean()


def matching_aware_d_loss(real_right: Tensor, real_wrong: Tensor, fake_right: Tensor, *,
                          kind: Kind = "bce") -> Tensor:
    """GAN-CLS discriminator loss (Reed et al. 2016, Algorithm 1): real + ½ (mismatch + fake).

    Args:
        real_right: logits of D on (real image, its text): should say real.
        real_wrong: logits of D on (real image, a mismatching text): should say fake.
        fake_right: logits of D on (generated image, the text it was generated from): should say fake.
        kind: ``"bce"`` (the paper's log-loss) or ``"hinge"``.

    Returns:
        float32 scalar L_D = L_real(s_r) + (L_fake(s_w) + L_fake(s_f)) / 2.
    """
    return _real_term(real_right, kind) + (_fake_term(real_wrong, kind) + _fake_term(fake_right, kind)) / 2
