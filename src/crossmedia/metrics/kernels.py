"""CPU kernel for ranking metrics, compiled with numba (cached on disk after the first call).

Imported lazily, only when a ranking runs on the CPU; GPU tensors keep the PyTorch path of
:mod:`crossmedia.metrics.ranking`. Both give the same ranks.

:func:`ranks_from_best` makes one pass per score row that counts the items ranked above a given
item. With m the score of item j* (the query's best relevant item) and ties broken by database
index,

    rank = #{j < j* : s_j ≥ m} + #{j > j* : s_j > m} + 1,

two branch-free counting loops that LLVM vectorises; no row is sorted and nothing of size
(Q, N) is written. The kernel is single-threaded on purpose: numba's OpenMP threads spin-wait
after a parallel loop and, on a machine with few cores, starve the PyTorch ops that follow each
chunk (measured: a 5× slower whole evaluation on 2 cores), while one thread already counts at
about 1 ns per score.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["ranks_from_best"]


@njit(nogil=True, cache=True)
def ranks_from_best(scores: np.ndarray, best: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank of item ``first[i]`` (scoring ``best[i]``) in each row, ties by index.

    Args:
        scores: (c, N) float32, float64 or int64 scores, C-contiguous.
        best: (c,) the score of each row's item (same dtype as ``scores``).
        first: (c,) int64 the item's index.

    Returns:
        ((c,) int64 ranks, (c,) int64 NaN count of each row, the item's own score included).
    """
    num_q, n = scores.shape
    ranks = np.empty(num_q, dtype=np.int64)
    nans = np.zeros(num_q, dtype=np.int64)
    for i in range(num_q):
        m, stop = best[i], first[i]
        above, bad = 0, 0
        for j in range(stop):  # before j*: ties rank above it
            v = scores[i, j]
            above += v >= m
            bad += v != v
        for j in range(stop + 1, n):  # after j*: ties rank below it
            v = scores[i, j]
            above += v > m
            bad += v != v
        ranks[i] = above + 1
        nans[i] = bad + (m != m)
    return ranks, nans
