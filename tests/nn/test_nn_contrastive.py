"""VSE0 / VSE++ hinge losses and the order violation on hand-made matrices."""
import pytest
import torch

from crossmedia.nn.contrastive import (ORDER_MARGIN, contrastive_loss, hinge_costs, order_similarity,
                                       order_violation, vse0_loss, vsepp_loss)

# S[i, j] = s(image i, caption j), positives on the diagonal
S = torch.tensor([[0.50, 0.40, 0.35],
                  [0.60, 0.70, 0.30],
                  [0.20, 0.65, 0.90]])
# margin 0.2, caption retrieval (rows): [.2 + S[i, j] - S[i, i]]+
#   row 0: j1 .1, j2 .05 | row 1: j0 .1, j2 0 | row 2: j0 0, j1 0 (-.05)
# image retrieval (columns): [.2 + S[i, j] - S[j, j]]+
#   col 0: i1 .3, i2 0 | col 1: i0 0 (-.1), i2 .15 | col 2: 0, 0


def test_hardest_negatives_by_hand():
    cost_s, cost_im = hinge_costs(S, 0.2)
    assert torch.allclose(cost_s, torch.tensor([[0, .1, .05], [.1, 0, 0], [0, 0, 0]]), atol=1e-6)
    assert torch.allclose(cost_im, torch.tensor([[0, 0, 0], [.3, 0, 0], [0, .15, 0]]), atol=1e-6)
    assert cost_s[:2].argmax(dim=1).tolist() == [1, 0]  # image 0's hardest caption is 1, image 1's is 0
    assert cost_im[:, :2].argmax(dim=0).tolist() == [1, 2]  # caption 0's hardest image is 1, caption 1's is 2


def test_vse0_vs_vsepp_by_hand():
    assert vse0_loss(S).item() == pytest.approx(0.1 + 0.05 + 0.1 + 0.3 + 0.15)  # every violating negative
    assert vsepp_loss(S).item() == pytest.approx(0.1 + 0.1 + 0.3 + 0.15)  # the hardest per positive pair
    assert contrastive_loss(S, hardest=False).item() == pytest.approx(vse0_loss(S).item())
    assert vsepp_loss(S, margin=0.0).item() == pytest.approx(0.1)  # margin 0: only S[1, 0] > S[0, 0] violates
    # summed over the batch, not averaged: two copies of the problem double the loss
    big = torch.block_diag(S, S) - 10 * (1 - torch.block_diag(torch.ones(3, 3), torch.ones(3, 3)))
    assert vsepp_loss(big).item() == pytest.approx(2 * vsepp_loss(S).item())


def test_order_violation_by_hand():
    images = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    captions = torch.tensor([[0.5, 0.5], [2.0, 1.0], [0.0, 0.0]])
    # max(0, y - x)^2 summed: image 0 vs (.5,.5): (0, .5) -> .25; vs (2, 1): (1, 1) -> 2; vs 0: 0
    want = torch.tensor([[0.25, 2.0, 0.0], [0.5, 5.0, 0.0]])
    assert torch.allclose(order_violation(images, captions), want)
    assert torch.allclose(order_violation(images, captions, squared=False), want.sqrt())
    assert torch.allclose(order_similarity(images, captions), -want)
    # a caption above its image (coordinate-wise smaller) costs nothing; the reverse does
    assert order_violation(torch.tensor([[1.0, 1.0]]), torch.tensor([[0.5, 0.2]])).item() == 0.0
    assert order_violation(torch.tensor([[0.5, 0.2]]), torch.tensor([[1.0, 1.0]])).item() == pytest.approx(0.89)


def test_order_loss_by_hand():
    images = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    captions = torch.tensor([[0.5, 0.5], [0.0, 0.9]])
    sims = order_similarity(images, captions)  # -E: [[0, 0], [-.25, 0]]
    assert torch.allclose(sims, torch.tensor([[0.0, 0.0], [-0.25, 0.0]]))
    # rows: [.05 + 0 - 0]+ = .05 (image 0, caption 1); [.05 - .25 - 0]+ = 0
    # cols: caption 0: [.05 + (-.25) - 0]+ = 0; caption 1: [.05 + 0 - 0]+ = .05 (image 0)
    assert vsepp_loss(sims, margin=ORDER_MARGIN).item() == pytest.approx(0.10)
    assert vse0_loss(sims, margin=ORDER_MARGIN).item() == pytest.approx(0.10)


def test_gradients_flow():
    images = torch.randn(4, 8, requires_grad=True)
    captions = torch.randn(4, 8, requires_grad=True)
    for loss in (vsepp_loss(images @ captions.T, margin=5.0), vse0_loss(images @ captions.T, margin=5.0),
                 vsepp_loss(order_similarity(images.abs(), captions.abs()), margin=5.0)):
        images.grad = captions.grad = None
        loss.backward()
        assert images.grad.abs().sum() > 0 and captions.grad.abs().sum() > 0


def test_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        vsepp_loss(torch.zeros(2, 3))
