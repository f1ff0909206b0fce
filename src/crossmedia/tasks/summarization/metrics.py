"""The keyshot evaluation protocol of SumMe / TVSum, exactly as the literature runs it.

The reference is ``generate_summary`` / ``evaluate_summary`` in KaiyangZhou's
pytorch-vsumm-reinforce (``vsum_tools.py``), the code nearly every SumMe/TVSum F-score since 2018
goes through. Ours gives the same numbers, bit for bit (``bench/summ_eval.py`` checks it):

1. **Frame scores** (:func:`frame_scores`): the model scores the sub-sampled steps (2 fps:
   ``picks`` = 0, 15, 30, ...). Step ``i``'s score fills frames ``picks[i] .. picks[i+1]-1``, the
   last step's score fills up to the end of the video; frames before ``picks[0]`` get 0. Scores
   are stored in float32, as the reference's frame array is.
2. **Segment scores**: the mean frame score of each segment ``[start, end]`` (inclusive) of
   ``change_points``, computed as NumPy's float32 ``mean`` computes it.
3. **Knapsack** (:func:`~crossmedia.tasks.summarization.knapsack.knapsack_select`): values =
   segment scores, weights = ``n_frame_per_seg``, capacity = ``floor(proportion * n_frames)``
   (``math.floor`` of the float product, default 15 %).
4. **Summary** (:func:`generate_summary`): the 0/1 frame vector built from ``n_frame_per_seg``
   (not from ``change_points``), one run per segment, 1 where the segment was chosen.
5. **F-score** (:func:`evaluate_summary`): the summary is cut or zero-padded to the users' length
   ``n_frames``; against each user summary (binarised, > 0), precision = overlap / (machine
   length + 1e-8), recall = overlap / (user length + 1e-8), F = 2PR / (P + R), F = 0 when the
   overlap is 0. ``reduction="max"`` (SumMe) keeps the best user (and that user's P and R),
   ``"avg"`` (TVSum) averages F, P and R over users. All of this in float64, as the reference's
   scalar arithmetic ran under NumPy 1.x.

The dataset score is the mean F over test videos, then the mean over the 5 splits.
:func:`evaluate_videos` runs steps 1-5 for many videos at once (one batched knapsack) and is what
training loops and benchmarks should call; :class:`SummaryFScore` wraps it as a torchmetrics
``Metric``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torchmetrics import Metric

from crossmedia.tasks.summarization.knapsack import knapsack_select, knapsack_select_many

__all__ = ["Reduction", "frame_scores", "segment_scores", "generate_summary", "evaluate_summary",
           "evaluate_videos", "SummaryFScore"]

Reduction = Literal["max", "avg"]
ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


# helpers

def _numpy(x: ArrayLike) -> np.ndarray:
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


def _check_reduction(reduction: str) -> None:
    if reduction not in ("max", "avg"):
        raise ValueError(f"reduction must be 'max' (SumMe) or 'avg' (TVSum), got {reduction!r}")


def _grouped_rows(sizes: np.ndarray) -> list[np.ndarray]:
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
    for rows in _grouped_rows(lengths):
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


def _f_scores(machine: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user F, precision, recall (n_users,) of a 0/1 machine summary (n_frames,) in float64."""
    overlap = (users > 0).astype(np.float32) @ machine.astype(np.float32)  # (n_users,) exact counts
    machine_len = float(np.count_nonzero(machine))
    user_len = np.count_nonzero(users > 0, axis=1).astype(np.float64)  # (n_users,)
    overlap = overlap.astype(np.float64)
    precision = overlap / (machine_len + 1e-8)
    recall = overlap / (user_len + 1e-8)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(overlap > 0, 2 * precision * recall / (precision + recall), 0.0)
    return f, precision, recall


def _reduce(f: np.ndarray, precision: np.ndarray, recall: np.ndarray, reduction: str) -> tuple[float, float, float]:
    if reduction == "avg":
        return float(np.mean(f)), float(np.mean(precision)), float(np.mean(recall))
    best = int(np.argmax(f))  # the first best user, as np.argmax in the reference
    return float(f[best]), float(precision[best]), float(recall[best])


def _fit_length(machine: np.ndarray, n_frames: int) -> np.ndarray:
    """Cut, or pad with zeros, the machine summary to the users' length, as the reference does."""
    if len(machine) >= n_frames:
        return machine[:n_frames]
    return np.concatenate([machine, np.zeros(n_frames - len(machine), dtype=machine.dtype)])


# the protocol, one video at a time

def frame_scores(step_scores: ArrayLike, picks: ArrayLike, n_frames: int) -> np.ndarray:
    """Per-frame scores (n_frames,) float32 from per-step scores (n_steps,) at frame indices ``picks``.

    Each pick's score fills the frames up to the next pick, the last one up to ``n_frames``; frames
    before the first pick stay 0. As in the reference, one score fewer than picks is accepted
    (the last interval then gets 0), and a last pick equal to ``n_frames`` fills nothing.
    """
    n_frames = int(n_frames)
    positions, scores = _positions(_numpy(step_scores), _numpy(picks), n_frames)
    out = np.zeros(n_frames, dtype=np.float32)
    out[positions[0]:positions[-1]] = np.repeat(scores, np.diff(positions))
    return out


