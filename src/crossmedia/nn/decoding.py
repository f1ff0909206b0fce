"""Autoregressive decoding for any step function: greedy, sampling with temperature, batched beam search.

A decoder exposes ``step(words, state, ctx) -> (log_probs, state)``: ``words`` (B,) the previous
tokens, ``state`` and ``ctx`` tuples of tensors whose first dimension is the batch (``ctx`` holds
what does not change between steps, e.g. the image regions; ``state`` the recurrent state),
``log_probs`` (B, V) log-softmax over the vocabulary. Id ``eos`` ends a sentence and pads what
follows it; the first input is ``bos`` (the same id 0 in captioning, as in the self-critical code).

At most ``max_len`` words are produced; the step after them may only be ``eos`` (its
log-probability is then not taken from the model, and counted as 0), so every sequence ends with
``eos`` and has at most ``max_len + 1`` tokens, as the training targets do.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["Decoded", "StepFn", "tree_index", "decode", "beam_search", "sequence_mask"]

StepFn = Callable[[torch.Tensor, tuple, tuple], tuple[torch.Tensor, tuple]]


def tree_index(tree: Sequence[torch.Tensor], index: torch.Tensor) -> tuple:
    """Select batch rows ``index`` of every tensor in ``tree`` (None entries stay None)."""
    return tuple(None if t is None else t.index_select(0, index) for t in tree)


def sequence_mask(seq: torch.Tensor, eos: int = 0) -> torch.Tensor:
    """True for the tokens up to and including the first ``eos`` of each row: (B, L) bool."""
    ended_before = torch.cumsum((seq == eos).int(), 1) - (seq == eos).int()
    return ended_before == 0


@dataclass
class Decoded:
    seq: torch.Tensor        # (B, L) long; eos, then eos padding
    log_probs: torch.Tensor  # (B, L) log-probability of each chosen token (0 after the end)
    mask: torch.Tensor       # (B, L) bool, True up to and including the end token


def decode(step: StepFn, state: tuple, ctx: tuple, *, max_len: int, sample: bool = False, temperature: float = 1.0,
           first: torch.Tensor | None = None, bos: int = 0, eos: int = 0, budget: torch.Tensor | None = None,
           generator: torch.Generator | None = None) -> Decoded:
    """Greedy (``sample=False``) or sampled decoding of a batch.

    ``first`` (B,) the first input tokens (default ``bos``). ``budget`` (B,) the number of words
    each row may still produce (default ``max_len``); a row is forced to ``eos`` once it is spent,
    which is how rollouts complete a prefix. Finished rows are dropped from the computation once
    fewer than three quarters of the rows of the last compaction remain, so long tails cost
    little. Sampling keeps the graph: ``log_probs`` carries gradients when grad is enabled.
    """
    batch = first.shape[0] if first is not None else ctx[0].shape[0]
    device = ctx[0].device
    words = first if first is not None else torch.full((batch,), bos, dtype=torch.long, device=device)
    budget = torch.full((batch,), max_len, device=device) if budget is None else budget.to(device).clone()
    steps = int(budget.max()) + 1 if batch else 0
    seq = torch.full((batch, steps), eos, dtype=torch.long, device=device)
    chosen_lp: list[torch.Tensor] = []
    chosen_rows: list[torch.Tensor] = []
    rows = torch.arange(batch, device=device)           # original row of each computed row
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    for t in range(steps):
        log_probs, state = step(words, state, ctx)
        if sample:
            scaled = log_probs if temperature == 1.0 else torch.log_softmax(log_probs / temperature, -1)
            nxt = torch.multinomial(scaled.detach().exp(), 1, generator=generator).squeeze(1)
        else:
            nxt = log_probs.argmax(-1)
        forced = (budget[rows] <= t) & ~done[rows]
        nxt = torch.where(forced | done[rows], torch.full_like(nxt, eos), nxt)
        lp = log_probs.gather(1, nxt[:, None]).squeeze(1)
        lp = torch.where(forced | done[rows], torch.zeros_like(lp), lp)
        seq[rows, t] = nxt
        chosen_lp.append(lp)
        chosen_rows.append(rows)
        done[rows] |= nxt == eos
        words = nxt
        live = ~done[rows]
        if not bool(live.any()):
            steps = t + 1
            break
        if int(live.sum()) * 4 <= rows.numel() * 3:  # compact: keep only unfinished rows
            keep = live.nonzero().squeeze(1)
            rows, words = rows[keep], words[keep]
            state, ctx = tree_index(state, keep), tree_index(ctx, keep)
    seq = seq[:, :steps]
    columns = [lp.new_zeros(batch).index_put((r,), lp) for lp, r in zip(chosen_lp, chosen_rows)]
    out = torch.stack(columns, 1) if columns else torch.zeros(batch, 0, device=device)
    return Decoded(seq=seq, log_probs=out, mask=sequence_mask(seq, eos))


def beam_search(step: StepFn, state: tuple, ctx: tuple, *, beam_size: int, max_len: int, length_penalty: float = 0.0,
                bos: int = 0, eos: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched beam search: every image's beams are rows of one batch.

    Beams are ranked by their summed log-probability while searching; a finished beam keeps its
    score and only continues with ``eos`` at no cost. The returned sequence of each image is the
    finished beam with the best ``score / length ** length_penalty`` (length counts the end token;
    ``length_penalty=0`` ranks by the plain sum). With ``beam_size=1`` this is greedy decoding.
    Returns ``(seq (B, L), score (B,))``.
    """
    batch, device = ctx[0].shape[0], ctx[0].device
    k = beam_size
    expand = torch.arange(batch, device=device).repeat_interleave(k)
    state, ctx = tree_index(state, expand), tree_index(ctx, expand)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0                                # all beams start equal: keep one
    words = torch.full((batch * k,), bos, dtype=torch.long, device=device)
    seq = torch.zeros(batch * k, 0, dtype=torch.long, device=device)
    done = torch.zeros(batch * k, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch * k, device=device)
    for t in range(max_len + 1):
        log_probs, state = step(words, state, ctx)
        vocab = log_probs.shape[-1]
        log_probs = log_probs.float()
        if t == max_len:  # only the end token may follow max_len words
            log_probs = torch.full_like(log_probs, float("-inf"))
            log_probs[:, eos] = 0.0
        finished = torch.full_like(log_probs, float("-inf"))
        finished[:, eos] = 0.0
        log_probs = torch.where(done[:, None], finished, log_probs)
        total = (scores.reshape(-1, 1) + log_probs).reshape(batch, k * vocab)
        scores, flat = total.topk(k, dim=1)
        origin = (flat // vocab + torch.arange(batch, device=device)[:, None] * k).reshape(-1)
        words = (flat % vocab).reshape(-1)
        seq = torch.cat([seq[origin], words[:, None]], 1)
        lengths = torch.where(done[origin], lengths[origin], lengths[origin] + 1)
        done = done[origin] | (words == eos)
        state = tree_index(state, origin)
        if bool(done.all()):
            break
    ranked = scores.reshape(-1) / lengths.clamp_min(1) ** length_penalty if length_penalty else scores.reshape(-1)
    best = ranked.reshape(batch, k).argmax(1) + torch.arange(batch, device=device) * k
    return seq[best], scores.reshape(-1)[best]
