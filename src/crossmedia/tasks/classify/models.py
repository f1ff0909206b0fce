"""Classification networks: a timm backbone (its classifier removed) and a linear head."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ImageClassifierNet"]


class ImageClassifierNet(nn.Module):
    """Images (B, 3, S, S) -> logits (B, K): ``timm.create_model(backbone, num_classes=0)`` features,
    dropout, then one linear layer."""

    def __init__(self, *, backbone: str, num_classes: int, pretrained: bool = False, dropout: float = 0.0):
        super().__init__()
        import timm

        self.backbone = timm.create_model(backbone, pretrained=pretrained, num_classes=0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.backbone.num_features, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, K)
        return self.head(self.backbone(images))