def segment_scores(frame_level: np.ndarray, change_points: ArrayLike) -> np.ndarray:
    """Mean frame score (n_seg,) float64 of each inclusive segment ``[start, end]`` of ``change_points``."""
    frame_level = np.asarray(frame_level, dtype=np.float32)
    cps = _numpy(change_points).astype(np.int64).reshape(-1, 2)
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
    cps = _numpy(change_points).astype(np.int64)
    nfps = _numpy(n_frame_per_seg).astype(np.int64).reshape(-1)
    _check_segments(cps, nfps, n_frames)
    seg = segment_scores(frame_scores(step_scores, picks, n_frames), cps)  # (n_seg,)
    chosen = knapsack_select(seg, nfps, math.floor(n_frames * proportion))
    mask = np.zeros(len(nfps), dtype=np.float32)
    mask[chosen] = 1.0
    return np.repeat(mask, nfps)  # (sum(nfps),)


def evaluate_summary(machine_summary: ArrayLike, user_summary: ArrayLike, *,
                     reduction: Reduction) -> tuple[float, float, float]:
    """(F, precision, recall) of a 0/1 machine summary (L,) against user summaries (n_users, n_frames).

    The machine summary is cut or zero-padded to ``n_frames``; any value > 0 counts as selected
    (the reference would leave negative entries as they are; summaries are 0/1, so this never differs).
    ``reduction="max"`` (SumMe): the best user's F and that user's P, R. ``"avg"`` (TVSum): the
    means over users.
    """
    _check_reduction(reduction)
    users = _numpy(user_summary)
    if users.ndim != 2:
        raise ValueError(f"user_summary must be (n_users, n_frames), got shape {users.shape}")
    machine = (_fit_length(_numpy(machine_summary).reshape(-1), users.shape[1]) > 0)
    return _reduce(*_f_scores(machine, users), reduction)


# the protocol, many videos at once

@dataclass
class _Batch:
    """Many videos' fields laid end to end: frames of video v are ``offsets[v] .. offsets[v+1]-1``."""

    n_frames: np.ndarray  # (V,)
    offsets: np.ndarray  # (V+1,)
    frame_scores: np.ndarray  # (sum n_frames,) float32
    n_segs: np.ndarray  # (V,)
    change_points: np.ndarray  # (sum n_seg, 2) in each video's own frames
    n_frame_per_seg: np.ndarray  # (sum n_seg,)
    users: list[np.ndarray]  # V x (n_users, n_frames)


def _batch(step_scores, change_points, n_frames, n_frame_per_seg, picks, user_summary) -> _Batch:
    """Check every video (errors name the video's index) and lay the fields end to end."""
    frames_nf = np.array([int(nf) for nf in n_frames], dtype=np.int64)  # (V,)
    cps_all = [np.asarray(_numpy(c), dtype=np.int64) for c in change_points]
    nfps_all = [np.asarray(_numpy(c), dtype=np.int64).reshape(-1) for c in n_frame_per_seg]
    users = [_numpy(u) for u in user_summary]
    picks_all, run_values = [], []  # runs per video: 0 before the first pick, then each pick's score
    for v in range(len(frames_nf)):
        try:
            picks_all.append(_as_picks(_numpy(picks[v])))
            cps, nfps = cps_all[v], nfps_all[v]
            if cps.ndim != 2 or cps.shape[1:] != (2,) or not len(cps) or len(nfps) != len(cps):
                _check_segments(cps, nfps, int(frames_nf[v]))
            if users[v].ndim != 2:
                raise ValueError(f"user_summary must be (n_users, n_frames), got shape {users[v].shape}")
            run_values += [np.zeros(1, np.float32),
                           _scores_per_pick(_numpy(step_scores[v]), picks_all[v], int(frames_nf[v]))]
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
    return _Batch(n_frames=frames_nf, offsets=np.concatenate([[0], np.cumsum(frames_nf)]), frame_scores=frame_scores,
                  n_segs=n_segs, change_points=cps_flat, n_frame_per_seg=np.concatenate(nfps_all), users=users)


def _choose_segments(batch: _Batch, proportion: float) -> np.ndarray:
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


