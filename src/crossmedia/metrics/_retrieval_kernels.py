"""CPU kernels of :mod:`crossmedia.metrics.retrieval`, compiled with numba (cached on disk).

Imported lazily, when image–text ranks are computed on the CPU. Each makes one pass over a chunk
of the similarity matrix and counts, per query, the candidates scoring above and equal to the
query's best relevant score m (the 0-based rank is the count above when nothing else equals m),
and the NaNs. Single-threaded on purpose, as :mod:`crossmedia.metrics.kernels` explains.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["count_rows_and_columns"]


@njit(nogil=True, cache=True)
def count_rows_and_columns(scores: np.ndarray, row_best: np.ndarray, col_best: np.ndarray,
                           col_above: np.ndarray, col_equal: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row i of a (c, M) chunk: #{s > row_best[i]}, #{s == row_best[i]}, #NaN (three (c,) int64);
    in the same pass, per column j, adds the chunk's #{s > col_best[j]} to ``col_above[j]`` and
    #{s == col_best[j]} to ``col_equal[j]`` ((M,) int64, updated in place): both retrieval
    directions from one read of the matrix. Rows alone: pass any (M,) arrays and ignore them."""
    num_q, n = scores.shape
    above = np.zeros(num_q, dtype=np.int64)
    equal = np.zeros(num_q, dtype=np.int64)
    nans = np.zeros(num_q, dtype=np.int64)
    for i in range(num_q):
        m = row_best[i]
        a, e, bad = 0, 0, 0
        for j in range(n):
            v = scores[i, j]
            c = col_best[j]
            a += v > m
            e += v == m
            bad += v != v
            col_above[j] += v > c
            col_equal[j] += v == c
        above[i], equal[i], nans[i] = a, e, bad + (m != m)
    return above, equal, nans
