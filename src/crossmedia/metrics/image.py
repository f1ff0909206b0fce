"""Image quality metrics: FID and KID on a feature network of ours, SSIM and PSNR (torchmetrics).

**Images are float (N, C, H, W) in [0, 1]** on every metric here. A generator ending in tanh
passes ``input_range=(-1, 1)`` once, at construction, and the metric maps its images to [0, 1] on
each update (x ↦ (x − lo) / (hi − lo)); values more than 1e-3 outside the declared range raise an
error naming the range (a [−1, 1] image declared as [0, 1] is a bug, not noise), and rounding
within 1e-3 is clamped away.

- :class:`FID` — Fréchet distance (Heusel et al., NeurIPS 2017, arXiv 1706.08500) between
  Gaussians fitted to the features of real and generated images:
  ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½).
- :class:`KID` — kernel distance (Bińkowski et al., ICLR 2018, arXiv 1801.01401): the unbiased
  MMD² with the kernel k(x, y) = (xᵀy / D + 1)³, mean and std over random subsets.
- :class:`SSIM` — structural similarity (Wang et al. 2004), Gaussian window 11, σ = 1.5.
- :class:`PSNR` — 10 log₁₀(1 / MSE) per image (data range 1), averaged over images by default.

FID and KID use **our own** feature network instead of a downloaded Inception-v3, so they run
offline: any ``nn.Module`` mapping a batch of images to features (N, D) (or to (N, ...), which
is flattened), e.g. a tagger or an encoder of a zoo entry loaded through the registry. Values
are comparable only between runs that use the same network (say which in the card). The network
is run in eval mode without gradients and is held by reference, not registered as a submodule:
it adds no keys to the state_dict and no parameters to the optimiser of a LightningModule that
owns the metric; it is moved to the images' device when used. ``feature_range`` is the pixel
range it was trained on ((−1, 1) for the caption encoders' mean/std-0.5 normalisation).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from crossmedia.core.modes import eval_mode

__all__ = ["FID", "KID", "SSIM", "PSNR", "to_unit_range"]

Range = tuple[float, float]
_TOLERANCE = 1e-3


# helpers

def to_unit_range(images: Tensor, value_range: Range, name: str = "images") -> Tensor:
    """Float (N, C, H, W) images in ``value_range`` mapped to [0, 1]."""
    lo, hi = value_range
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"{name} must be float (N, C, H, W), got {images.dtype} of shape {tuple(images.shape)}")
    if hi <= lo:
        raise ValueError(f"value range must be (low, high) with low < high, got {value_range}")
    unit = (images.float() - lo) / (hi - lo)
    if unit.numel() and (unit.min() < -_TOLERANCE or unit.max() > 1 + _TOLERANCE):
        raise ValueError(f"{name} hold values in [{images.min().item():.3g}, {images.max().item():.3g}], outside the "
                         f"declared range {tuple(value_range)}; pass input_range=(low, high) to the metric")
    return unit.clamp_(0.0, 1.0)


class _Features(nn.Module):
    """Images in ``input_range`` -> (N, D) float32 features of a frozen network of ours."""

    def __init__(self, net: nn.Module, *, input_range: Range, feature_range: Range,
                 image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.__dict__["net"] = net  # held by reference: not a submodule (no state_dict keys, no optimiser)
        self.input_range, self.feature_range = input_range, feature_range
        device = next(iter(net.parameters()), torch.empty(0)).device  # probe where the network is
        probe = torch.full((1, *image_shape), (input_range[0] + input_range[1]) / 2, device=device)  # (1, C, H, W)
        self.num_features = int(self(probe).shape[1])  # read by torchmetrics' FID

    def forward(self, images: Tensor) -> Tensor:
        unit = to_unit_range(images, self.input_range)  # (N, C, H, W) in [0, 1]
        lo, hi = self.feature_range
        net = self.net.to(images.device)
        with eval_mode(net), torch.no_grad():
            features = net(unit * (hi - lo) + lo)
        return features.flatten(1).float()  # (N, D)


# metrics

class FID(FrechetInceptionDistance):
    """FID on the features of ``feature_net``; ``update(images, real=True|False)``, then ``compute()``.

    Args:
        feature_net: images (N, C, H, W) in ``feature_range`` -> features (N, D).
        image_shape: (C, H, W) of the images, used once to probe D.
        input_range: value range of the images given to ``update``.
        feature_range: value range ``feature_net`` expects.
        reset_real_features: keep the real statistics across ``reset()`` when False (torchmetrics).
    """

    def __init__(self, *, feature_net: nn.Module, image_shape: tuple[int, int, int] = (3, 64, 64),
                 input_range: Range = (0.0, 1.0), feature_range: Range = (0.0, 1.0),
                 reset_real_features: bool = True, **kwargs: Any) -> None:
        features = _Features(feature_net, input_range=input_range, feature_range=feature_range,
                             image_shape=image_shape)
        super().__init__(feature=features, reset_real_features=reset_real_features, normalize=True, **kwargs)


class KID(KernelInceptionDistance):
    """KID on the features of ``feature_net``; ``compute()`` returns (mean, std) over ``subsets``.

    Each subset draws ``subset_size`` real and generated images (torch's global RNG: seed for
    reproducible values); both sets must hold at least ``subset_size`` images. Other arguments as
    :class:`FID`.
    """

    def __init__(self, *, feature_net: nn.Module, image_shape: tuple[int, int, int] = (3, 64, 64),
                 input_range: Range = (0.0, 1.0), feature_range: Range = (0.0, 1.0), subsets: int = 100,
                 subset_size: int = 1000, reset_real_features: bool = True, **kwargs: Any) -> None:
        features = _Features(feature_net, input_range=input_range, feature_range=feature_range,
                             image_shape=image_shape)
        super().__init__(feature=features, subsets=subsets, subset_size=subset_size,
                         reset_real_features=reset_real_features, normalize=True, **kwargs)


class SSIM(StructuralSimilarityIndexMeasure):
    """Mean SSIM of generated vs target images, both mapped from ``input_range`` to [0, 1]."""

    def __init__(self, *, input_range: Range = (0.0, 1.0), **kwargs: Any) -> None:
        super().__init__(data_range=1.0, **kwargs)
        self.input_range = input_range

    def update(self, preds: Tensor, target: Tensor) -> None:
        super().update(to_unit_range(preds, self.input_range, "preds"),
                       to_unit_range(target, self.input_range, "target"))


class PSNR(PeakSignalNoiseRatio):
    """PSNR of generated vs target images in [0, 1]: 10 log₁₀(1 / MSE).

    ``per_image=True`` (the usual protocol for generated frames) averages the PSNR of each image;
    ``False`` takes one PSNR of the MSE pooled over every pixel seen.
    """

    def __init__(self, *, input_range: Range = (0.0, 1.0), per_image: bool = True, **kwargs: Any) -> None:
        super().__init__(data_range=1.0, dim=(1, 2, 3) if per_image else None, **kwargs)
        self.input_range = input_range

    def update(self, preds: Tensor, target: Tensor) -> None:
        super().update(to_unit_range(preds, self.input_range, "preds"),
                       to_unit_range(target, self.input_range, "target"))
