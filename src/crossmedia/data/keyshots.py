"""Keyshot selection, the summary half of the SumMe / TVSum protocol: scores -> segments -> knapsack.

The reference is ``generate_summary`` and ``knapsack_dp`` in KaiyangZhou's pytorch-vsumm-reinforce
(``vsum_tools.py``, ``knapsack.py``), which nearly every SumMe/TVSum F-score since 2018 goes
through. Ours gives the same summaries, bit for bit (``bench/summ_eval.py`` checks it):

1. **Frame scores** (:func:`frame_scores`): the model scores the sub-sampled steps (2 fps:
   ``picks`` = 0, 15, 30, ...). Step ``i``'s score fills frames ``picks[i] .. picks[i+1]-1``, the
   last step's score fills up to the end of the video; frames before ``picks[0]`` get 0. Scores
   are stored in float32, as the reference's frame array is.
2. **Segment scores** (:func:`segment_scores`): the mean frame score of each segment
   ``[start, end]`` (inclusive) of ``change_points``, computed as NumPy's float32 ``mean`` does.
3. **Knapsack** (:func:`knapsack_select`): values = segment scores, weights = ``n_frame_per_seg``,
   capacity = ``floor(proportion * n_frames)`` (``math.floor`` of the float product, default 15 %).
4. **Summary** (:func:`generate_summary`): the 0/1 frame vector built from ``n_frame_per_seg``
   (not from ``change_points``), one run per segment, 1 where the segment was chosen.

:func:`generate_summaries` runs steps 1-4 for many videos at once (one batched knapsack). The
F-score against user summaries (step 5) is the summarisation task's evaluation
(``crossmedia.tasks.summarization.metrics``); the built-in dataset uses these functions to draw
its user summaries.

**The knapsack.** Given items with values :math:`v_i` and integer weights :math:`w_i`, choose a
subset :math:`S` maximising :math:`\\sum_{i \\in S} v_i` subject to :math:`\\sum_{i \\in S} w_i \\le C`.
The classic table :math:`T[i, c]` (best value using the first :math:`i` items within capacity
:math:`c`) is filled item by item::

    T[i, c] = v_i + T[i-1, c - w_i]   if w_i <= c and v_i + T[i-1, c - w_i] > T[i-1, c]
    T[i, c] = T[i-1, c]               otherwise

and the chosen items are read back from :math:`c = C`, last item first. Here each item's row is
one vectorised numpy step over all capacities at once (O(n) Python steps instead of O(n C)).

It matches the reference's ``knapsack_dp`` number for number:

- the table is stored in float32, while the candidate ``v_i + T[i-1, c - w_i]`` is formed and
  compared in float64, as the reference does under NumPy 1.x (a NumPy float32 scalar plus a
  Python float was float64 before NEP 50);
- an item is taken only when it is *strictly* better, so ties keep the lower-numbered items
  (the solution without item ``i`` wins a tie at row ``i``);
- values may be any floats (NaN never wins a comparison); weights must be integers >= 0.

Where the reference asserts (no items, capacity 0) we return the obvious answer instead: no items
gives ``[]``, capacity 0 can only hold weight-0 items with a positive value.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["frame_scores", "segment_scores", "generate_summary", "generate_summaries", "knapsack_select",
           "knapsack_select_many", "as_numpy", "grouped_rows"]

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


# helpers

def _as_weights(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights)
    if weights.size and not np.issubdtype(weights.dtype, np.integer):
        if not np.all(np.isfinite(weights)) or np.any(weights != np.round(weights)):
            raise ValueError(f"knapsack weights must be integers, got {weights.dtype} values such as "
                             f"{weights.ravel()[:3].tolist()}")
    weights = weights.astype(np.int64)
    if np.any(weights < 0):
        raise ValueError(f"knapsack weights must be >= 0, got {int(weights.min())}")
    return weights


def as_numpy(x: ArrayLike) -> np.ndarray:
    """``x`` (tensor on any device, array or sequence) as a NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_picks(picks: np.ndarray) -> np.ndarray:
    picks = np.asarray(picks).reshape(-1)
    if picks.dtype.kind != "i":
        picks = picks.astype(np.int32)  # the reference truncates non-integer picks the same way
    if len(picks) == 0:
        raise ValueError("picks is empty: there is no sub-sampled frame to take a score from")
    return picks.astype(np.int64, copy=False)


