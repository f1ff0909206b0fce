"""GAN losses equal their formulas worked out by hand on small logits."""
import math

import pytest
import torch

from crossmedia.nn.gan_losses import (bce_d_loss, bce_g_loss, hinge_d_loss, hinge_g_loss,
                                      matching_aware_d_loss)


def softplus(x: float) -> float:  # -log σ(-x) = log(1 + e^x)
    return math.log1p(math.exp(x))


def test_bce_losses_equal_the_log_loss_by_hand():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0])
    # -log σ(r) = softplus(-r); -log(1 - σ(f)) = softplus(f)
    expected_d = (softplus(-0.0) + softplus(-2.0)) / 2 + (softplus(-1.0) + softplus(1.0)) / 2
    assert bce_d_loss(real, fake).item() == pytest.approx(expected_d, abs=1e-6)
    assert bce_d_loss(real, fake).item() == pytest.approx(1.2232995, abs=1e-6)
    assert bce_g_loss(fake).item() == pytest.approx((softplus(1.0) + softplus(-1.0)) / 2, abs=1e-6)


def test_hinge_losses_by_hand():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0])
    # real: max(0, 1-0)=1, max(0, 1-2)=0 -> 0.5; fake: max(0, 1-1)=0, max(0, 1+1)=2 -> 1
    assert hinge_d_loss(real, fake).item() == pytest.approx(1.5)
    assert hinge_g_loss(torch.tensor([-1.0, 3.0])).item() == pytest.approx(-1.0)


def test_matching_aware_loss_averages_the_two_fake_terms():
    right, wrong, fake = torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([-1.0])
    expected = softplus(-2.0) + (softplus(1.0) + softplus(-1.0)) / 2
    assert matching_aware_d_loss(right, wrong, fake).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.9401904, abs=1e-6)
    # hinge: real 0.5 -> 0.5; wrong -0.5 -> 0.5; fake 0 -> 1; 0.5 + (0.5 + 1) / 2 = 1.25
    hinge = matching_aware_d_loss(torch.tensor([0.5]), torch.tensor([-0.5]), torch.tensor([0.0]), kind="hinge")
    assert hinge.item() == pytest.approx(1.25)
    # the mismatch term weighs half: moving only the wrong-text logit by +1 changes the loss by
    # exactly half of what the same move does to a plain fake term
    base = matching_aware_d_loss(right, wrong, fake, kind="hinge")
    moved = matching_aware_d_loss(right, wrong + 1, fake, kind="hinge")
    assert (moved - base).item() == pytest.approx(0.5)


def test_patch_logits_are_averaged_and_bf16_gives_float32():
    patch = torch.zeros(2, 1, 3, 3, dtype=torch.bfloat16)
    loss = bce_d_loss(patch, patch)
    assert loss.dtype == torch.float32 and loss.ndim == 0
    assert loss.item() == pytest.approx(2 * math.log(2), abs=1e-6)


def test_generator_losses_fall_as_the_fake_logit_rises():
    fake = torch.tensor([0.3, -0.2], requires_grad=True)
    for loss_fn in (bce_g_loss, hinge_g_loss):
        (grad,) = torch.autograd.grad(loss_fn(fake), fake)
        assert (grad < 0).all()


def test_unknown_kind_is_refused():
    x = torch.zeros(1)
    with pytest.raises(ValueError, match="'bce' or 'hinge'"):
        matching_aware_d_loss(x, x, x, kind="wgan")
