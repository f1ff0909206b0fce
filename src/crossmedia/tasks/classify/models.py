"""Classification networks: a timm backbone (its classifier removed) and a linear head."""
from __future__ import annotations

import torch
from torch import nn

from crossmedia.core.backbones import create_backbone

__all__ = ["ImageClassifierNet"]


class ImageClassifierNet(nn.Module):
    """Images (B, 3, S, S) -> logits (B, K): the pooled features of a timm backbone built by
    :func:`crossmedia.core.backbones.create_backbone` (``num_classes=0``; ``pretrained=True`` reads
    ImageNet weights, offline for the names it lists), dropout, then one linear layer."""

    def __init__(self, *, backbone: str, num_classes: int, pretrained: bool = False, dropout: float = 0.0):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained=pretrained, num_classes=0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.backbone.num_features, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, K)
        return self.head(self.backbone(images))
