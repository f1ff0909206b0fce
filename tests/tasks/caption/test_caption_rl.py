"""Self-critical signals: SCST baselines and n-step advantages equal hand-computed values; rollouts
complete every prefix in one batched decoding call and agree with completing them one by one."""
import pytest
import torch

from crossmedia.nn.decoding import decode
from crossmedia.tasks.caption.rl import nstep_advantage, policy_gradient_loss, prefix_rollouts, q_table, scst_advantage


def test_scst_greedy_baseline():
    rewards = torch.tensor([[0.5, 1.5], [2.0, 0.0]])
    assert scst_advantage(rewards, torch.tensor([1.0, 0.5])).tolist() == [[-0.5, 0.5], [1.5, -0.5]]


def test_scst_mean_of_the_other_samples():
    rewards = torch.tensor([[1.0, 2.0, 6.0]])
    # baselines: (2+6)/2 = 4, (1+6)/2 = 3.5, (1+2)/2 = 1.5
    assert scst_advantage(rewards).tolist() == [[-3.0, -1.5, 4.5]]
    with pytest.raises(ValueError, match="at least 2 samples"):
        scst_advantage(torch.tensor([[1.0]]))


# Q_0 .. Q_5 of one caption of T = 4 tokens (3 words + end); Q_4 = the caption's reward = 5.
Q = torch.tensor([[1.0, 2.0, 4.0, 3.0, 5.0, 5.0]])
T = torch.tensor([4])


@pytest.mark.parametrize("n, expected", [
    (1, [2 - 1, 4 - 2, 3 - 4, 5 - 3, 0]),   # A_t = Q_t - Q_{t-1}
    (2, [4 - 1, 3 - 2, 5 - 4, 5 - 3, 0]),   # A_t = Q_{min(t+1, 4)} - Q_{t-1}
    (3, [3 - 1, 5 - 2, 5 - 4, 5 - 3, 0]),
    (99, [5 - 1, 5 - 2, 5 - 4, 5 - 3, 0]),  # n >= T: the reward minus each prefix value
])
def test_nstep_advantage_by_hand(n, expected):
    assert nstep_advantage(Q, T, n).tolist() == [expected]


def test_nstep_advantage_rejects_n_below_one():
    with pytest.raises(ValueError, match="n must be at least 1"):
        nstep_advantage(Q, T, 0)


def test_q_table_averages_rollouts_and_uses_the_reward_from_the_end_on():
    # caption 0 has T = 2 tokens (prefixes 0 and 1), caption 1 has T = 3; two rollouts per prefix
    row = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    prefix = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1, 2, 2])
    rollout = torch.tensor([1.0, 3.0, 4.0, 6.0, 0.0, 1.0, 2.0, 2.0, 7.0, 9.0])
    q = q_table(rollout, row, prefix, torch.tensor([10.0, 20.0]), torch.tensor([2, 3]), steps=3)
    assert q.tolist() == [[2.0, 5.0, 10.0, 10.0], [0.5, 2.0, 8.0, 20.0]]


def test_policy_gradient_loss_masks_and_averages_over_tokens():
    lp = torch.tensor([[-1.0, -2.0, -3.0]], requires_grad=True)
    loss = policy_gradient_loss(lp, torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[True, True, False]]))
    assert loss.item() == pytest.approx(-(1 * -1 + 2 * -2) / 2)
    loss.backward()
    assert lp.grad.tolist() == [[-0.5, -1.0, 0.0]]


@pytest.mark.parametrize("samples", [0, 2])
def test_prefix_rollouts_complete_every_prefix_as_one_by_one_would(samples, toy):
    dec, ctx = toy.decoder(seed=7), toy.ctx(batch=4, seed=8)
    max_len = 6
    sampled = decode(dec.step, dec.init_state(ctx), ctx, max_len=max_len, sample=True,
                     generator=torch.Generator().manual_seed(1))
    lengths = sampled.mask.sum(1)
    dec.calls = 0
    row, prefix, captions = prefix_rollouts(dec, ctx, sampled.seq, max_len=max_len, samples=samples,
                                            generator=torch.Generator().manual_seed(2))
    # one teacher-forced pass (T-1 steps) and one decoding call (at most max_len + 1 steps)
    assert dec.calls <= int(lengths.max()) - 1 + max_len + 1
    per_prefix = max(samples, 1)
    assert row.numel() == int(lengths.sum()) * per_prefix
    for r, t, caption in zip(row.tolist(), prefix.tolist(), captions):
        assert caption[:t].tolist() == sampled.seq[r, :t].tolist()       # the prefix is kept
        assert 0 in caption.tolist()                                        # and the caption ends
    if samples == 0:  # greedy completions: check each against decoding its prefix alone
        for r, t, caption in zip(row.tolist(), prefix.tolist(), captions):
            c = (ctx[0][r: r + 1],)
            state = dec.init_state(c)
            words = torch.tensor([0])
            for w in sampled.seq[r, :t].tolist():
                _, state = dec.step(words, state, c)
                words = torch.tensor([w])
            alone = decode(dec.step, state, c, max_len=max_len, first=words, budget=torch.tensor([max_len - t]))
            expected = sampled.seq[r, :t].tolist() + alone.seq[0][alone.mask[0]].tolist()
            assert caption[: len(expected)].tolist() == expected
            assert (caption[len(expected):] == 0).all()
        # the empty prefix's greedy rollout is the greedy caption (SCST's baseline)
        greedy = decode(dec.step, dec.init_state(ctx), ctx, max_len=max_len).seq
        for i in range(4):
            first = captions[(row == i) & (prefix == 0)][0]
            assert first[: greedy.shape[1]].tolist() == greedy[i].tolist()
