"""Generator blocks: shapes, and the residual block is the identity when its body outputs zero."""
from __future__ import annotations

import torch

from crossmedia.nn.blocks import DownBlock, ResidualBlock, UpBlock, UpBlock3d


def test_shapes_halve_keep_and_double():
    x = torch.randn(2, 5, 16, 16)
    assert DownBlock(5, 8)(x).shape == (2, 8, 8, 8)
    assert ResidualBlock(5)(x).shape == x.shape
    assert UpBlock(5, 3)(x).shape == (2, 3, 32, 32)
    assert UpBlock3d(5, 4)(torch.randn(2, 5, 1, 4, 4)).shape == (2, 4, 2, 8, 8)
    assert ResidualBlock(5, dims=3)(torch.randn(2, 5, 2, 4, 4)).shape == (2, 5, 2, 4, 4)


def test_residual_block_adds_its_body_to_the_input():
    block = ResidualBlock(4)
    torch.nn.init.zeros_(block.body[-1].weight)  # the last instance norm's scale: body(x) = 0 + bias
    torch.nn.init.zeros_(block.body[-1].bias)
    x = torch.randn(3, 4, 8, 8)
    assert torch.equal(block(x), x)


def test_up_block_interpolates_instead_of_transposed_convolution():
    up = UpBlock(1, 1)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in up.modules())
    torch.nn.init.zeros_(up.conv.weight)
    up.conv.weight.data[0, 0, 1, 1] = 1.0  # identity 3x3 kernel: output = norm(nearest-upsampled input)
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    y = up(x)
    assert torch.allclose(y[0, 0, ::2, ::2], y[0, 0, 1::2, 1::2])  # each input pixel became a 2x2 block
