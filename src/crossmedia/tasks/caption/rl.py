"""Self-critical training signals: the SCST advantage and the self-critical n-step advantage.

SCST (Rennie et al., "Self-critical Sequence Training for Image Captioning", CVPR 2017): the reward
of a sampled caption minus a baseline, the same for every word of it. The baseline is the reward of
the greedy caption (decoded without gradient, in eval mode), or — with K samples per image — the
mean reward of the *other* K-1 samples.

Self-critical n-step training (Gao et al., "Self-critical n-step Training for Image Captioning",
CVPR 2019, arXiv 1904.06861) gives each word its own advantage: the state value is replaced by the
preceding state-action value,

    A_t = Q(s_t, w_t) - Q(s_{t-1}, w_{t-1}),   extended to n steps:   A^n_t = Q_{min(t+n-1, T)} - Q_{t-1},

where ``Q_t`` is the expected reward of the caption that starts with the sampled words
``w_1 .. w_t``, ``T`` the sampled caption's length (its end token included, so ``Q_T`` is the
caption's own reward) and ``Q_0`` the value of the empty prefix. ``Q_t`` is estimated by rolling
out the prefix to a whole caption: the max-probability (greedy) rollout, or the mean reward of K
sampled (Monte-Carlo) rollouts. ``Q_0`` by the same rule is, for the greedy rollout, SCST's
greedy baseline. All prefixes of a batch are completed in ONE decoding call, without gradient.

:func:`scst_token_advantage` and :func:`scnst_token_advantage` are the two methods' loss bodies:
from the sampled captions (and the eval-mode decoder context for baselines and rollouts) to the
per-token advantages that :func:`policy_gradient_loss` weighs the log-probabilities with. The
reward is any ``reward(seq, images) -> (R,)`` (CIDEr-D of the training references, see
:class:`crossmedia.tasks.caption.reward.CaptionReward`).
"""
from __future__ import annotations

import torch

from collections.abc import Callable

import torch.nn.functional as F

from crossmedia.nn.decoding import Decoded, decode, sequence_mask, tree_index

__all__ = ["scst_advantage", "nstep_advantage", "policy_gradient_loss", "prefix_rollouts", "q_table",
           "scst_token_advantage", "scnst_token_advantage"]

Reward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``reward(seq, images)``: (R,) rewards of the caption rows ``seq`` (R, L) of training images ``images`` (R,)."""


def scst_advantage(sample_rewards: torch.Tensor, greedy_rewards: torch.Tensor | None = None) -> torch.Tensor:
    """(B, K) advantages: reward minus the greedy reward (B,), or minus the mean of the other K-1 samples."""
    if greedy_rewards is not None:
        return sample_rewards - greedy_rewards[:, None]
    k = sample_rewards.shape[1]
    if k < 2:
        raise ValueError("the mean-of-others baseline needs at least 2 samples per image (samples_per_image >= 2)")
    return sample_rewards - (sample_rewards.sum(1, keepdim=True) - sample_rewards) / (k - 1)


def nstep_advantage(q: torch.Tensor, lengths: torch.Tensor, n: int) -> torch.Tensor:
    """Per-token advantages (R, L) from ``q`` (R, L + 1), ``q[:, t] = Q_t``.

    ``lengths`` (R,) counts each caption's tokens including the end token; positions after it get
    0. ``q[:, t]`` for ``t >= lengths`` is not read (``min(t + n - 1, T)`` never passes ``T``).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    steps = q.shape[1] - 1
    t = torch.arange(1, steps + 1, device=q.device)                          # 1..L
    ahead = torch.minimum(t[None] + n - 1, lengths[:, None]).clamp_max(steps)
    advantage = q.gather(1, ahead) - q[:, :-1]
    return torch.where(t[None] <= lengths[:, None], advantage, torch.zeros_like(advantage))


