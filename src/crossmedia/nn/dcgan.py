"""DCGAN generator and GAN-INT-CLS's matching-aware discriminator (conditional, global logits).

DCGAN (Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", ICLR 2016, arXiv 1511.06434, Sec. 3): no pooling (stride-2
convolutions down, fractionally-strided ones up), batch norm in both nets except the generator's
output and the discriminator's input layer, ReLU in the generator with tanh at the output,
LeakyReLU(0.2) in the discriminator; weights drawn from N(0, 0.02) (:func:`init_dcgan_weights`).

GAN-INT-CLS (Reed et al., "Generative Adversarial Text to Image Synthesis", ICML 2016,
arXiv 1605.05396, Sec. 4) conditions both nets of that architecture on a text embedding:

* generator: z ∈ R^Z and the condition c (Reed et al. compress φ(t) by a linear layer +
  LeakyReLU to 128 dimensions; here c is whatever the caller passes, e.g. StackGAN's
  conditioning augmentation ĉ of :mod:`crossmedia.nn.conditioning`) are concatenated and
  projected to a 4×4 map of 8·base channels, then each stage doubles the side and halves the
  width (never below ``base``), ConvT(4, stride 2) → BN → ReLU, and a last ConvT to 3 channels
  → tanh gives the image in [−1, 1]:

      x = G(z, c):  [z; c] → (8b, 4, 4) → (4b, 8, 8) → (2b, 16, 16) → (b, 32, 32) → (3, 64, 64)

  ``residual=True`` adds the refinement blocks of the authors' Torch code after the 4×4 and
  8×8 stages: x ← ReLU(x + BN(conv3(ReLU(BN(conv3(ReLU(BN(conv1(x)))))))), bottleneck width/4.
* discriminator: stride-2 4×4 convolutions + LeakyReLU(0.2) (batch norm on all but the first)
  take the image down to a (8b, 4, 4) map; the condition is compressed by a linear layer +
  LeakyReLU(0.2) to ``proj_dim``, replicated to 4×4 and depth-concatenated; a 1×1 convolution
  (+ BN) + LeakyReLU(0.2) and a 4×4 convolution give one logit per (image, condition) pair:

      D(x, c) = conv4x4(lrelu(BN(conv1x1([f(x); tile₄ₓ₄(lrelu(W c + b))]))))          (B,)

  Trained with :func:`crossmedia.nn.gan_losses.matching_aware_d_loss`, it learns to call a real
  image with the wrong text "fake" too. ``norm="spectral"`` replaces every batch norm by spectral
  normalisation of every weight (Miyato et al., ICLR 2018, arXiv 1802.05957), for hinge losses.

The widths depend only on the resolution r of a map: base · max(1, 32 / r), so an image side
S = 4·2^k (8, 16, 32, 64, 128, ...) changes the number of stages, never the 4×4 width 8·base.

Sizes at S = 64, cond_dim = 128, noise_dim = 100 (measured by ``tests/nn/test_dcgan.py``):
generator base=48: 2.95 M parameters (base=32: 1.62 M, base=64: 4.63 M; ``residual`` adds 0.57 M at
base 48); discriminator base=48: 1.77 M (base=32: 0.81 M, base=64: 3.11 M). Hence the defaults
base=48 for both: a small-CPU budget (< 3 M and < 2 M) at the paper's architecture.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["DCGANGenerator", "MatchingDiscriminator", "init_dcgan_weights"]

Norm = Literal["batch", "spectral"]


# helpers

def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN's initialisation, applied to every submodule: convolution and linear weights ~ N(0, 0.02),
    batch-norm scales ~ N(1, 0.02), every bias 0. Use as ``net.apply(init_dcgan_weights)``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _stages(image_size: int, owner: str) -> int:
    """k for S = 4·2^k (k ≥ 1), or a ValueError naming ``owner``."""
    k = round(math.log2(image_size / 4)) if image_size >= 8 else 0
    if k < 1 or 4 * 2**k != image_size:
        raise ValueError(f"{owner} image_size must be 4·2^k with k ≥ 1 (8, 16, 32, 64, 128, ...), got {image_size}")
    return k


def _width(base: int, side: int) -> int:
    """Channels of a map of side ``side``: 8·base at 4×4, halved per doubling, never below base."""
    return base * max(1, 32 // side)


class _Refine(nn.Module):
    """GAN-INT-CLS's residual refinement: x ↦ ReLU(x + BN(conv3×3(ReLU(BN(conv3×3(ReLU(BN(conv1×1 x)))))))),
    bottleneck width channels/4; (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = max(1, channels // 4)
        self.body = nn.Sequential(
            nn.Conv2d(channels, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


# networks

class DCGANGenerator(nn.Module):
    """Conditional DCGAN generator (GAN-INT-CLS): cond (B, cond_dim), noise (B, noise_dim) -> (B, 3, S, S) in [−1, 1].

    Args:
        cond_dim: width of the condition (the conditioning augmentation's ĉ, a class embedding, ...).
        noise_dim: width of z (100 in DCGAN and GAN-INT-CLS).
        base: channels of the last hidden stage; the 4×4 projection has 8·base (ngf = 64 in the paper;
            48 by default here: 2.95 M parameters at S = 64, cond_dim = 128).
        image_size: S = 4·2^k, k ≥ 1 (64: four upsamplings after the 4×4 projection).
        residual: add GAN-INT-CLS's residual refinement after the 4×4 and 8×8 stages (+0.57 M at base 48).
        out_channels: channels of the generated image (3 for RGB).
    """

    def __init__(self, cond_dim: int, noise_dim: int = 100, base: int = 48, image_size: int = 64, *,
                 residual: bool = False, out_channels: int = 3) -> None:
        super().__init__()
        k = _stages(image_size, "DCGANGenerator")
        self.cond_dim, self.noise_dim, self.image_size = cond_dim, noise_dim, image_size
        width = _width(base, 4)
        # [z; c] seen as a 1×1 map, a full 4×4 transposed convolution = the paper's projection and reshape
        layers: list[nn.Module] = [nn.ConvTranspose2d(noise_dim + cond_dim, width, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU()]
        side = 4
        for _ in range(k - 1):
            if residual and side <= 8:
                layers.append(_Refine(width))
            side *= 2
            out = _width(base, side)
            layers += [nn.ConvTranspose2d(width, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            width = out
        if residual and side <= 8:  # S = 8 or 16: a refinement block the loop did not place
            layers.append(_Refine(width))
        layers += [nn.ConvTranspose2d(width, out_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, cond: Tensor, noise: Tensor | None = None) -> Tensor:
        """Images (B, 3, S, S) in [−1, 1] from ``cond`` (B, cond_dim) and ``noise`` (B, noise_dim);
        ``noise=None`` draws z ~ N(0, I) from the global generator."""
        if cond.ndim != 2 or cond.shape[1] != self.cond_dim:
            raise ValueError(f"DCGANGenerator expects cond of shape (B, {self.cond_dim}), got {tuple(cond.shape)}")
        if noise is None:
            noise = torch.randn(cond.shape[0], self.noise_dim, device=cond.device, dtype=cond.dtype)
        if noise.shape != (cond.shape[0], self.noise_dim):
            raise ValueError(f"DCGANGenerator expects noise of shape ({cond.shape[0]}, {self.noise_dim}), "
                             f"got {tuple(noise.shape)}")
        h = torch.cat([noise, cond.to(noise.dtype)], dim=1)  # (B, Z + C)
        return self.net(h[:, :, None, None])  # (B, Z + C, 1, 1) -> (B, 3, S, S)


class MatchingDiscriminator(nn.Module):
    """GAN-INT-CLS's matching-aware discriminator: images (B, 3, S, S), cond (B, cond_dim) -> logits (B,).

    ``forward(x, c) = score(feature_map(x), c)``: a training step that judges the same real images
    with their own and with mismatching texts can compute :meth:`feature_map` once and call
    :meth:`score` twice (under batch norm in training mode the statistics are then those of the
    real batch alone, as when ``forward`` is called on it).

    Args:
        cond_dim: width of the text (or speech) embedding judged with the image.
        base: channels of the first convolution; the 4×4 map has 8·base (ndf = 64 in the paper;
            48 by default here: 1.77 M parameters at S = 64, cond_dim = 128).
        proj_dim: width the condition is compressed to before it is tiled (128 in the paper).
        image_size: S = 4·2^k, k ≥ 1.
        norm: ``"batch"`` (the paper's; none after the first convolution) or ``"spectral"``
            (spectral normalisation of every weight, no batch norm).
        in_channels: channels of the judged image (3 for RGB).
    """

    def __init__(self, cond_dim: int, base: int = 48, proj_dim: int = 128, image_size: int = 64, *,
                 norm: Norm = "batch", in_channels: int = 3) -> None:
        super().__init__()
        if norm not in ("batch", "spectral"):
            raise ValueError(f"MatchingDiscriminator norm must be 'batch' or 'spectral', got {norm!r}")
        k = _stages(image_size, "MatchingDiscriminator")
        self.cond_dim, self.image_size, self.norm = cond_dim, image_size, norm
        self.feature_dim = _width(base, 4)
        bn = norm == "batch"

        def conv_block(c_in: int, c_out: int, kernel: int, stride: int, padding: int, first: bool) -> list[nn.Module]:
            use_bn = bn and not first
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=not use_bn)]
            if use_bn:
                layers.append(nn.BatchNorm2d(c_out))
            return layers + [nn.LeakyReLU(0.2)]

        image: list[nn.Module] = []
        width, side = in_channels, image_size
        for i in range(k):
            side //= 2
            image += conv_block(width, _width(base, side), 4, 2, 1, first=i == 0)
            width = _width(base, side)
        self.image = nn.Sequential(*image)  # (B, 3, S, S) -> (B, 8b, 4, 4)
        self.text = nn.Sequential(nn.Linear(cond_dim, proj_dim), nn.LeakyReLU(0.2))  # (B, C) -> (B, P)
        self.joint = nn.Sequential(*conv_block(width + proj_dim, width, 1, 1, 0, first=False),
                                   nn.Conv2d(width, 1, 4, 1, 0))  # (B, 8b + P, 4, 4) -> (B, 1, 1, 1)
        self.apply(init_dcgan_weights)
        if norm == "spectral":
            for module in list(self.modules()):
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    spectral_norm(module)

    def feature_map(self, images: Tensor) -> Tensor:
        """The image path: (B, 3, S, S) in [−1, 1] -> (B, 8·base, 4, 4)."""
        if images.ndim != 4 or images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            raise ValueError(f"MatchingDiscriminator was built for (B, C, {self.image_size}, {self.image_size}) "
                             f"images, got {tuple(images.shape)}")
        return self.image(images)

    def features(self, images: Tensor) -> Tensor:
        """Pooled image features: the 4×4 map averaged over positions, (B, 3, S, S) -> (B, 8·base)."""
        return self.feature_map(images).mean(dim=(2, 3))

    def score(self, feature_map: Tensor, cond: Tensor) -> Tensor:
        """Logits (B,) of (image feature map (B, 8·base, 4, 4), condition (B, cond_dim)) pairs."""
        if cond.ndim != 2 or cond.shape[1] != self.cond_dim:
            raise ValueError(f"MatchingDiscriminator expects cond of shape (B, {self.cond_dim}), "
                             f"got {tuple(cond.shape)}")
        t = self.text(cond.to(feature_map.dtype))  # (B, P)
        t = t[:, :, None, None].expand(*t.shape, *feature_map.shape[2:])  # (B, P, 4, 4): replicated spatially
        return self.joint(torch.cat([feature_map, t], dim=1)).flatten()  # (B,)

    def forward(self, images: Tensor, cond: Tensor) -> Tensor:
        """Logits (B,): is ``images`` (B, 3, S, S) in [−1, 1] a real image matching ``cond`` (B, cond_dim)?"""
        return self.score(self.feature_map(images), cond)
