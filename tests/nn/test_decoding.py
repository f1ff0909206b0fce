"""Decoding: beam search with beam 1 is greedy; budgets, forced end tokens and compaction are exact."""
import torch

from crossmedia.nn.decoding import beam_search, decode, sequence_mask


def test_beam_one_equals_greedy(toy):
    dec, ctx = toy.decoder(), toy.ctx()
    greedy = decode(dec.step, dec.init_state(ctx), ctx, max_len=8)
    beam, score = beam_search(dec.step, dec.init_state(ctx), ctx, beam_size=1, max_len=8)
    assert torch.equal(beam[:, : greedy.seq.shape[1]], greedy.seq)
    assert (beam[:, greedy.seq.shape[1]:] == 0).all()
    assert torch.allclose(score, (greedy.log_probs * greedy.mask).sum(1), atol=1e-5)


def test_beam_search_finds_a_sequence_at_least_as_likely_as_greedy(toy):
    dec, ctx = toy.decoder(seed=3), toy.ctx(seed=4)
    greedy = decode(dec.step, dec.init_state(ctx), ctx, max_len=8)
    _, score = beam_search(dec.step, dec.init_state(ctx), ctx, beam_size=4, max_len=8)
    assert (score >= (greedy.log_probs * greedy.mask).sum(1) - 1e-5).all()


def test_every_sequence_ends_within_max_len_plus_one(toy):
    dec, ctx = toy.decoder(), toy.ctx(batch=20)
    with torch.no_grad():
        dec.out.bias.fill_(0)
        dec.out.bias[0] = -50.0  # the model never wants to stop
    out = decode(dec.step, dec.init_state(ctx), ctx, max_len=5, sample=True,
                 generator=torch.Generator().manual_seed(0))
    assert out.seq.shape == (20, 6) and (out.seq[:, :5] != 0).all() and (out.seq[:, 5] == 0).all()
    assert (out.log_probs[:, 5] == 0).all()  # the forced end token is not the model's choice
    seq, _ = beam_search(dec.step, dec.init_state(ctx), ctx, beam_size=3, max_len=5)
    assert seq.shape[1] == 6 and (seq[:, 5] == 0).all()


def test_budget_and_first_token_per_row_match_one_row_at_a_time(toy):
    dec, ctx = toy.decoder(seed=5), toy.ctx(batch=5, seed=6)
    first, budget = torch.tensor([0, 3, 4, 2, 5]), torch.tensor([6, 1, 3, 0, 4])
    batched = decode(dec.step, dec.init_state(ctx), ctx, max_len=6, first=first, budget=budget)
    for i in range(5):
        one = decode(dec.step, dec.init_state((ctx[0][i: i + 1],)), (ctx[0][i: i + 1],), max_len=6,
                     first=first[i: i + 1], budget=budget[i: i + 1])
        width = one.seq.shape[1]
        assert torch.equal(batched.seq[i, :width], one.seq[0])
        assert torch.allclose(batched.log_probs[i, :width], one.log_probs[0], atol=1e-6)
        assert int(batched.mask[i].sum()) <= int(budget[i]) + 1


def test_sampled_log_probs_carry_gradients(toy):
    dec, ctx = toy.decoder(), toy.ctx()
    out = decode(dec.step, dec.init_state(ctx), ctx, max_len=6, sample=True, generator=torch.Generator().manual_seed(0))
    (out.log_probs * out.mask).sum().backward()
    assert dec.out.weight.grad is not None and dec.out.weight.grad.abs().sum() > 0


def test_sequence_mask_keeps_the_first_end_token():
    seq = torch.tensor([[3, 4, 0, 0], [0, 0, 0, 0], [1, 2, 3, 4]])
    assert sequence_mask(seq).tolist() == [[True, True, True, False], [True, False, False, False], [True] * 4]
