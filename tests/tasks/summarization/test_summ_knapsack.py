"""0/1 knapsack: optimal like brute force, and the same choice as the reference's cell-by-cell DP."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from crossmedia.tasks.summarization.knapsack import knapsack_select, knapsack_select_many


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


def test_knapsack_breaks_ties_like_the_reference_dp(summ_bench):
    for values, weights, capacity in _instances(1, 300):
        if capacity == 0:
            continue  # the reference asserts capacity > 0
        assert knapsack_select(values, weights, capacity) == summ_bench.reference_knapsack(values, weights, capacity)


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
