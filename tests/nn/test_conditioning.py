"""Conditioning augmentation: the KL term equals its closed form, sampling follows N(μ, σ²) and is
differentiable, eval mode is deterministic."""
import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from crossmedia.nn.conditioning import ConditioningAugmentation, kl_to_standard_normal


def test_kl_by_hand_and_against_torch_distributions():
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # ½(1 + 1 − 1 − 0) = 0.5 and ½(0 + 4 − 1 − log 4) = 0.8068528
    assert kl_to_standard_normal(mu, logvar).item() == pytest.approx((0.5 + 0.8068528) / 2, abs=1e-6)
    assert kl_to_standard_normal(mu, logvar, reduction="batchmean").item() == pytest.approx(1.3068528, abs=1e-6)
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    closed = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1).mean()
    assert kl_to_standard_normal(mu, logvar, reduction="batchmean").item() == pytest.approx(closed.item(), rel=1e-6)
    assert kl_to_standard_normal(torch.zeros(2, 5), torch.zeros(2, 5)).item() == 0.0


@pytest.mark.parametrize("activation", ["leaky_relu", "glu"])
def test_sampling_follows_mu_sigma_and_is_differentiable(activation):
    torch.manual_seed(0)
    ca = ConditioningAugmentation(text_dim=6, cond_dim=4, activation=activation)
    text = torch.randn(1, 6).expand(20000, 6)
    c, mu, logvar = ca(text)
    assert c.shape == mu.shape == logvar.shape == (20000, 4)
    assert torch.allclose(c.mean(0), mu[0], atol=0.03)
    assert torch.allclose(c.std(0), (0.5 * logvar[0]).exp(), rtol=0.03)
    (grad,) = torch.autograd.grad(c[:1].sum(), ca.fc.weight)
    width = ca.fc.out_features // 2 if activation == "leaky_relu" else ca.fc.out_features
    assert grad[:width].abs().sum() > 0 and ca.fc.out_features == (8 if activation == "leaky_relu" else 16)
    if activation == "leaky_relu":  # rows of log σ² get gradient through σ ⊙ ε
        assert grad[4:].abs().sum() > 0


def test_eval_mode_returns_the_mean():
    torch.manual_seed(0)
    ca = ConditioningAugmentation(text_dim=6, cond_dim=4).eval()
    text = torch.randn(3, 6)
    first, second = ca(text), ca(text)
    assert torch.equal(first[0], first[1]) and torch.equal(first[0], second[0])
    ca.train()
    assert not torch.equal(ca(text)[0], first[1])
