"""Keyshot F-score protocol: our batched ``evaluate_videos`` vs a per-video loop written like the reference.

The reference is the evaluation code of KaiyangZhou's pytorch-vsumm-reinforce (``vsum_tools.py``
``generate_summary`` / ``evaluate_summary`` and ``knapsack.py`` ``knapsack_dp``): per video, a
Python loop fills frame scores pick by pick, another averages each segment, a double loop over
(segment, capacity) fills the knapsack table, the summary is concatenated segment by segment and
users are scored one at a time. :func:`reference_video` below is such a loop (ours, same
arithmetic: float32 frame scores and knapsack table, float64 comparisons and F-scores, as the
reference runs under NumPy 1.x).

Data: the built-in TVSum-like set (50 videos, 20 users each, generated into a temporary folder).
For each of its 5 splits, a stand-in "model" scores every video (gtscore + seeded noise), and all
50 videos are evaluated with both reductions (``avg`` for TVSum, ``max`` for SumMe): 500 video
evaluations per side; ours takes the 250 (video, split) pairs of a reduction in one call.
Per-video F, precision and recall must be identical, bit for bit.

Run: ``python bench/summ_eval.py``. Prints both times and the mean F per split, and ends with
``ratio: <loop time / our time>``.
"""
from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from crossmedia.data.builtin.videosumm import make_videosumm, videosumm_files
from crossmedia.data.eccv16 import Eccv16Dataset, VideoRecord, make_key
from crossmedia.tasks.summarization.metrics import evaluate_videos
from crossmedia.data.splits import read_splits
sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test loads this file by path
from _timing import best_time  # noqa: E402

REPEATS = 3
REDUCTIONS = ("avg", "max")


# the reference, one video at a time

def reference_knapsack(values: list[float], weights: list[int], capacity: int) -> list[int]:
    """0/1 knapsack, table filled cell by cell; an item is kept only when strictly better."""
    n = len(values)
    table = np.zeros((n + 1, capacity + 1), dtype=np.float32)
    keep = np.zeros((n + 1, capacity + 1), dtype=np.float32)
    for i in range(1, n + 1):
        weight, value = weights[i - 1], values[i - 1]
        for c in range(capacity + 1):
            with_item = value + float(table[i - 1, c - weight]) if weight <= c else -math.inf
            if with_item > float(table[i - 1, c]):
                table[i, c] = with_item
                keep[i, c] = 1
            else:
                table[i, c] = table[i - 1, c]
    chosen, c = [], capacity
    for i in range(n, 0, -1):
        if keep[i, c] == 1:
            chosen.append(i - 1)
            c -= weights[i - 1]
    return sorted(chosen)


def reference_generate_summary(scores: np.ndarray, cps: np.ndarray, n_frames: int, nfps: list[int],
                               picks: np.ndarray, proportion: float = 0.15) -> np.ndarray:
    frame_scores = np.zeros(n_frames, dtype=np.float32)
    bounds = list(picks.astype(np.int64))
    if bounds[-1] != n_frames:
        bounds.append(n_frames)
    for i in range(len(bounds) - 1):
        frame_scores[bounds[i]:bounds[i + 1]] = 0 if i == len(scores) else scores[i]
    seg_scores = []
    for start, end in cps:
        seg_scores.append(float(frame_scores[int(start):int(end) + 1].mean()))
    chosen = reference_knapsack(seg_scores, nfps, int(math.floor(n_frames * proportion)))
    summary = np.zeros(0, dtype=np.float32)
    for seg, count in enumerate(nfps):
        part = np.ones(count, dtype=np.float32) if seg in chosen else np.zeros(count, dtype=np.float32)
        summary = np.concatenate([summary, part])
    return summary


