"""SUM-GDA and Cycle-SUM: shapes, masking, the log-space diversity product, losses that learn."""
import dataclasses

import pytest
import torch

from crossmedia.tasks.summarization.models import (
    VAELSTM,
    CycleSUM,
    FrameSelector,
    LSTMDiscriminator,
    SumGDA,
    diverse_attention,
    discriminator_losses,
    generator_losses,
    log_diversity,
    sum_gda_supervised_loss,
    sum_gda_unsupervised_loss,
)


def padded(x: torch.Tensor, extra: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """x (1, T, D) followed by ``extra`` frames of large garbage, and the prefix mask."""
    g = torch.Generator().manual_seed(seed)
    garbage = 50 * torch.randn(1, extra, x.shape[-1], generator=g)
    mask = torch.zeros(1, x.shape[1] + extra, dtype=torch.bool)
    mask[:, : x.shape[1]] = True
    return torch.cat([x, garbage], dim=1), mask


# SUM-GDA

@pytest.mark.parametrize("heads,product_over", [(1, "queries"), (2, "keys")])
def test_sum_gda_shapes_and_ranges(heads, product_over):
    torch.manual_seed(0)
    model = SumGDA(in_dim=24, hidden=16, heads=heads, product_over=product_over)
    scores, attention = model(torch.randn(3, 17, 24))
    assert scores.shape == (3, 17) and attention.shape == (3, 17, 17)
    assert ((scores >= 0) & (scores <= 1)).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 17))  # softmax over rows, Eq. (2)
    with pytest.raises(ValueError, match="divisible"):
        SumGDA(in_dim=24, hidden=10, heads=3)


def test_sum_gda_padding_does_not_change_real_frames():
    torch.manual_seed(0)
    model = SumGDA(in_dim=12, hidden=8, heads=2).eval()
    x = torch.randn(1, 9, 12)
    scores, attention = model(x)
    x_pad, mask = padded(x, 5)
    scores_pad, attention_pad = model(x_pad, mask)
    torch.testing.assert_close(scores_pad[:, :9], scores)
    torch.testing.assert_close(attention_pad[:, :9, :9], attention)
    assert (scores_pad[:, 9:] == 0).all() and (attention_pad[:, 9:] == 0).all()
    assert (attention_pad[:, :, 9:] == 0).all()
    # a batch of two videos scores each as if it were alone
    other = torch.randn(1, 14, 12)
    batch = torch.cat([x_pad, other])
    scores_batch, _ = model(batch, torch.cat([mask, torch.ones(1, 14, dtype=torch.bool)]))
    torch.testing.assert_close(scores_batch[:1, :9], scores)
    torch.testing.assert_close(scores_batch[1:], model(other)[0])


@pytest.mark.parametrize("product_over", ["queries", "keys"])
def test_log_diversity_equals_direct_product(product_over):
    torch.manual_seed(0)
    t = 6
    attention = torch.randn(2, t, t, dtype=torch.float64).softmax(-1)
    off = ~torch.eye(t, dtype=torch.bool)
    dissimilarity = torch.where(off, 1 - attention, torch.ones_like(attention))  # i = j left out
    direct = dissimilarity.prod(dim=1 if product_over == "queries" else 2)  # Eq. (3)
    log_d = log_diversity(attention, product_over=product_over)
    torch.testing.assert_close(log_d.exp(), direct)
    torch.testing.assert_close(diverse_attention(attention, product_over=product_over),
                               direct / direct.sum(-1, keepdim=True))  # Eq. (4)
    # with padding: only real frames enter the product and the normalisation
    mask = torch.tensor([[True] * 4 + [False] * 2] * 2)
    real = attention[:, :4, :4]
    direct = torch.where(off[:4, :4], 1 - real, torch.ones_like(real)).prod(
        dim=1 if product_over == "queries" else 2)
    weights = diverse_attention(attention, mask, product_over=product_over)
    torch.testing.assert_close(weights[:, :4], direct / direct.sum(-1, keepdim=True))
    assert (weights[:, 4:] == 0).all()


