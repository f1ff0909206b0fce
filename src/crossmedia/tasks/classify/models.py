"""Classification networks: a timm backbone (its classifier removed) and a linear head; clips pool
the per-frame features over time first."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from crossmedia.core.backbones import create_backbone

__all__ = ["ImageClassifierNet"]


class ImageClassifierNet(nn.Module):
    """Images (B, 3, S, S) -> logits (B, K): the pooled features of a timm backbone built by
    :func:`crossmedia.core.backbones.create_backbone` (``num_classes=0``; ``pretrained=True`` reads
    ImageNet weights, offline for the names it lists), dropout, then one linear layer.

    Clips (B, T, 3, S, S) go through the same backbone frame by frame and their features are
    averaged over the T frames (temporal mean pooling, f = 1/T Σ_t φ(x_t)) before the head: no
    parameter is added, so one set of weights classifies images and clips, and every loss of
    :mod:`crossmedia.nn.distill` applies to clips unchanged."""

    def __init__(self, *, backbone: str, num_classes: int, pretrained: bool = False, dropout: float = 0.0):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained=pretrained, num_classes=0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.backbone.num_features, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) or (B, T, 3, S, S) -> (B, K)
        if images.ndim == 5:
            frames = images.shape[1]
            features = self.backbone(rearrange(images, "b t c h w -> (b t) c h w"))  # (B T, D)
            return self.head(rearrange(features, "(b t) d -> b t d", t=frames).mean(dim=1))  # (B, K)
        return self.head(self.backbone(images))