def reference_evaluate_summary(machine: np.ndarray, users: np.ndarray, reduction: str) -> tuple[float, float, float]:
    machine = machine.astype(np.float32)
    users = users.astype(np.float32)
    n_users, n_frames = users.shape
    machine[machine > 0] = 1
    users[users > 0] = 1
    if len(machine) > n_frames:
        machine = machine[:n_frames]
    elif len(machine) < n_frames:
        machine = np.concatenate([machine, np.zeros(n_frames - len(machine), dtype=np.float32)])
    fs, ps, rs = [], [], []
    for u in range(n_users):
        overlap = float((machine * users[u]).sum())
        precision = overlap / (float(machine.sum()) + 1e-8)
        recall = overlap / (float(users[u].sum()) + 1e-8)
        f = 0.0 if precision == 0 and recall == 0 else (2 * precision * recall) / (precision + recall)
        fs.append(f)
        ps.append(precision)
        rs.append(recall)
    if reduction == "avg":
        return float(np.mean(fs)), float(np.mean(ps)), float(np.mean(rs))
    best = int(np.argmax(fs))
    return float(np.max(fs)), ps[best], rs[best]


def reference_video(scores: np.ndarray, video: VideoRecord, reduction: str) -> tuple[float, float, float]:
    machine = reference_generate_summary(scores, video.change_points, video.n_frames,
                                         video.n_frame_per_seg.tolist(), video.picks)
    return reference_evaluate_summary(machine, video.user_summary, reduction)


# helpers

def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        h5_path = make_videosumm(Path(tmp), variant="tvsum", seed=0, progress=False)
        videos = Eccv16Dataset(h5_path).records
        splits = read_splits(videosumm_files(Path(tmp), "tvsum")[1])
    keys = [make_key(h5_path, v.key) for v in videos]
    rng = np.random.default_rng(0)
    scores = [[np.clip(v.gtscore + rng.normal(0, 0.3, v.n_steps), 0, 1).astype(np.float32) for v in videos]
              for _ in splits]  # (splits, videos) one stand-in model per split
    fields = ([v.change_points for v in videos], [v.n_frames for v in videos], [v.n_frame_per_seg for v in videos],
              [v.picks for v in videos], [v.user_summary for v in videos])
    print(f"{len(videos)} videos x {len(splits)} splits x reductions {REDUCTIONS}: "
          f"{len(videos) * len(splits) * len(REDUCTIONS)} video evaluations per side")

    def ours():  # one call per reduction: the 5 splits' scores of all 50 videos together
        flat_scores = [scores[s][i] for s in range(len(splits)) for i in range(len(videos))]
        result = {}
        for r in REDUCTIONS:
            per_pair = np.stack(evaluate_videos(flat_scores, *(field * len(splits) for field in fields), reduction=r))
            for s in range(len(splits)):
                result[(r, s)] = per_pair[:, s * len(videos):(s + 1) * len(videos)]  # (3, videos)
        return result

    def loop():
        return {(r, s): np.array([reference_video(scores[s][i], v, r) for i, v in enumerate(videos)]).T
                for r in REDUCTIONS for s in range(len(splits))}

    ours_result, ours_time = best_time(ours, REPEATS)
    loop_result, loop_time = best_time(loop, 1)
    for key in loop_result:
        if not np.array_equal(ours_result[key], loop_result[key]):
            worst = np.abs(ours_result[key] - loop_result[key]).max()
            raise SystemExit(f"MISMATCH for (reduction, split) {key}: max abs difference {worst}")
    print("per-video F, precision, recall: identical")
    for r in REDUCTIONS:
        per_split = []
        for s, split in enumerate(splits):
            test = [keys.index(k) for k in split.test_keys]
            per_split.append(ours_result[(r, s)][0, test].mean())
        print(f"  F ({r}) over each split's test videos: {' '.join(f'{f:.4f}' for f in per_split)}  "
              f"mean {np.mean(per_split):.4f} +- {np.std(per_split):.4f}")
    print(f"reference loop: {loop_time:.3f} s   ours (evaluate_videos, best of {REPEATS}): {ours_time:.3f} s")
    print(f"ratio: {loop_time / ours_time:.1f}")


if __name__ == "__main__":
    main()