def test_diversity_stays_finite_for_2000_frames():
    t = 2000
    # every frame gives half of its attention to frame 0 (a hub), the rest uniformly
    attention = torch.full((1, t, t), 0.5 / (t - 1))
    attention[0, :, 0] = 0.5
    attention[0, 0] = 1.0 / t
    attention.requires_grad_(True)
    off = ~torch.eye(t, dtype=torch.bool)
    direct = torch.where(off, 1 - attention, torch.ones_like(attention)).prod(dim=1)
    assert direct[0, 0] == 0  # 0.5 ** 1999 underflows in a direct product
    log_d = log_diversity(attention)
    assert torch.isfinite(log_d).all()
    assert log_d[0, 0].item() == pytest.approx(1999 * torch.log1p(torch.tensor(-0.5)).item(), rel=1e-4)
    weights = diverse_attention(attention)
    assert torch.isfinite(weights).all() and (weights[0, 1:] > 0).all()
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-5)
    (weights[0, 1:] * torch.arange(1, t)).sum().backward()
    assert torch.isfinite(attention.grad).all()
    # and the whole model on a 2,000-frame video
    torch.manual_seed(0)
    model = SumGDA(in_dim=32, hidden=16)
    scores, _ = model(torch.randn(1, t, 32) * 3)
    sum_gda_supervised_loss(scores, torch.rand(1, t))["total"].backward()
    assert torch.isfinite(scores).all() and scores.min() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_sum_gda_losses_by_hand_and_differentiable():
    scores = torch.tensor([[0.2, 0.4, 0.9, 0.0]], requires_grad=True)
    gt = torch.tensor([[0.0, 0.4, 1.0, 0.7]])
    mask = torch.tensor([[True, True, True, False]])
    sup = sum_gda_supervised_loss(scores, gt, mask)
    assert sup["total"].item() == pytest.approx((0.04 + 0.0 + 0.01) / 3)
    # frames 0 and 1 identical, frame 2 orthogonal to them, frame 3 padding
    features = torch.tensor([[[1.0, 0, 0], [2.0, 0, 0], [0, 3.0, 0], [5.0, 5.0, 5.0]]])
    unsup = sum_gda_unsupervised_loss(scores, features, mask, budget=0.15)
    assert set(unsup) == {"diversity", "representativeness", "length", "total"}
    a, b, c = 0.2, 0.4, 0.9
    assert unsup["diversity"].item() == pytest.approx(a * b / (a * b + a * c + b * c), rel=1e-5)
    # E[distance to the nearest summary frame]: (1−a)(1−b) for frames 0 and 1, 1 − c for frame 2
    expected_rep = (2 * (1 - a) * (1 - b) + (1 - c)) / 3
    assert unsup["representativeness"].item() == pytest.approx(expected_rep, rel=1e-5)
    assert unsup["length"].item() == pytest.approx(abs(1.5 / 3 - 0.15), rel=1e-6)
    assert unsup["total"].item() == pytest.approx(
        sum(unsup[k].item() for k in ("diversity", "representativeness", "length")), rel=1e-6)
    (sup["total"] + unsup["total"]).backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[0, :3].abs().sum() > 0


def test_unsupervised_loss_prefers_diverse_and_representative_summaries():
    # two scenes: frames 0-4 look alike, frames 5-9 look alike
    torch.manual_seed(0)
    a, b = torch.randn(2, 16)
    features = torch.stack([a] * 5 + [b] * 5).unsqueeze(0) + 0.05 * torch.randn(1, 10, 16)
    one_per_scene = torch.tensor([[0.9] + [0.05] * 4 + [0.9] + [0.05] * 4])
    same_scene = torch.tensor([[0.9, 0.9] + [0.05] * 8])
    diverse = sum_gda_unsupervised_loss(one_per_scene, features)
    redundant = sum_gda_unsupervised_loss(same_scene, features)
    assert diverse["diversity"] < redundant["diversity"] - 0.3
    assert diverse["representativeness"] < redundant["representativeness"] - 0.1


