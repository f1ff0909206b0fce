"""CSQ and DSH losses against values computed by hand."""
import math

import pytest
import torch

from crossmedia.tasks.hashing.losses import central_similarity_loss, dsh_loss, quantization_loss


def bce(p: float, t: float) -> float:
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def test_central_similarity_equals_bce_of_shifted_tanh():
    z = torch.tensor([[0.0, 1.0], [-2.0, 0.5]])
    c = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    expected = sum(bce((math.tanh(zz) + 1) / 2, (cc + 1) / 2)
                   for zz, cc in zip(z.flatten().tolist(), c.flatten().tolist())) / 4
    assert central_similarity_loss(z, c).item() == pytest.approx(expected, rel=1e-6)
    # z = 0 gives log 2 whatever the target
    assert central_similarity_loss(torch.zeros(3, 8), torch.ones(3, 8)).item() == pytest.approx(math.log(2))


def test_central_similarity_is_finite_for_saturated_logits():
    z = torch.tensor([[100.0, -100.0, 100.0, -100.0]], requires_grad=True)
    wrong = torch.tensor([[-1.0, 1.0, -1.0, 1.0]])
    right = -wrong
    loss = central_similarity_loss(z, wrong)
    assert loss.item() == pytest.approx(200.0)  # −log sigmoid(−2z) = softplus(2z) = 200
    loss.backward()
    assert torch.isfinite(z.grad).all()
    assert central_similarity_loss(z, right).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        central_similarity_loss(torch.zeros(2, 4), torch.ones(2, 8))


def test_quantization_loss_by_hand():
    h = torch.tensor([0.0, 0.5, 1.0, -1.0, 2.0])  # |h| − 1 = (−1, −0.5, 0, 0, 1)
    logcosh = (2 * math.log(math.cosh(1.0)) + math.log(math.cosh(0.5))) / 5
    assert quantization_loss(h).item() == pytest.approx(logcosh, rel=1e-6)
    assert quantization_loss(h, kind="logcosh").item() == pytest.approx(logcosh, rel=1e-6)
    assert quantization_loss(h, kind="l2").item() == pytest.approx((1 + 0.25 + 1) / 5)
    assert quantization_loss(torch.tensor([[1.0, -1.0]])).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="kind"):
        quantization_loss(h, kind="l1")


def test_logcosh_is_finite_for_large_inputs():
    h = torch.tensor([1e4, -1e4, 200.0], requires_grad=True)  # cosh overflows float32 from ~89
    loss = quantization_loss(h)
    expected = ((1e4 - 1) * 2 + 199) / 3 - math.log(2)  # log cosh x → |x| − log 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert torch.isfinite(h.grad).all()
    assert h.grad.abs().max().item() == pytest.approx(1 / 3, rel=1e-5)  # d/dx log cosh → ±1


def test_dsh_loss_by_hand():
    h = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    labels = torch.tensor([[1, 0], [1, 1], [0, 1]])
    # pairs: (0,1) similar, D=4 -> 2; (0,2) dissimilar, D=8 >= m=4 -> 0; (1,2) similar, D=4 -> 2
    assert dsh_loss(h, labels).item() == pytest.approx(4 / 3)
    # margin 10: (0,2) -> ½(10 − 8) = 1
    assert dsh_loss(h, labels, margin=10.0).item() == pytest.approx(5 / 3)
    # regulariser: α · mean_i ‖|h_i| − 1‖₁
    h2 = torch.tensor([[0.5, 2.0], [1.0, 1.0]])
    same = torch.tensor([[1, 0], [1, 0]])
    # one similar pair, D = 0.25 + 1 -> 0.625; L1 terms 1.5 and 0 -> mean 0.75
    assert dsh_loss(h2, same, alpha=0.1).item() == pytest.approx(0.625 + 0.075)
    assert dsh_loss(h2, same, alpha=0.0).item() == pytest.approx(0.625)


def test_dsh_loss_gradient_is_finite_for_identical_rows():
    h = torch.tensor([[0.3, -0.2, 0.1], [0.3, -0.2, 0.1], [0.9, 0.4, -1.2]], requires_grad=True)
    labels = torch.tensor([[1, 0], [1, 0], [0, 1]])
    loss = dsh_loss(h, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(h.grad).all()
    with pytest.raises(ValueError, match="two samples"):
        dsh_loss(h[:1], labels[:1])
