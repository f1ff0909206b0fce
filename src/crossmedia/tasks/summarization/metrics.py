"""The keyshot evaluation protocol of SumMe / TVSum, exactly as the literature runs it.

The reference is ``generate_summary`` / ``evaluate_summary`` in KaiyangZhou's
pytorch-vsumm-reinforce (``vsum_tools.py``), the code nearly every SumMe/TVSum F-score since 2018
goes through. Ours gives the same numbers, bit for bit (``bench/summ_eval.py`` checks it).

Steps 1-4 turn a model's per-step scores into a 0/1 keyshot summary: frame scores, segment
means, a 0/1 knapsack at 15 % of the frames, the summary vector. They are data protocol, shared
with the built-in dataset, and live in :mod:`crossmedia.data.keyshots` (``generate_summary``,
``generate_summaries``). This module adds step 5:

5. **F-score** (:func:`evaluate_summary`): the summary is cut or zero-padded to the users' length
   ``n_frames``; against each user summary (binarised, > 0), precision = overlap / (machine
   length + 1e-8), recall = overlap / (user length + 1e-8), F = 2PR / (P + R), F = 0 when the
   overlap is 0. ``reduction="max"`` (SumMe) keeps the best user (and that user's P and R),
   ``"avg"`` (TVSum) averages F, P and R over users. All of this in float64, as the reference's
   scalar arithmetic ran under NumPy 1.x.

The dataset score is the mean F over test videos, then the mean over the 5 splits.
:func:`evaluate_videos` runs steps 1-5 for many videos at once (one batched knapsack) and is what
training loops and benchmarks should call; :class:`SummaryFScore` wraps the protocol as a
torchmetrics ``Metric``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torchmetrics import Metric

from crossmedia.data.keyshots import ArrayLike, as_numpy, generate_summaries, generate_summary, grouped_rows

__all__ = ["Reduction", "evaluate_summary", "evaluate_videos", "SummaryFScore"]

Reduction = Literal["max", "avg"]


# helpers

def _check_reduction(reduction: str) -> None:
    if reduction not in ("max", "avg"):
        raise ValueError(f"reduction must be 'max' (SumMe) or 'avg' (TVSum), got {reduction!r}")


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

def evaluate_summary(machine_summary: ArrayLike, user_summary: ArrayLike, *,
                     reduction: Reduction) -> tuple[float, float, float]:
    """(F, precision, recall) of a 0/1 machine summary (L,) against user summaries (n_users, n_frames).

    The machine summary is cut or zero-padded to ``n_frames``; any value > 0 counts as selected
    (the reference would leave negative entries as they are; summaries are 0/1, so this never differs).
    ``reduction="max"`` (SumMe): the best user's F and that user's P, R. ``"avg"`` (TVSum): the
    means over users.
    """
    _check_reduction(reduction)
    users = as_numpy(user_summary)
    if users.ndim != 2:
        raise ValueError(f"user_summary must be (n_users, n_frames), got shape {users.shape}")
    machine = (_fit_length(as_numpy(machine_summary).reshape(-1), users.shape[1]) > 0)
    return _reduce(*_f_scores(machine, users), reduction)


# the protocol, many videos at once

def _user_f_scores(summaries: list[np.ndarray], users_all: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Step 5 per (video, user): F, precision, recall, each (sum n_users,) float64."""
    overlap, machine_len, user_len, cache = [], [], [], {}
    for summary, users in zip(summaries, users_all):
        if id(users) not in cache:  # a video scored several times (e.g. once per split) is binarised once
            selected = users > 0  # (n_users, n_frames)
            cache[id(users)] = (selected, np.count_nonzero(selected, axis=1))
        selected, lengths = cache[id(users)]
        machine = _fit_length(summary, users.shape[1]) > 0  # (n_frames,)
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

    Every argument is a sequence with one entry per video, as ``generate_summary`` and
    :func:`evaluate_summary` take them; the numbers equal running those two on each video. The
    summaries come from one ``generate_summaries`` call (one batched knapsack), all users'
    F-scores from one array; an error names the video's index.
    """
    _check_reduction(reduction)
    n_videos = len(step_scores)
    fields = (change_points, n_frames, n_frame_per_seg, picks, user_summary)
    if any(len(field) != n_videos for field in fields):
        raise ValueError(f"one entry per video expected; got lengths {[n_videos] + [len(f) for f in fields]}")
    if n_videos == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    users = [as_numpy(u) for u in user_summary]
    for v, video_users in enumerate(users):
        if video_users.ndim != 2:
            raise ValueError(f"video {v}: user_summary must be (n_users, n_frames), got shape {video_users.shape}")
    summaries = generate_summaries(step_scores, change_points, n_frames, n_frame_per_seg, picks, proportion=proportion)
    f, precision, recall = _user_f_scores(summaries, users)
    n_users = np.array([len(video_users) for video_users in users])  # (V,)
    first_user = np.concatenate([[0], np.cumsum(n_users)[:-1]])
    out = np.zeros((3, n_videos))
    for videos in grouped_rows(n_users):  # videos with as many users reduce together, row by row
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
        # a rank that saw no video all-gathers an empty tensor of the metric's dtype: it must be
        # the states' float64, or gloo receives fewer bytes than the other ranks send
        self.set_dtype(torch.float64)

    def update(self, step_scores: ArrayLike, *, change_points: ArrayLike, n_frames: int | torch.Tensor,
               n_frame_per_seg: ArrayLike, picks: ArrayLike, user_summary: ArrayLike) -> None:
        """Score one video: ``step_scores`` (n_steps,) against its ``user_summary`` (n_users, n_frames)."""
        n_frames = int(n_frames.item() if isinstance(n_frames, torch.Tensor) else n_frames)
        machine = generate_summary(step_scores, change_points, n_frames, n_frame_per_seg, picks,
                                   proportion=self.proportion)
        f, p, r = evaluate_summary(machine, user_summary, reduction=self.reduction)
        dtype = torch.float32 if self.device.type == "mps" else self.dtype
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
