"""DCGAN generator and GAN-INT-CLS matching discriminator: the paper's layer plan, shapes at several
sizes, tanh range, conditioning that changes the logit, gradients to the condition, the parameter
budgets the docstring states, and the feature-map/score split equal to forward."""
import pytest
import torch
from torch import nn

from crossmedia.nn.dcgan import DCGANGenerator, MatchingDiscriminator, init_dcgan_weights


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_tanh_range(size, one_thread):
    torch.manual_seed(0)
    g, d = DCGANGenerator(16, noise_dim=8, base=8, image_size=size), MatchingDiscriminator(16, base=8, image_size=size)
    with torch.no_grad():
        g.net[-2].weight.mul_(1000)  # a huge last layer saturates tanh: output must still be inside [-1, 1]
    cond = torch.randn(5, 16)
    x = g(cond, torch.randn(5, 8))
    assert x.shape == (5, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1 and x.abs().max() > 0.9
    assert d(x, cond).shape == (5,)
    assert d.feature_map(x).shape == (5, 64, 4, 4) and d.features(x).shape == (5, 64)


def test_generator_layer_plan_at_64_is_the_papers():
    g = DCGANGenerator(128, base=64)
    convs = [m for m in g.net if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]  # (8b,4,4) -> ... -> (3,64,64)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.net) == 4  # none on the output
    assert isinstance(g.net[-1], nn.Tanh)


def test_discriminator_layer_plan_at_64_is_the_papers():
    d = MatchingDiscriminator(128, base=64, proj_dim=128)
    convs = [m for m in d.image if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512]
    assert all(c.stride == (2, 2) and c.kernel_size == (4, 4) for c in convs)
    assert not isinstance(d.image[1], nn.BatchNorm2d) and sum(isinstance(m, nn.BatchNorm2d) for m in d.image) == 3
    one_by_one, last = [m for m in d.joint if isinstance(m, nn.Conv2d)]
    assert (one_by_one.in_channels, one_by_one.kernel_size) == (512 + 128, (1, 1))
    assert (last.kernel_size, last.out_channels) == ((4, 4), 1)
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))


def test_default_parameter_counts_fit_the_cpu_budget():
    g, d = DCGANGenerator(128), MatchingDiscriminator(128)
    assert n_params(g) == 2_952_867 < 3_000_000  # the numbers the module docstring states
    assert n_params(d) == 1_772_017 < 2_000_000
    assert n_params(DCGANGenerator(128, residual=True)) == 3_519_075


@pytest.mark.parametrize("norm", ["batch", "spectral"])
def test_logits_depend_on_the_condition_and_gradients_reach_it(norm, one_thread):
    torch.manual_seed(0)
    d = MatchingDiscriminator(16, base=8, image_size=32, norm=norm)
    d.train()
    for _ in range(3):  # a few steps of spectral norm's power iteration, batch-norm running stats
        d(torch.randn(8, 3, 32, 32), torch.randn(8, 16))
    d.eval()
    x, cond = torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, 16, requires_grad=True)
    logits = d(x, cond)
    other = d(x, torch.randn(4, 16))
    assert (logits - other).abs().min() > 1e-4  # every pair's score moves with its text
    logits.sum().backward()
    assert cond.grad is not None and cond.grad.abs().sum(1).min() > 0


def test_generator_gradient_reaches_condition_and_noise_none_samples():
    torch.manual_seed(0)
    g = DCGANGenerator(16, noise_dim=8, base=8, image_size=32)
    cond = torch.randn(3, 16, requires_grad=True)
    g(cond).square().sum().backward()
    assert cond.grad.abs().sum(1).min() > 0
    g.eval()
    z = torch.randn(3, 8)
    assert torch.equal(g(cond, z), g(cond, z))
    assert not torch.allclose(g(cond), g(cond))  # fresh noise each call


def test_score_of_feature_map_equals_forward():
    torch.manual_seed(0)
    d = MatchingDiscriminator(16, base=8, image_size=32).eval()
    x, a, b = torch.randn(4, 3, 32, 32), torch.randn(4, 16), torch.randn(4, 16)
    fmap = d.feature_map(x)
    assert torch.allclose(d.score(fmap, a), d(x, a)) and torch.allclose(d.score(fmap, b), d(x, b))
    assert torch.allclose(d.features(x), fmap.mean((2, 3)))


def test_residual_refinement_and_odd_sizes():
    torch.manual_seed(0)
    g = DCGANGenerator(16, noise_dim=8, base=8, image_size=16, residual=True)
    assert g(torch.randn(2, 16)).shape == (2, 3, 16, 16)
    assert sum(type(m).__name__ == "_Refine" for m in g.net) == 2
    for bad in (4, 48, 100):
        with pytest.raises(ValueError, match="4·2\\^k"):
            DCGANGenerator(16, image_size=bad)
    with pytest.raises(ValueError, match="norm must be"):
        MatchingDiscriminator(16, norm="instance")
    with pytest.raises(ValueError, match="cond of shape \\(B, 16\\)"):
        g(torch.randn(2, 15))
    with pytest.raises(ValueError, match="built for"):
        MatchingDiscriminator(16, base=8, image_size=32)(torch.randn(2, 3, 64, 64), torch.randn(2, 16))


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(64, 64, 4), nn.BatchNorm2d(4096)
    conv.apply(init_dcgan_weights), bn.apply(init_dcgan_weights)
    assert abs(conv.weight.std().item() - 0.02) < 1e-3 and conv.bias.abs().max() == 0
    assert abs(bn.weight.mean().item() - 1.0) < 2e-3 and abs(bn.weight.std().item() - 0.02) < 2e-3
