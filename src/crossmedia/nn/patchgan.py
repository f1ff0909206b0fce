"""The PatchGAN discriminator of pix2pix (Isola et al., "Image-to-Image Translation with Conditional
Adversarial Networks", CVPR 2017, arXiv 1611.07004, Sec. 3.2.2 and Appendix 6.1.2).

Instead of one real/fake score per image, a fully convolutional network scores every N×N patch:
it only models high-frequency structure, has few parameters and runs on any image size. The
70×70 discriminator of the paper is C64-C128-C256-C512 followed by a convolution to one channel,
where Ck is a 4×4 convolution with k filters, a norm layer and LeakyReLU(0.2); the first C64 has
no norm; every convolution has padding 1; the strides are 2 except for C512 and the last
convolution (stride 1), as in the authors' ``NLayerDiscriminator``. With ``layers`` stride-2
convolutions (widths base·2^i, capped at 8·base) the receptive field of one output logit is
found backwards from it: 1, plus 3 for each of the two stride-1 convolutions (7), then
r ← 2r + 2 for each stride-2 convolution, so r = 9·2^layers − 2: 16, 34, 70, 142 for
``layers`` = 1, 2, 3, 4.

Conditioning (pix2pix's conditional D, PSGAN's class-conditioned D) is channel concatenation:
``cond`` is either a map (B, Cc, *spatial) with the input's spatial size, or a vector (B, Cc)
(a one-hot class, an embedding) broadcast over every position.

``dims=3`` builds the same network from 3-D convolutions (4×4×4 kernels), for clips laid out
(B, C, T, H, W): a spatio-temporal PatchGAN.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["PatchGAN"]

Norm = Literal["batch", "instance", "none"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORMS = {("batch", 2): nn.BatchNorm2d, ("batch", 3): nn.BatchNorm3d,
          ("instance", 2): nn.InstanceNorm2d, ("instance", 3): nn.InstanceNorm3d}


class PatchGAN(nn.Module):
    """PatchGAN discriminator: (B, in_channels [+ cond_channels], *S) images -> (B, 1, *S') logits.

    For ``layers=3`` and 2-D inputs of size H×W, S' = (H/8 − 2)×(W/8 − 2) (30×30 for 256×256),
    and each logit sees a 70×70 patch (:attr:`receptive_field`).

    Args:
        in_channels: channels of the judged image (3 for RGB, J for J pose heatmaps).
        base: filters of the first convolution (64 in the paper).
        layers: stride-2 convolutions (3 in the paper: a 70×70 receptive field).
        cond_channels: channels of the condition concatenated to the input (0: unconditional).
        norm: ``"batch"`` (the paper's), ``"instance"`` or ``"none"``; never on the first layer.
            Convolutions followed by batch norm have no bias, as in the authors' code.
        dims: 2 for images (B, C, H, W), 3 for clips (B, C, T, H, W).
    """

    def __init__(self, *, in_channels: int = 3, base: int = 64, layers: int = 3, cond_channels: int = 0,
                 norm: Norm = "batch", dims: int = 2) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"PatchGAN layers must be ≥ 1, got {layers}")
        if dims not in _CONV:
            raise ValueError(f"PatchGAN dims must be 2 (images) or 3 (clips), got {dims}")
        if norm != "none" and (norm, dims) not in _NORMS:
            raise ValueError(f"PatchGAN norm must be 'batch', 'instance' or 'none', got {norm!r}")
        conv = _CONV[dims]
        self.layers, self.cond_channels, self.dims = layers, cond_channels, dims

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            if norm == "none":
                return [conv(c_in, c_out, 4, stride, 1), nn.LeakyReLU(0.2)]
            return [conv(c_in, c_out, 4, stride, 1, bias=norm != "batch"), _NORMS[norm, dims](c_out),
                    nn.LeakyReLU(0.2)]

        widths = [base * min(2**i, 8) for i in range(layers + 1)]  # C64-C128-C256-C512 for layers=3
        stack: list[nn.Module] = [conv(in_channels + cond_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, layers):
            stack += block(widths[i - 1], widths[i], 2)
        stack += block(widths[layers - 1], widths[layers], 1)
        stack.append(conv(widths[layers], 1, 4, 1, 1))
        self.net = nn.Sequential(*stack)

    @property
    def receptive_field(self) -> int:
        """Side of the input patch one output logit sees: 70 for ``layers=3``."""
        field = 1 + 3 + 3  # the two stride-1 4×4 convolutions at the top
        for _ in range(self.layers):
            field = 2 * field + 2  # a stride-2 4×4 convolution below: r ← (r − 1)·2 + 4
        return field

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Patch logits of ``x`` (B, C, *S), optionally conditioned on ``cond`` (B, Cc, *S) or (B, Cc)."""
        if (cond is None) != (self.cond_channels == 0):
            raise ValueError(f"PatchGAN was built with cond_channels={self.cond_channels}: pass cond "
                             f"{'(B, Cc) or (B, Cc, *S)' if self.cond_channels else 'None'} to forward")
        if cond is not None:
            if cond.ndim == 2:  # (B, Cc) -> (B, Cc, *S): the same vector at every position
                cond = cond.reshape(*cond.shape, *[1] * self.dims).expand(*cond.shape, *x.shape[2:])
            x = torch.cat([x, cond.to(x.dtype)], dim=1)  # (B, C + Cc, *S)
        return self.net(x)  # (B, 1, *S')
