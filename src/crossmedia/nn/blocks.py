"""Encoder / decoder blocks of image-to-image GAN generators (pix2pix, CycleGAN, PSGAN / SCGAN).

* :class:`DownBlock` — the encoder step of pix2pix / CycleGAN and of PSGAN / SCGAN's encoders
  (Yang et al., "Pose Guided Human Video Generation", ECCV 2018, arXiv 1807.11152): a 4 x 4
  convolution of stride 2 (halves H and W), instance norm, ReLU. (B, C, H, W) -> (B, C', H/2, W/2).
* :class:`ResidualBlock` — x + F(x), F = conv3x3-IN-ReLU-conv3x3-IN (He et al. 2016 as used by
  CycleGAN's generator, Zhu et al. 2017, arXiv 1703.10593): (B, C, H, W) -> same.
* :class:`UpBlock` — the decoder step SCGAN asks for: interpolation (x2, nearest) then a 3 x 3
  convolution, instance norm, ReLU, instead of a transposed convolution, which leaves
  checkerboard artefacts (Odena et al., "Deconvolution and Checkerboard Artifacts", Distill 2016).
  (B, C, H, W) -> (B, C', 2H, 2W).
* :class:`UpBlock3d` — the strided 3-D transposed convolution of PSGAN's decoder, doubling time
  and space: (B, C, T, H, W) -> (B, C', 2T, 2H, 2W) (kernel 4, stride 2, padding 1), IN, ReLU.

Instance norm has no running statistics here (``track_running_stats=False``, PyTorch's default),
so train and eval modes compute the same thing, and ``affine=True`` gives it a learnt scale/shift.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DownBlock", "ResidualBlock", "UpBlock", "UpBlock3d"]


class DownBlock(nn.Sequential):
    """Conv 4x4 stride 2 (+ instance norm unless ``norm=False``) + ReLU: (B, C, H, W) -> (B, C', H/2, W/2)."""

    def __init__(self, c_in: int, c_out: int, *, norm: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not norm)]
        if norm:
            layers.append(nn.InstanceNorm2d(c_out, affine=True))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """x + IN(conv3x3(ReLU(IN(conv3x3(x))))) at constant shape (B, C, H, W) (``dims=3``: (B, C, T, H, W))."""

    def __init__(self, channels: int, *, dims: int = 2) -> None:
        super().__init__()
        conv, norm = (nn.Conv2d, nn.InstanceNorm2d) if dims == 2 else (nn.Conv3d, nn.InstanceNorm3d)
        self.body = nn.Sequential(conv(channels, channels, 3, 1, 1, bias=False), norm(channels, affine=True),
                                  nn.ReLU(inplace=True), conv(channels, channels, 3, 1, 1, bias=False),
                                  norm(channels, affine=True))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class UpBlock(nn.Module):
    """Nearest x2 up-sampling, conv 3x3, instance norm, ReLU: (B, C, H, W) -> (B, C', 2H, 2W)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
        self.norm = nn.InstanceNorm2d(c_out, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))), inplace=True)


class UpBlock3d(nn.Sequential):
    """ConvTranspose3d (kernel 4, stride 2, padding 1), IN, ReLU: (B, C, T, H, W) -> (B, C', 2T, 2H, 2W)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.ConvTranspose3d(c_in, c_out, 4, 2, 1, bias=False), nn.InstanceNorm3d(c_out, affine=True),
                         nn.ReLU(inplace=True))
