"""Keyshot selection: frame and segment scores by the reference's rules, and the 0/1 knapsack, optimal like brute
force and the same choice as the reference's cell-by-cell DP."""
from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from crossmedia.data.keyshots import (frame_scores, generate_summaries, generate_summary, knapsack_select,
                                     knapsack_select_many, segment_scores)


@pytest.fixture(scope="module")
def reference():
    """``bench/summ_eval.py``, whose cell-by-cell ``reference_knapsack`` is the reference's DP."""
    spec = importlib.util.spec_from_file_location("summ_eval_bench", Path(__file__).parents[2] / "bench/summ_eval.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def _brute_force(values, weights, capacity) -> float:
    best = 0.0
    for mask in itertools.product((0, 1), repeat=len(values)):
        if sum(w for w, m in zip(weights, mask) if m) <= capacity:
            best = max(best, sum(v for v, m in zip(values, mask) if m))
    return best


def _instances(seed: int, count: int, max_items: int = 8):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(1, max_items + 1))
        weights = rng.integers(0, 12, size=n).tolist()
        capacity = int(rng.integers(0, 30))
        if rng.random() < 0.5:  # integer values: many exact ties
            values = rng.integers(0, 4, size=n).astype(float).tolist()
        else:
            values = rng.random(n).tolist()
        yield values, weights, capacity


def test_knapsack_is_optimal_like_brute_force():
    for values, weights, capacity in _instances(0, 300):
        chosen = knapsack_select(values, weights, capacity)
        assert sum(weights[i] for i in chosen) <= capacity
        assert sum(values[i] for i in chosen) == pytest.approx(_brute_force(values, weights, capacity), abs=1e-6)


def test_knapsack_breaks_ties_like_the_reference_dp(reference):
    for values, weights, capacity in _instances(1, 300):
        if capacity == 0:
            continue  # the reference asserts capacity > 0
        assert knapsack_select(values, weights, capacity) == reference.reference_knapsack(values, weights, capacity)


def test_hand_case_and_ties():
    assert knapsack_select([2, 3, 4], [1, 2, 3], 3) == [0, 1]  # 5 beats 4
    assert knapsack_select([1, 1, 1], [1, 1, 1], 2) == [0, 1]  # ties keep the earlier items
    assert knapsack_select([1.0, 2.0], [5, 6], 4) == []  # nothing fits
    assert knapsack_select([], [], 10) == []
    assert knapsack_select([0.5, 0.0], [0, 0], 0) == [0]  # weight 0 with a positive value is free


def test_batched_rows_equal_single_solves():
    rng = np.random.default_rng(2)
    batch, n = 40, 9
    values = rng.random((batch, n))
    weights = rng.integers(1, 20, size=(batch, n))
    capacities = rng.integers(0, 60, size=batch)
    num_items = rng.integers(1, n + 1, size=batch)
    chosen = knapsack_select_many(values, weights, capacities, num_items=num_items)
    for b in range(batch):
        k = num_items[b]
        assert np.flatnonzero(chosen[b]).tolist() == knapsack_select(values[b, :k], weights[b, :k], capacities[b])
        assert not chosen[b, k:].any()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="weights must be >= 0"):
        knapsack_select([1.0], [-1], 3)
    with pytest.raises(ValueError, match="integers"):
        knapsack_select([1.0], [1.5], 3)
    with pytest.raises(ValueError, match="capacity"):
        knapsack_select([1.0], [1], -2)
    with pytest.raises(ValueError, match="2 values but 1 weights"):
        knapsack_select([1.0, 2.0], [1], 3)


# frame scores and segments


def test_frame_scores_fill_each_pick_up_to_the_next():
    assert frame_scores([1, 2, 3], [0, 3, 6], 8).tolist() == [1, 1, 1, 2, 2, 2, 3, 3]
    assert frame_scores([1, 2], [2, 5], 7).tolist() == [0, 0, 1, 1, 1, 2, 2]  # before the first pick: 0
    assert frame_scores([1, 2], [0, 3, 6], 8).tolist() == [1, 1, 1, 2, 2, 2, 0, 0]  # one score short: last run 0
    assert frame_scores([1, 2, 3], [0, 3, 6], 6).tolist() == [1, 1, 1, 2, 2, 2]  # a last pick at n_frames fills nothing
    assert frame_scores([0.1], [0], 3).dtype == np.float32
    with pytest.raises(ValueError, match="one score per pick"):
        frame_scores([1, 2, 3, 4], [0, 3, 6], 8)
    with pytest.raises(ValueError, match="strictly increasing"):
        frame_scores([1, 2], [3, 3], 8)


def test_segment_scores_are_float32_means_of_inclusive_ranges():
    frames = frame_scores([0.1, 0.1, 0.9, 0.2, 0.2], [0, 2, 4, 6, 8], 10)
    means = segment_scores(frames, [[0, 3], [4, 5], [6, 9]])
    assert means.tolist() == [float(frames[0:4].mean()), float(frames[4:6].mean()), float(frames[6:10].mean())]


# generate_summary


def test_generate_summary_hand_case():
    args = ([0.1, 0.1, 0.9, 0.2, 0.2], np.array([[0, 3], [4, 5], [6, 9]]), 10, [4, 2, 4], np.array([0, 2, 4, 6, 8]))
    # capacity floor(0.5 * 10) = 5: {segment 1} (value 0.9, weight 2) beats {0} or {2} (weight 4 each)
    assert generate_summary(*args, proportion=0.5).tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert generate_summary(*args).tolist() == [0] * 10  # capacity floor(1.5) = 1: nothing fits
    # capacity floor(0.7 * 10) = 7 (the float product 7.000000000000001 floors to 7): {1, 2} = 1.1
    assert generate_summary(*args, proportion=0.7).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]


def test_generate_summaries_equal_one_video_at_a_time():
    rng = np.random.default_rng(4)
    videos = []
    for n_frames in (40, 97, 150, 61):
        cuts = np.sort(rng.choice(np.arange(1, n_frames), size=4, replace=False))
        starts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [n_frames]]) - 1
        picks = np.arange(0, n_frames, 15)
        videos.append((rng.random(len(picks)).astype(np.float32), np.stack([starts, ends], 1), n_frames,
                       ends - starts + 1, picks))
    batch = generate_summaries(*zip(*videos), proportion=0.3)
    single = [generate_summary(*video, proportion=0.3) for video in videos]
    assert [s.tolist() for s in batch] == [s.tolist() for s in single]
    assert sum(s.sum() for s in single) > 0  # something was chosen: the comparison is not between empty summaries
    assert generate_summaries([], [], [], [], []) == []
    bad = list(videos[1])
    bad[1] = np.array([[0, 5], [6, 500]])
    bad[3] = np.array([6, 495])
    with pytest.raises(ValueError, match="video 1: .*n_frames=97"):
        generate_summaries(*zip(videos[0], bad))
