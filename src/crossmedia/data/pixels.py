"""PIL images as tensors, one rule for every task: RGB, bilinear resize to size x size when needed."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

__all__ = ["image_pixels", "image_tensor"]


def image_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """A PIL image as a (3, size, size) uint8 tensor (RGB, bilinear resize when needed)."""
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def image_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """A PIL image as the (3, size, size) float tensor in [-1, 1] the caption and retrieval encoders take."""
    return image_pixels(image, size).float().div_(127.5).sub_(1.0)