def _user_f_scores(batch: _Batch, chosen: np.ndarray) -> tuple[np.ndarray, ...]:
    """Steps 4-5 per (video, user): F, precision, recall, each (sum n_users,) float64."""
    machine_all = np.repeat(chosen, batch.n_frame_per_seg)  # (sum nfps,) bool, every summary end to end
    lengths = np.add.reduceat(batch.n_frame_per_seg, np.cumsum(batch.n_segs) - batch.n_segs)  # (V,) summary lengths
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    overlap, machine_len, user_len, cache = [], [], [], {}
    for v, users in enumerate(batch.users):
        if id(users) not in cache:  # a video scored several times (e.g. once per split) is binarised once
            selected = users > 0  # (n_users, n_frames)
            cache[id(users)] = (selected, np.count_nonzero(selected, axis=1))
        selected, lengths = cache[id(users)]
        machine = _fit_length(machine_all[bounds[v]:bounds[v + 1]], users.shape[1])  # (n_frames,)
        overlap.append(np.count_nonzero(selected[:, machine], axis=1))
        machine_len.append(np.full(len(users), np.count_nonzero(machine)))
        user_len.append(lengths)
    overlap = np.concatenate(overlap).astype(np.float64)  # (sum n_users,)
    precision = overlap / (np.concatenate(machine_len) + 1e-8)
    recall = overlap / (np.concatenate(user_len) + 1e-8)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(overlap > 0, 2 * precision * recall / (precision + recall), 0.0)
    return f, precision, recall


def evaluate_videos(step_scores: Sequence[ArrayLike], change_points: Sequence[ArrayLike], n_frames: Sequence[int],
                    n_frame_per_seg: Sequence[ArrayLike], picks: Sequence[ArrayLike],
                    user_summary: Sequence[ArrayLike], *, reduction: Reduction,
                    proportion: float = 0.15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F, precision, recall), each (n_videos,) float64, for many videos in one pass.

    Every argument is a sequence with one entry per video, as :func:`generate_summary` and
    :func:`evaluate_summary` take them; the numbers equal running those two on each video. The
    videos' frames are laid end to end in one array, all segment means come from one grouped
    reduction, all knapsacks are solved as one batch and all users' F-scores as one array.
    """
    _check_reduction(reduction)
    n_videos = len(step_scores)
    fields = (change_points, n_frames, n_frame_per_seg, picks, user_summary)
    if any(len(field) != n_videos for field in fields):
        raise ValueError(f"one entry per video expected; got lengths {[n_videos] + [len(f) for f in fields]}")
    if n_videos == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    batch = _batch(step_scores, *fields)
    f, precision, recall = _user_f_scores(batch, _choose_segments(batch, proportion))
    n_users = np.array([len(users) for users in batch.users])  # (V,)
    first_user = np.concatenate([[0], np.cumsum(n_users)[:-1]])
    out = np.zeros((3, n_videos))
    for videos in _grouped_rows(n_users):  # videos with as many users reduce together, row by row
        index = first_user[videos, None] + np.arange(n_users[videos[0]])[None, :]  # (k, n_users)
        if reduction == "avg":
            out[:, videos] = [f[index].mean(axis=1), precision[index].mean(axis=1), recall[index].mean(axis=1)]
        else:
            best = np.take_along_axis(index, np.argmax(f[index], axis=1)[:, None], axis=1)[:, 0]  # first best user
            out[:, videos] = [f[best], precision[best], recall[best]]
    return out[0], out[1], out[2]


# classes

class SummaryFScore(Metric):
    """Mean keyshot F-score over videos (SumMe: ``reduction="max"``, TVSum: ``"avg"``).

    ``update`` takes one video's step scores and its eccv16 fields (numpy arrays or tensors) and
    runs the whole protocol on it; ``compute`` returns the mean F over the videos seen (summed
    across processes under DDP). Per-video F, precision and recall stay available in
    ``self.f_scores`` etc. after ``compute``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, *, reduction: Reduction, proportion: float = 0.15, **kwargs) -> None:
        super().__init__(**kwargs)
        _check_reduction(reduction)
        self.reduction = reduction
        self.proportion = proportion
        for name in ("f_scores", "precisions", "recalls"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, step_scores: ArrayLike, *, change_points: ArrayLike, n_frames: int | torch.Tensor,
               n_frame_per_seg: ArrayLike, picks: ArrayLike, user_summary: ArrayLike) -> None:
        """Score one video: ``step_scores`` (n_steps,) against its ``user_summary`` (n_users, n_frames)."""
        n_frames = int(n_frames.item() if isinstance(n_frames, torch.Tensor) else n_frames)
        machine = generate_summary(step_scores, change_points, n_frames, n_frame_per_seg, picks,
                                   proportion=self.proportion)
        f, p, r = evaluate_summary(machine, user_summary, reduction=self.reduction)
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        for name, value in (("f_scores", f), ("precisions", p), ("recalls", r)):
            getattr(self, name).append(torch.tensor([value], dtype=dtype, device=self.device))

    def compute(self) -> torch.Tensor:
        """Mean F over all videos seen; NaN before any update."""
        scores = self.f_scores
        if isinstance(scores, list):
            if not scores:
                return torch.tensor(float("nan"), dtype=torch.float64, device=self.device)
            scores = torch.cat(scores)
        return scores.mean()