def test_sum_gda_learns_a_planted_gtscore():
    torch.manual_seed(0)
    x = torch.randn(4, 40, 16)
    direction = torch.randn(16)
    gt = torch.sigmoid(2 * x @ direction / direction.norm())  # (4, 40)
    model = SumGDA(in_dim=16, hidden=32, dropout=0.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        loss = sum_gda_supervised_loss(model(x)[0], gt)["total"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    scores = model(x)[0]
    assert torch.corrcoef(torch.stack([scores.flatten(), gt.flatten()]))[0, 1] > 0.9


# Cycle-SUM

def test_cycle_sum_parts_shapes_and_padding():
    torch.manual_seed(0)
    x = torch.randn(1, 11, 20)
    x_pad, mask = padded(x, 6)
    selector = FrameSelector(in_dim=20, hidden=8).eval()
    scores = selector(x)
    assert scores.shape == (1, 11) and ((scores > 0) & (scores < 1)).all()
    torch.testing.assert_close(selector(x_pad, mask)[:, :11], scores)

    vae = VAELSTM(in_dim=20, hidden=8, latent=4).eval()
    recon, mu, logvar = vae(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (1, 4)
    recon_pad, mu_pad, _ = vae(x_pad, mask)
    torch.testing.assert_close(recon_pad[:, :11], recon)
    torch.testing.assert_close(mu_pad, mu)
    assert (recon_pad[:, 11:] == 0).all()
    sampled = vae(x, sample=True)[0]
    assert not torch.allclose(sampled, recon)  # z = μ + σ ε when sampling

    disc = LSTMDiscriminator(in_dim=20, hidden=8)
    logit, feature = disc(x)
    assert logit.shape == (1,) and feature.shape == (1, 8)
    torch.testing.assert_close(disc(x_pad, mask)[0], logit)

    model = CycleSUM(in_dim=20, hidden=8, latent=4).eval()
    out = model.cycle(x_pad, mask)
    for name in ("summary", "video_hat", "summary_hat", "summary_cycle", "video_cycle"):
        assert getattr(out, name).shape == x_pad.shape
    torch.testing.assert_close(out.video_hat[:, :11], model.cycle(x).video_hat)
    torch.testing.assert_close(model(x_pad, mask)[:, :11], model(x))
    with pytest.raises(ValueError, match="padding at the end"):
        selector(x, torch.tensor([[False] + [True] * 10]))


def test_cycle_sum_losses_are_finite_and_reach_the_right_parameters():
    torch.manual_seed(0)
    model = CycleSUM(in_dim=16, hidden=8, latent=4)
    x = torch.randn(2, 12, 16)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False
    g = generator_losses(model, x, mask)
    assert set(g) == {"adv_forward", "adv_backward", "reconstruction", "cycle_forward",
                      "cycle_backward", "kl", "sparsity", "total"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in g.values())
    g["total"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.selector.parameters())
    model.zero_grad(set_to_none=True)
    d = discriminator_losses(model, x, mask)
    assert set(d) == {"forward_real", "forward_fake", "backward_real", "backward_fake", "total"}
    d["total"].backward()
    assert all(p.grad is None for p in model.generator_parameters())  # fakes are detached
    assert all(p.grad is not None for p in model.discriminator_parameters())
    n_params = sum(1 for _ in model.parameters())
    assert sum(1 for _ in model.generator_parameters()) + sum(
        1 for _ in model.discriminator_parameters()) == n_params


def test_cycle_sum_adversarial_training_moves_the_right_way():
    torch.manual_seed(0)
    model = CycleSUM(in_dim=16, hidden=16, latent=8)
    x = torch.randn(2, 20, 16)
    opt_g = torch.optim.Adam(model.generator_parameters(), lr=3e-3)
    opt_d = torch.optim.Adam(model.discriminator_parameters(), lr=1e-2)

    # only D trains: the discriminators learn to tell real from generated
    d_losses = []
    for _ in range(15):
        loss = discriminator_losses(model, x)["total"]
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        d_losses.append(loss.item())
    assert sum(d_losses[-3:]) / 3 < 0.6 * sum(d_losses[:3]) / 3

    # only selector + generators train against the fixed D: they fool it and meet the budget
    first = None
    for step in range(15):
        terms = generator_losses(model, x)
        opt_g.zero_grad()
        terms["total"].backward()
        opt_g.step()
        if step == 0:
            first = {k: v.item() for k, v in terms.items()}
    last = {k: v.item() for k, v in generator_losses(model, x).items()}
    assert last["total"] < 0.95 * first["total"]
    assert last["adv_forward"] < first["adv_forward"]
    assert last["sparsity"] < first["sparsity"]

    # a few alternating steps stay finite
    for _ in range(3):
        out = model.cycle(x)
        g = generator_losses(model, x, outputs=out)
        opt_g.zero_grad()
        g["total"].backward()
        opt_g.step()
        d = discriminator_losses(model, x, outputs=out)
        opt_d.zero_grad()
        d["total"].backward()
        opt_d.step()
        assert torch.isfinite(g["total"]) and torch.isfinite(d["total"])


def test_cycle_sum_representativeness_and_repelling_terms_by_hand():
    torch.manual_seed(0)
    model = CycleSUM(in_dim=3, hidden=4, latent=2)
    # frames 0 and 1 identical, frame 2 orthogonal to them, frame 3 padding (as in the SUM-GDA test)
    x = torch.tensor([[[1.0, 0, 0], [2.0, 0, 0], [0, 3.0, 0], [5.0, 5.0, 5.0]]])
    mask = torch.tensor([[True, True, True, False]])
    a, b, c = 0.2, 0.4, 0.9
    out = dataclasses.replace(model.cycle(x, mask), scores=torch.tensor([[a, b, c, 0.0]], requires_grad=True))
    plain = generator_losses(model, x, mask, outputs=out)
    assert "representativeness" not in plain and "repelling" not in plain  # weight 0: the paper's loss
    extended = generator_losses(model, x, mask, outputs=out, representativeness_weight=2.0,
                                repelling_weight=0.5)
    expected_rep = (2 * (1 - a) * (1 - b) + (1 - c)) / 3  # E[distance to the nearest kept frame]
    expected_div = a * b / (a * b + a * c + b * c)  # score-weighted similarity of kept pairs
    assert extended["representativeness"].item() == pytest.approx(expected_rep, rel=1e-5)
    assert extended["repelling"].item() == pytest.approx(expected_div, rel=1e-5)
    assert extended["total"].item() == pytest.approx(
        plain["total"].item() + 2.0 * expected_rep + 0.5 * expected_div, rel=1e-5)
    extended["total"].backward()
    assert out.scores.grad[0, 2] < 0  # keeping the lone frame more often lowers the loss


def test_cycle_sum_representativeness_lifts_a_rare_event(descend):
    # a 40-frame scene with a 3-frame event in the middle: the selector learns to keep the event
    # with the per-frame terms on, and not with the paper's objective alone
    g = torch.Generator().manual_seed(0)
    scene, event = torch.randn(2, 16, generator=g)
    x = torch.stack([scene] * 20 + [event] * 3 + [scene] * 20).unsqueeze(0)
    x = x + 0.1 * torch.randn(x.shape, generator=g)
    lift = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = CycleSUM(in_dim=16, hidden=16, latent=8)
        descend(lambda step: generator_losses(model, x, representativeness_weight=weight,
                                              repelling_weight=weight)["total"],
                torch.optim.Adam(model.generator_parameters(), lr=1e-2), 40)
        with torch.no_grad():
            scores = model(x)[0]
        lift[weight] = scores[20:23].mean() / torch.cat([scores[:20], scores[23:]]).mean()
    assert lift[1.0] > 2 and lift[0.0] < 2