def _scores_per_pick(step_scores: np.ndarray, picks: np.ndarray, n_frames: int) -> np.ndarray:
    """float32 score (len(picks),) of the run starting at each pick, by the reference's rules."""
    intervals = len(picks) - int(picks[-1] == n_frames)  # a last pick at n_frames starts no run
    scores = np.asarray(step_scores, dtype=np.float32).reshape(-1)
    if len(scores) < intervals - 1 or len(scores) > len(picks):
        raise ValueError(f"{len(scores)} step scores for {len(picks)} picks: one score per pick is expected")
    out = np.zeros(len(picks), dtype=np.float32)  # the reference's `i == len(ypred)` case leaves a 0
    used = min(len(scores), intervals)
    out[:used] = scores[:used]
    return out


def _positions(step_scores: np.ndarray, picks: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Run bounds (k+1,) from the first pick to n_frames and the float32 score of each of the k runs."""
    picks = _as_picks(picks)
    if picks[0] < 0 or picks[-1] > n_frames or np.any(np.diff(picks) <= 0):
        raise ValueError(f"picks must be strictly increasing frame indices in [0, n_frames={n_frames}], "
                         f"got {picks[:3].tolist()} ... {picks[-3:].tolist()}")
    positions = picks if picks[-1] == n_frames else np.append(picks, n_frames)  # (k+1,)
    return positions, _scores_per_pick(step_scores, picks, n_frames)[:len(positions) - 1]


def grouped_rows(sizes: np.ndarray) -> list[np.ndarray]:
    """Indices of the entries of ``sizes`` grouped by equal size, one array per distinct size."""
    order = np.argsort(sizes, kind="stable")
    cuts = np.flatnonzero(np.diff(sizes[order])) + 1
    return np.split(order, cuts)


def _segment_means(scores: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """float(scores[s:s+l].mean()) for every (s, l), bit-identical to the per-slice float32 mean.

    Segments of one length are gathered into a (k, l) array and reduced along the last axis, which
    NumPy does row by row with the same pairwise float32 summation as the 1-D mean of each slice.
    """
    means = np.empty(len(starts), dtype=np.float64)
    for rows in grouped_rows(lengths):
        frames = starts[rows, None] + np.arange(lengths[rows[0]])[None, :]  # (k, l)
        means[rows] = scores[frames].mean(axis=1)
    return means


def _check_segments(change_points: np.ndarray, n_frame_per_seg: np.ndarray, n_frames: int) -> None:
    if change_points.ndim != 2 or change_points.shape[1] != 2 or len(change_points) == 0:
        raise ValueError(f"change_points must be (n_seg, 2) [start, end] rows, got shape {change_points.shape}")
    if len(n_frame_per_seg) != len(change_points):
        raise ValueError(f"{len(n_frame_per_seg)} n_frame_per_seg entries for {len(change_points)} segments")
    starts, ends = change_points[:, 0], change_points[:, 1]
    if np.any(ends < starts) or starts.min() < 0 or ends.max() >= n_frames:
        raise ValueError(f"every segment [start, end] must satisfy 0 <= start <= end < n_frames={n_frames}")


# the knapsack

def knapsack_select_many(values: np.ndarray, weights: np.ndarray, capacities: Sequence[int] | np.ndarray,
                         *, num_items: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Solve ``B`` independent knapsacks at once; returns the chosen items as a mask (B, n) bool.

    ``values`` (B, n) float, ``weights`` (B, n) int >= 0 and ``capacities`` (B,) int >= 0; row ``b``
    uses its first ``num_items[b]`` items (all ``n`` by default; the rest is padding and never
    chosen). Every row gives exactly what :func:`knapsack_select` gives for it alone: the table of
    row ``b`` at capacity ``c`` only depends on capacities ``<= c``, so sharing one table width
    ``max(capacities)`` changes nothing.
    """
    values = np.asarray(values, dtype=np.float64)
    weights = _as_weights(weights)
    capacities = np.asarray(capacities, dtype=np.int64).reshape(-1)
    if values.ndim != 2 or values.shape != weights.shape or len(capacities) != values.shape[0]:
        raise ValueError(f"expected values (B, n), weights (B, n) and capacities (B,), got "
                         f"{values.shape}, {weights.shape} and {capacities.shape}")
    if np.any(capacities < 0):
        raise ValueError(f"knapsack capacities must be >= 0, got {int(capacities.min())}")
    batch, n = values.shape
    num_items = np.full(batch, n) if num_items is None else np.asarray(num_items, dtype=np.int64).reshape(-1)
    # rows sorted by item count, so that item i only touches the leading rows that have it
    order = np.argsort(-num_items, kind="stable")
    values, weights, capacities = values[order], weights[order], capacities[order]
    active = np.searchsorted(-num_items[order], -np.arange(n), side="left")  # rows having item i
    width = int(capacities.max(initial=0)) + 1
    shifted = np.arange(1, width + 1)  # (W,) c + 1: column c of the table sits at c + 1 below
    # T[i-1, c] in float64 holding float32-rounded values, behind one column of -inf ("does not fit")
    table = np.zeros((batch, width + 1))  # (B, 1 + W)
    table[:, 0] = -np.inf
    keep = np.zeros((n, batch, width), dtype=bool)  # (n, B, W)
    for i in range(n):
        k = int(active[i])
        rows = table[:k]  # (k, 1 + W) a view
        # (k, W) column of T[i-1, c - w_i], or 0 (the -inf column) when the item does not fit
        source = np.maximum(shifted[None, :] - np.minimum(weights[:k, i, None], width), 0)
        candidate = np.take_along_axis(rows, source, axis=1)  # (k, W) T[i-1, c - w_i]
        candidate += values[:k, i, None]  # in float64, as the reference compares
        take = np.greater(candidate, rows[:, 1:], out=keep[i, :k])  # strict: ties keep the solution without item i
        np.copyto(rows[:, 1:], candidate.astype(np.float32), where=take)  # the table stores float32
    chosen = np.zeros((batch, n), dtype=bool)
    remaining = capacities.copy()  # (B,)
    for i in range(n - 1, -1, -1):
        picked = keep[i, np.arange(batch), remaining]  # (B,)
        chosen[:, i] = picked
        remaining = remaining - np.where(picked, weights[:, i], 0)
    unsorted = np.empty_like(chosen)
    unsorted[order] = chosen
    return unsorted


def knapsack_select(values: Sequence[float] | np.ndarray, weights: Sequence[int] | np.ndarray,
                    capacity: int) -> list[int]:
    """Indices (ascending) of the items a 0/1 knapsack of ``capacity`` takes, by dynamic programming.

    ``values`` (n,) float, ``weights`` (n,) int >= 0, ``capacity`` int >= 0. Ties are broken as in
    the reference ``knapsack_dp``; see the module docstring.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    weights = np.asarray(weights).reshape(-1)
    if len(values) != len(weights):
        raise ValueError(f"{len(values)} values but {len(weights)} weights")
    if int(capacity) != capacity or capacity < 0:
        raise ValueError(f"knapsack capacity must be an integer >= 0, got {capacity!r}")
    if len(values) == 0:
        return []
    chosen = knapsack_select_many(values[None, :], weights[None, :], [int(capacity)])  # (1, n)
    return np.flatnonzero(chosen[0]).tolist()


# one video at a time

def frame_scores(step_scores: ArrayLike, picks: ArrayLike, n_frames: int) -> np.ndarray:
    """Per-frame scores (n_frames,) float32 from per-step scores (n_steps,) at frame indices ``picks``.

    Each pick's score fills the frames up to the next pick, the last one up to ``n_frames``; frames
    before the first pick stay 0. As in the reference, one score fewer than picks is accepted
    (the last interval then gets 0), and a last pick equal to ``n_frames`` fills nothing.
    """
    n_frames = int(n_frames)
    positions, scores = _positions(as_numpy(step_scores), as_numpy(picks), n_frames)
    out = np.zeros(n_frames, dtype=np.float32)
    out[positions[0]:positions[-1]] = np.repeat(scores, np.diff(positions))
    return out


def segment_scores(frame_level: np.ndarray, change_points: ArrayLike) -> np.ndarray:
    """Mean frame score (n_seg,) float64 of each inclusive segment ``[start, end]`` of ``change_points``."""
    frame_level = np.asarray(frame_level, dtype=np.float32)
    cps = as_numpy(change_points).astype(np.int64).reshape(-1, 2)
    starts, lengths = cps[:, 0], cps[:, 1] - cps[:, 0] + 1
    return _segment_means(frame_level, starts, lengths)


def generate_summary(step_scores: ArrayLike, change_points: ArrayLike, n_frames: int, n_frame_per_seg: ArrayLike,
                     picks: ArrayLike, *, proportion: float = 0.15) -> np.ndarray:
    """The keyshot summary (sum(n_frame_per_seg),) float32 0/1 of one video (steps 1-4 of the protocol).

    ``step_scores`` (n_steps,), ``change_points`` (n_seg, 2) inclusive frame ranges,
    ``n_frame_per_seg`` (n_seg,), ``picks`` (n_steps,). Segments are chosen by a 0/1 knapsack with
    capacity ``floor(proportion * n_frames)`` frames, so the summary never exceeds that budget.
    Its length is ``sum(n_frame_per_seg)``, which is ``n_frames`` for well-formed data.
    """
    n_frames = int(n_frames)
    cps = as_numpy(change_points).astype(np.int64)
    nfps = as_numpy(n_frame_per_seg).astype(np.int64).reshape(-1)
    _check_segments(cps, nfps, n_frames)
    seg = segment_scores(frame_scores(step_scores, picks, n_frames), cps)  # (n_seg,)
    chosen = knapsack_select(seg, nfps, math.floor(n_frames * proportion))
    mask = np.zeros(len(nfps), dtype=np.float32)
    mask[chosen] = 1.0
    return np.repeat(mask, nfps)  # (sum(nfps),)


# many videos at once

@dataclass
class _Videos:
    """Many videos' fields laid end to end: frames of video v are ``offsets[v] .. offsets[v+1]-1``."""

    n_frames: np.ndarray  # (V,)
    offsets: np.ndarray  # (V+1,)
    frame_scores: np.ndarray  # (sum n_frames,) float32
    n_segs: np.ndarray  # (V,)
    change_points: np.ndarray  # (sum n_seg, 2) in each video's own frames
    n_frame_per_seg: np.ndarray  # (sum n_seg,)


def _lay_out(step_scores, change_points, n_frames, n_frame_per_seg, picks) -> _Videos:
    """Check every video (errors name the video's index) and lay the fields end to end."""
    frames_nf = np.array([int(nf) for nf in n_frames], dtype=np.int64)  # (V,)
    cps_all = [np.asarray(as_numpy(c), dtype=np.int64) for c in change_points]
    nfps_all = [np.asarray(as_numpy(c), dtype=np.int64).reshape(-1) for c in n_frame_per_seg]
    picks_all, run_values = [], []  # runs per video: 0 before the first pick, then each pick's score
    for v in range(len(frames_nf)):
        try:
            picks_all.append(_as_picks(as_numpy(picks[v])))
            cps, nfps = cps_all[v], nfps_all[v]
            if cps.ndim != 2 or cps.shape[1:] != (2,) or not len(cps) or len(nfps) != len(cps):
                _check_segments(cps, nfps, int(frames_nf[v]))
            run_values += [np.zeros(1, np.float32),
                           _scores_per_pick(as_numpy(step_scores[v]), picks_all[v], int(frames_nf[v]))]
        except ValueError as error:
            raise ValueError(f"video {v}: {error}") from None
    n_segs = np.array([len(c) for c in cps_all])  # (V,)
    n_picks = np.array([len(p) for p in picks_all])  # (V,)
    picks_flat = np.concatenate(picks_all)  # (sum K,)
    first_pick = np.concatenate([[0], np.cumsum(n_picks)[:-1]])  # (V,)
    pick_nf = np.repeat(frames_nf, n_picks)
    increasing = np.append(np.diff(picks_flat) > 0, True)
    increasing[first_pick[1:] - 1] = True  # one video's last pick and the next one's first are unrelated
    cps_flat = np.concatenate(cps_all)  # (sum n_seg, 2)
    seg_nf = np.repeat(frames_nf, n_segs)
    bad_picks = (picks_flat < 0) | (picks_flat > pick_nf) | ~increasing
    bad_segs = (cps_flat[:, 1] < cps_flat[:, 0]) | (cps_flat[:, 0] < 0) | (cps_flat[:, 1] >= seg_nf)
    for bad, owner in ((bad_picks, np.repeat(np.arange(len(n_picks)), n_picks)),
                       (bad_segs, np.repeat(np.arange(len(n_segs)), n_segs))):
        if bad.any():  # re-run the single-video check of the first bad video for its message
            v = int(owner[np.flatnonzero(bad)[0]])
            try:
                _positions(np.zeros(n_picks[v]), picks_all[v], int(frames_nf[v]))
                _check_segments(cps_all[v], nfps_all[v], int(frames_nf[v]))
            except ValueError as error:
                raise ValueError(f"video {v}: {error}") from None
    # per video the runs between 0, p_0, ..., p_last, n_frames
    run_ends = np.append(np.insert(picks_flat, first_pick[1:], frames_nf[:-1]), frames_nf[-1])  # (sum K + V,)
    run_starts = np.concatenate([[0], run_ends[:-1]])
    run_starts[first_pick + np.arange(len(first_pick))] = 0  # each video's runs start at its frame 0
    frame_scores = np.repeat(np.concatenate(run_values), run_ends - run_starts)  # (sum n_frames,) float32
    return _Videos(n_frames=frames_nf, offsets=np.concatenate([[0], np.cumsum(frames_nf)]), frame_scores=frame_scores,
                   n_segs=n_segs, change_points=cps_flat, n_frame_per_seg=np.concatenate(nfps_all))


def _choose_segments(batch: _Videos, proportion: float) -> np.ndarray:
    """Steps 2-3 for every video: the knapsack's choice per segment, (sum n_seg,) bool."""
    cps = batch.change_points
    starts = cps[:, 0] + np.repeat(batch.offsets[:-1], batch.n_segs)  # (sum n_seg,) in the end-to-end frames
    seg_means = _segment_means(batch.frame_scores, starts, cps[:, 1] - cps[:, 0] + 1)
    seg_offsets = np.concatenate([[0], np.cumsum(batch.n_segs)])
    owner = np.repeat(np.arange(len(batch.n_segs)), batch.n_segs)  # (sum n_seg,) video of each segment
    slot = np.arange(seg_offsets[-1]) - seg_offsets[owner]  # (sum n_seg,) its index within the video
    values = np.zeros((len(batch.n_segs), batch.n_segs.max()))  # (V, S) padded
    weights = np.zeros((len(batch.n_segs), batch.n_segs.max()), dtype=np.int64)  # (V, S)
    values[owner, slot] = seg_means
    weights[owner, slot] = batch.n_frame_per_seg
    capacities = [math.floor(int(nf) * proportion) for nf in batch.n_frames]
    chosen = knapsack_select_many(values, weights, capacities, num_items=batch.n_segs)  # (V, S)
    return chosen[owner, slot]


def generate_summaries(step_scores: Sequence[ArrayLike], change_points: Sequence[ArrayLike],
                       n_frames: Sequence[int], n_frame_per_seg: Sequence[ArrayLike], picks: Sequence[ArrayLike],
                       *, proportion: float = 0.15) -> list[np.ndarray]:
    """The keyshot summaries of many videos, each what :func:`generate_summary` gives for it alone.

    Every argument has one entry per video, as :func:`generate_summary` takes them; an error names
    the video's index. The videos' frames are laid end to end in one array, all segment means come
    from one grouped reduction and all knapsacks are solved as one batch.
    Returns V float32 0/1 arrays, video v's of length ``sum(n_frame_per_seg[v])``.
    """
    if len(step_scores) == 0:
        return []
    videos = _lay_out(step_scores, change_points, n_frames, n_frame_per_seg, picks)
    chosen = _choose_segments(videos, proportion)  # (sum n_seg,) bool
    summaries = np.repeat(chosen, videos.n_frame_per_seg).astype(np.float32)  # (sum nfps,) every summary end to end
    lengths = np.add.reduceat(videos.n_frame_per_seg, np.cumsum(videos.n_segs) - videos.n_segs)  # (V,)
    return np.split(summaries, np.cumsum(lengths)[:-1])
