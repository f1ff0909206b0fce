"""Hashing networks: a timm backbone (image or frame encoder) and the CSQ hash head.

Yuan et al., "Central Similarity Quantization for Efficient Image and Video Retrieval",
CVPR 2020 (arXiv 1908.00347), Sec. 3.3: a deep feature extractor followed by a hash layer whose
``bits`` outputs are squashed by tanh to approximate binary codes.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from crossmedia.core.backbones import create_backbone

__all__ = ["HashHead", "ImageHashNet", "VideoHashNet", "Conv3dEncoder", "timm_backbone"]


# helpers

def timm_backbone(name: str, *, pretrained: bool = False) -> tuple[nn.Module, int]:
    """A timm model by name with its classifier removed; returns (module, feature width).

    Built through :func:`crossmedia.core.backbones.create_backbone`: ``pretrained=True`` on
    ``tf_efficientnet_lite0`` reads ImageNet weights offline from a pip package.
    """
    backbone = create_backbone(name, pretrained=pretrained, num_classes=0)
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


class Conv3dEncoder(nn.Module):
    """A small C3D-style clip encoder: four 3×3×3 conv–BN–ReLU blocks, then global pooling.

    Spatio-temporal convolutions see where things move, which per-frame encoders with global
    pooling cannot (they discard position before time is modelled).
    """

    def __init__(self, *, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        blocks, channels = [], 3
        for i, width in enumerate(widths):
            pool = (1, 2, 2) if i == 0 else (2, 2, 2)  # keep early time resolution, as C3D does
            blocks += [nn.Conv3d(channels, width, kernel_size=3, padding=1), nn.BatchNorm3d(width),
                       nn.ReLU(inplace=True), nn.MaxPool3d(pool, ceil_mode=True)]
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.num_features = channels

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W) -> (B, F)
        volume = rearrange(clips, "b t c h w -> b c t h w")
        return self.blocks(volume).mean(dim=(2, 3, 4))  # (B, F)


class VideoHashNet(nn.Module):
    """Clip → z: a clip encoder, then :class:`HashHead`.

    ``temporal`` says how time is modelled:
      - ``"c3d"``: a 3D CNN over the clip (:class:`Conv3dEncoder`), the paper's choice for
        UCF101/HMDB51; ``backbone`` is not used.
      - ``"conv"``: any timm image backbone encodes frames; a temporal 1-D convolution over the
        frame features, then average pooling over time (frame order matters).
      - ``"mean"``: frame features averaged over time.
    """

    def __init__(self, *, backbone: str, bits: int, pretrained: bool = False, hidden: int = 512,
                 dropout: float = 0.5, temporal: str = "c3d"):
        super().__init__()
        if temporal not in ("c3d", "conv", "mean"):
            raise ValueError(f"temporal must be 'c3d', 'conv' or 'mean', got {temporal!r}")
        if temporal == "c3d":
            self.encoder = Conv3dEncoder()
            self.head = HashHead(in_features=self.encoder.num_features, bits=bits, hidden=hidden, dropout=dropout)
            return
        self.encoder = None
        self.backbone, width = timm_backbone(backbone, pretrained=pretrained)
        self.temporal = nn.Sequential(
            nn.Conv1d(width, width, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv1d(width, width, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        ) if temporal == "conv" else nn.Identity()
        self.head = HashHead(in_features=width, bits=bits, hidden=hidden, dropout=dropout)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W) -> (B, bits)
        if self.encoder is not None:
            return self.head(self.encoder(clips))
        b = clips.shape[0]
        frames = rearrange(clips, "b t c h w -> (b t) c h w")
        features = rearrange(self.backbone(frames), "(b t) f -> b f t", b=b)  # (B, F, T)
        pooled = self.temporal(features).mean(dim=2)  # (B, F)
        return self.head(pooled)
