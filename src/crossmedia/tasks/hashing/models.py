"""Hashing networks: a timm backbone (image or frame encoder) and the CSQ hash head.

Yuan et al., "Central Similarity Quantization for Efficient Image and Video Retrieval",
CVPR 2020 (arXiv 1908.00347), Sec. 3.3: a deep feature extractor followed by a hash layer whose
``bits`` outputs are squashed by tanh to approximate binary codes.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

__all__ = ["HashHead", "ImageHashNet", "VideoHashNet", "timm_backbone"]


# helpers

def timm_backbone(name: str, *, pretrained: bool = False) -> tuple[nn.Module, int]:
    """A timm model by name with its classifier removed; returns (module, feature width)."""
    import timm

    backbone = timm.create_model(name, pretrained=pretrained, num_classes=0)
    return backbone, backbone.num_features


# classes

class HashHead(nn.Module):
    """fc–ReLU–dropout–fc–ReLU–fc(bits): the hash layer; outputs pre-tanh logits z."""

    def __init__(self, *, in_features: int, bits: int, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, bits),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)  # (B, bits)


class ImageHashNet(nn.Module):
    """Image → z: timm backbone features, then :class:`HashHead`."""

    def __init__(self, *, backbone: str, bits: int, pretrained: bool = False, hidden: int = 512,
                 dropout: float = 0.5):
        super().__init__()
        self.backbone, width = timm_backbone(backbone, pretrained=pretrained)
        self.head = HashHead(in_features=width, bits=bits, hidden=hidden, dropout=dropout)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, bits)
        return self.head(self.backbone(images))


class VideoHashNet(nn.Module):
    """Clip → z: a frame encoder, temporal modelling, pooling, then :class:`HashHead`.

    The paper's video variant uses a 3D CNN; here any timm image backbone encodes frames and a
    temporal 1-D convolution (``temporal="conv"``) models motion before average pooling over
    time, so the order of frames matters. ``temporal="mean"`` is plain frame averaging.
    """

    def __init__(self, *, backbone: str, bits: int, pretrained: bool = False, hidden: int = 512,
                 dropout: float = 0.5, temporal: str = "conv"):
        super().__init__()
        if temporal not in ("conv", "mean"):
            raise ValueError(f"temporal must be 'conv' or 'mean', got {temporal!r}")
        self.backbone, width = timm_backbone(backbone, pretrained=pretrained)
        self.temporal = nn.Sequential(
            nn.Conv1d(width, width, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv1d(width, width, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        ) if temporal == "conv" else nn.Identity()
        self.head = HashHead(in_features=width, bits=bits, hidden=hidden, dropout=dropout)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W) -> (B, bits)
        b = clips.shape[0]
        frames = rearrange(clips, "b t c h w -> (b t) c h w")
        features = rearrange(self.backbone(frames), "(b t) f -> b f t", b=b)  # (B, F, T)
        pooled = self.temporal(features).mean(dim=2)  # (B, F)
        return self.head(pooled)