def policy_gradient_loss(log_probs: torch.Tensor, advantage: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-sum(A * log p * mask) / sum(mask): REINFORCE averaged over the caption tokens."""
    mask = mask.to(log_probs.dtype)
    return -(advantage.detach() * log_probs * mask).sum() / mask.sum().clamp_min(1.0)


@torch.no_grad()
def prefix_rollouts(decoder, ctx: tuple, seq: torch.Tensor, *, max_len: int, samples: int = 0,
                    bos: int = 0, eos: int = 0, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Complete every prefix ``w_1..w_t`` (t = 0 .. T-1) of every caption in ``seq`` (R, L).

    ``samples=0`` rolls out greedily once; ``samples=K`` draws K sampled completions. The decoder's
    states after each prefix come from one teacher-forced pass over ``seq``; then all R * T * max(K, 1)
    completions run as one batch. Returns ``(row, prefix_len, captions)``: for each completion
    the caption row it extends, the prefix length t, and the whole caption (prefix + completion,
    (M, max_len + 1), end token and padding 0).
    """
    rows_total, steps = seq.shape
    lengths = sequence_mask(seq, eos).sum(1)                                              # tokens incl. the end
    inputs = torch.cat([torch.full((rows_total, 1), bos, dtype=seq.dtype, device=seq.device), seq[:, :-1]], 1)
    state = decoder.init_state(ctx)
    states = [state]
    for t in range(int(lengths.max()) - 1):                                              # S_1 .. S_{T-1}
        _, state = decoder.step(inputs[:, t], state, ctx)
        states.append(state)
    stacked = tuple(torch.stack([s[c] for s in states], 1) for c in range(len(states[0])))  # (R, T, ...)
    prefix = torch.arange(steps, device=seq.device)[None].expand(rows_total, -1)
    keep = prefix < lengths[:, None]                                                      # t = 0 .. T-1
    row, prefix_len = keep.nonzero(as_tuple=True)
    if samples:
        row, prefix_len = row.repeat_interleave(samples), prefix_len.repeat_interleave(samples)
    start = tuple(s[row, prefix_len] for s in stacked)
    out = decode(decoder.step, start, tree_index(ctx, row), max_len=max_len, sample=samples > 0,
                 first=inputs[row, prefix_len], budget=max_len - prefix_len, bos=bos, eos=eos, generator=generator)
    captions = torch.full((row.numel(), max_len + 1), eos, dtype=seq.dtype, device=seq.device)
    position = torch.arange(max_len + 1, device=seq.device)[None]
    words = seq[row, : max_len + 1] if steps >= max_len + 1 else torch.nn.functional.pad(seq[row], (0, max_len + 1 - steps))
    captions = torch.where(position < prefix_len[:, None], words, captions)
    # completion token j goes to position prefix_len + j
    target = prefix_len[:, None] + torch.arange(out.seq.shape[1], device=seq.device)[None]
    valid = (target <= max_len) & out.mask
    which = torch.arange(row.numel(), device=seq.device)[:, None].expand_as(target)
    captions[which[valid], target[valid]] = out.seq[valid]
    return row, prefix_len, captions


def q_table(rollout_rewards: torch.Tensor, row: torch.Tensor, prefix_len: torch.Tensor, sample_rewards: torch.Tensor,
            lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(R, steps + 1) ``Q_t``: the mean rollout reward of each prefix for t < T, the caption's reward for t >= T."""
    rows = sample_rewards.shape[0]
    total = torch.zeros(rows, steps + 1, dtype=rollout_rewards.dtype, device=rollout_rewards.device)
    count = torch.zeros_like(total)
    total.index_put_((row, prefix_len), rollout_rewards, accumulate=True)
    count.index_put_((row, prefix_len), torch.ones_like(rollout_rewards), accumulate=True)
    t = torch.arange(steps + 1, device=total.device)[None]
    final = sample_rewards[:, None].to(total.dtype).expand_as(total)
    return torch.where(t >= lengths[:, None], final, total / count.clamp_min(1))


def pad_to(seq: torch.Tensor, length: int) -> torch.Tensor:
    """``seq`` (R, L) cut or padded with ``<eos>`` = 0 to (R, length)."""
    return seq[:, :length] if seq.shape[1] >= length else F.pad(seq, (0, length - seq.shape[1]))


def scst_token_advantage(decoder, eval_ctx: tuple, sampled: Decoded, images: torch.Tensor, reward: Reward, *,
                         samples_per_image: int, max_len: int, baseline: str = "greedy"
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SCST: every token of a sampled caption gets its reward minus the baseline.

    ``sampled``: K = ``samples_per_image`` captions per image, image-major (R = B K rows, seq (R, L));
    ``images`` (B,) the batch's training image ids; ``eval_ctx`` the decoder context of the B images
    in eval mode (the greedy baseline is decoded from it, without gradient). Returns the advantages
    (R, L) and what to log (``reward``: the samples' mean reward, ``greedy_reward``).
    """
    k = samples_per_image
    sample_images = images.repeat_interleave(k)                               # (R,)
    if baseline == "greedy":
        with torch.no_grad():
            greedy = decode(decoder.step, decoder.init_state(eval_ctx), eval_ctx, max_len=max_len).seq  # (B, L')
        width = max_len + 1
        rewards = reward(torch.cat([pad_to(sampled.seq, width), pad_to(greedy, width)]),
                         torch.cat([sample_images, images]))                  # (R + B,)
        sample_r, greedy_r = rewards[: sample_images.numel()], rewards[sample_images.numel():]
        advantage = scst_advantage(sample_r.view(-1, k), greedy_r).flatten()  # (R,)
        logged = {"reward": sample_r.mean(), "greedy_reward": greedy_r.mean()}
    else:
        sample_r = reward(sampled.seq, sample_images)
        advantage = scst_advantage(sample_r.view(-1, k)).flatten()            # (R,)
        logged = {"reward": sample_r.mean()}
    return advantage[:, None].expand_as(sampled.log_probs), logged           # (R, L)


def scnst_token_advantage(decoder, eval_ctx: tuple, sampled: Decoded, images: torch.Tensor, reward: Reward, *,
                          samples_per_image: int, max_len: int, nstep: int, rollout_samples: int = 0
                          ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Self-critical n-step: per-token advantages ``A^n_t = Q_min(t+n-1, T) - Q_t-1`` (module docstring).

    Arguments as :func:`scst_token_advantage`; ``rollout_samples`` 0 rolls every prefix out greedily,
    K > 0 averages K sampled completions. Returns the advantages (R, L) and what to log
    (``reward``, ``value0``: the mean Q_0).
    """
    k = samples_per_image
    expand = torch.arange(images.shape[0], device=images.device).repeat_interleave(k)  # (R,) row -> image row
    sample_images = images[expand]
    row, prefix_len, completed = prefix_rollouts(decoder, tree_index(eval_ctx, expand), sampled.seq,
                                                 max_len=max_len, samples=rollout_samples)  # (M,), (M,), (M, L+1)
    rewards = reward(torch.cat([pad_to(sampled.seq, completed.shape[1]), completed]),
                     torch.cat([sample_images, sample_images[row]]))          # (R + M,)
    sample_r, rollout_r = rewards[: expand.numel()], rewards[expand.numel():]
    lengths = sampled.mask.sum(1)                                             # (R,) tokens incl. the end
    q = q_table(rollout_r, row, prefix_len, sample_r, lengths, sampled.seq.shape[1])  # (R, L + 1)
    return nstep_advantage(q, lengths, nstep), {"reward": sample_r.mean(), "value0": q[:, 0].mean()}
