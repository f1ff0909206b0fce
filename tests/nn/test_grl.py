"""Gradient reversal: identity forward, −λ times the gradient backward; the λ_p schedule."""
import math

import pytest
import torch

from crossmedia.nn.grl import GradientReversal, grad_reverse, grl_lambda


def test_forward_is_identity_and_backward_is_minus_lambda_times_grad():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x.detach())
    # loss = Σ w·y² ; dloss/dy = 2·w·y = [2, -8, 18] with w = [1, 2, 3]
    (grad,) = torch.autograd.grad((torch.tensor([1.0, 2.0, 3.0]) * y**2).sum(), x)
    assert torch.allclose(grad, torch.tensor([-1.0, 4.0, -9.0]))  # −0.5 × [2, −8, 18]


def test_module_follows_a_changed_lambda_and_leaves_other_branches_alone():
    layer = GradientReversal(lambda_=1.0)
    x = torch.ones(2, requires_grad=True)
    layer.lambda_ = 2.0
    (grad,) = torch.autograd.grad(layer(x).sum() + x.sum(), x)  # reversed branch −2, plain branch +1
    assert torch.equal(grad, torch.tensor([-1.0, -1.0]))
    layer.lambda_ = 0.0
    (grad,) = torch.autograd.grad(layer(x).sum(), x)
    assert torch.equal(grad, torch.zeros(2))


def test_lambda_schedule():
    assert grl_lambda(0.0) == 0.0
    assert grl_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert grl_lambda(1.0) == pytest.approx(0.9999092, abs=1e-7)
    with pytest.raises(ValueError, match="progress"):
        grl_lambda(1.5)
