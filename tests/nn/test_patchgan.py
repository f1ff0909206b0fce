"""PatchGAN: the paper's layer plan, output shapes, conditioning, and a receptive field measured by
gradients equal to the 70×70 the paper states."""
import pytest
import torch
from torch import nn

from crossmedia.nn.patchgan import PatchGAN


def test_layer_plan_is_c64_c128_c256_c512_then_one_channel():
    d = PatchGAN(in_channels=3)
    convs = [m for m in d.net if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) and c.padding == (1, 1) for c in convs)
    assert not isinstance(d.net[1], nn.BatchNorm2d)  # no norm after the first convolution
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.net) == 3
    assert all(m.negative_slope == 0.2 for m in d.net if isinstance(m, nn.LeakyReLU))


@pytest.mark.parametrize("layers,size,out", [(3, 256, 30), (3, 64, 6), (2, 64, 14), (1, 32, 14)])
def test_output_shape(layers, size, out):
    d = PatchGAN(in_channels=3, base=8, layers=layers)
    assert d(torch.randn(2, 3, size, size)).shape == (2, 1, out, out)


def test_conditioning_by_vector_equals_conditioning_by_its_broadcast_map():
    torch.manual_seed(0)
    d = PatchGAN(in_channels=3, base=8, cond_channels=5, norm="instance").eval()
    x, onehot = torch.randn(2, 3, 64, 64), torch.eye(5)[[1, 3]]
    as_map = onehot[:, :, None, None].expand(2, 5, 64, 64)
    assert torch.allclose(d(x, onehot), d(x, as_map))
    assert not torch.allclose(d(x, onehot), d(x, torch.eye(5)[[2, 3]]))
    with pytest.raises(ValueError, match="cond_channels=5"):
        d(x)


def _support(d: PatchGAN, size: int, dims: int) -> torch.Tensor:
    """Bool mask of the input positions the central output logit depends on."""
    x = torch.randn(1, 2, *[size] * dims, dtype=torch.float64, requires_grad=True)
    out = d.double()(x)
    centre = tuple(s // 2 for s in out.shape[2:])
    (grad,) = torch.autograd.grad(out[(0, 0, *centre)], x)
    return grad[0].abs().sum(0) > 0


@pytest.mark.parametrize("layers,norm", [(1, "none"), (2, "none"), (3, "none"), (3, "batch")])
def test_receptive_field_is_exactly_a_square_window(layers, norm):
    torch.manual_seed(layers)
    d = PatchGAN(in_channels=2, base=4, layers=layers, norm=norm).eval()  # eval: BN is per-channel affine
    support = _support(d, 128, 2)
    rows, cols = support.any(1).nonzero().squeeze(1), support.any(0).nonzero().squeeze(1)
    side = d.receptive_field
    assert side == {1: 16, 2: 34, 3: 70}[layers]
    assert len(rows) == len(cols) == side and rows[-1] - rows[0] + 1 == side
    assert support.sum() == side * side  # every position of the window, nothing outside


def test_3d_patchgan_sees_a_cube():
    torch.manual_seed(0)
    d = PatchGAN(in_channels=2, base=2, layers=1, norm="none", dims=3)
    assert d(torch.randn(2, 2, 16, 32, 32)).shape == (2, 1, 6, 14, 14)
    support = _support(d, 32, 3)
    assert support.sum() == 16**3 and d.receptive_field == 16


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="norm"):
        PatchGAN(norm="layer")
    with pytest.raises(ValueError, match="dims"):
        PatchGAN(dims=1)
