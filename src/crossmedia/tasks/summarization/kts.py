"""Kernel temporal segmentation (KTS), Potapov, Douze, Harchaoui & Schmid, "Category-specific video
summarization", ECCV 2014.

Frames ``x_1 .. x_n`` with a kernel ``K[i, j] = k(x_i, x_j)`` are cut into ``m + 1`` segments
minimising the total within-segment scatter in the kernel's feature space. The scatter of the
segment of frames ``t .. l-1`` is

    w(t, l) = sum_{i=t}^{l-1} K[i, i]  -  (1 / (l - t)) * sum_{i,j=t}^{l-1} K[i, j]          (1)

read off cumulative sums of the diagonal and of the whole matrix in O(1). Dynamic programming
over the number of change points ``k`` and the prefix length ``l``,

    I[0, l] = w(0, l),     I[k, l] = min_t  I[k-1, t] + w(t, l),                            (2)

gives the best segmentation with ``m`` change points for every ``m`` at once (:func:`cpd_nonlin`).
The automatic variant (:func:`cpd_auto`) picks the number of change points minimising

    cost(m) = I[m, n] / n  +  vmax * m / (2 N) * (log(N / m) + 1),      N = n * desc_rate   (3)

(the penalty is 0 for ``m = 0``). Conventions follow the authors' code (``cpd_nonlin`` /
``cpd_auto``) exactly: a change point ``t`` starts a new segment at frame ``t``; segment lengths
lie in ``[lmin, lmax]`` except the first one, which is at most ``lmax - 1``; ties go to the
earliest change point.

Speed. Each row of (2) is one vectorised min-plus product of the previous row with the table of
all scatters ``w`` (computed once, O(n^2) memory), in blocks of prefix lengths so that only
``t < l`` is visited. For positive semi-definite kernels (a linear kernel on features, a Gaussian
kernel, ...) every scatter is >= 0, so :func:`cpd_auto` stops as soon as the penalty alone exceeds
the best cost found: no larger number of change points can win (``early_stop=False`` evaluates
every count, as the authors' code does). :func:`segment_features` is what datasets use: a linear
kernel on L2-normalised features, change points mapped back to frame ranges as the eccv16 files
store them.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

__all__ = ["cpd_nonlin", "cpd_auto", "segment_features"]

_BLOCK = 128  # prefix lengths per vectorised block of a row


# helpers

def _scatter_table(K: np.ndarray, lmin: int, lmax: int) -> np.ndarray:
    """W (n+1, n+1) with W[l, t] = w(t, l) of (1) where lmin <= l - t <= lmax, +inf elsewhere."""
    n = K.shape[0]
    diag = np.concatenate([[0.0], np.cumsum(np.diag(K))])  # (n+1,)
    block = np.zeros((n + 1, n + 1))  # (n+1, n+1) block[a, b] = sum K[:a, :b]
    block[1:, 1:] = np.cumsum(np.cumsum(K, axis=0).T, axis=0).T  # cumulative along rows, then columns
    square = np.diag(block).copy()  # (n+1,) block[a, a]
    starts = np.arange(n + 1)  # (n+1,) t
    table = np.empty((n + 1, n + 1))  # (n+1, n+1) W[l, t]
    for l0 in range(0, n + 1, _BLOCK):  # blocks of rows keep the temporaries small
        l1 = min(l0 + _BLOCK, n + 1)
        ends = starts[l0:l1, None]  # (L, 1) l
        length = ends - starts[None, :]  # (L, n+1)
        inner = square[l0:l1, None] - block[:, l0:l1].T - block[l0:l1, :] + square[None, :]  # sum of K over [t, l)^2
        with np.errstate(divide="ignore", invalid="ignore"):
            rows = diag[l0:l1, None] - diag[None, :] - inner / length  # (L, n+1) equation (1)
        rows[(length < lmin) | (length > lmax)] = np.inf
        table[l0:l1] = rows
    return table


def _rows(K: np.ndarray, m: int, lmin: int, lmax: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Rows k = 0, 1, ..., m of table (2): (I[k, :], best previous change point), each (n+1,)."""
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"a square kernel matrix is expected, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError("the kernel matrix holds NaN or infinite values")
    if not 1 <= lmin <= lmax:
        raise ValueError(f"segment lengths need 1 <= lmin <= lmax, got lmin={lmin}, lmax={lmax}")
    n = K.shape[0]
    if not (m + 1) * lmin <= n <= (m + 1) * lmax:
        raise ValueError(f"{m} change points cannot cut {n} frames into segments of {lmin}..{lmax} frames")
    table = _scatter_table(K, lmin, lmax)
    values = np.full(n + 1, np.inf)
    ends = np.arange(lmin, min(lmax, n + 1))  # the first segment is at most lmax - 1 long, as in the authors' code
    values[ends] = table[ends, 0]
    yield values, np.zeros(n + 1, dtype=np.int64)
    for k in range(1, m + 1):
        prev, values, args = values, np.full(n + 1, np.inf), np.zeros(n + 1, dtype=np.int64)
        first_t = k * lmin  # fewer frames cannot hold k segments
        for l0 in range((k + 1) * lmin, n + 1, _BLOCK):
            l1 = min(l0 + _BLOCK, n + 1)
            last_t = l1 - lmin  # inclusive
            total = table[l0:l1, first_t:last_t + 1] + prev[None, first_t:last_t + 1]  # (L, T) I[k-1, t] + w(t, l)
            best = np.argmin(total, axis=1)  # (L,) the earliest t on ties
            values[l0:l1] = total[np.arange(l1 - l0), best]
            args[l0:l1] = best + first_t
        yield values, args


def _backtrack(args: list[np.ndarray], m: int, n: int) -> np.ndarray:
    cps = np.zeros(m, dtype=np.int64)
    cur = n
    for k in range(m, 0, -1):
        cps[k - 1] = args[k][cur]
        cur = cps[k - 1]
    return cps


def _penalty(m: int, big_n: float, vmax: float) -> float:
    return 0.0 if m == 0 else vmax * m / (2.0 * big_n) * (math.log(big_n / m) + 1)


# functions

def cpd_nonlin(K: np.ndarray, ncp: int, *, lmin: int = 1, lmax: int = 100_000,
               backtrack: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Best ``ncp`` change points for kernel ``K`` (n, n) by dynamic programming, equation (2).

    Returns ``(cps, scores)``: ``cps`` (ncp,) int, the frames where segments 2..ncp+1 start
    (zeros when ``backtrack=False``), and ``scores`` (ncp+1,), the optimal total scatter with
    0..ncp change points (inf where no segmentation fits ``lmin``/``lmax``).
    """
    m, n = int(ncp), np.shape(K)[0]
    scores, args = np.zeros(m + 1), []
    for k, (values, best) in enumerate(_rows(K, m, lmin, lmax)):
        scores[k] = values[n]
        if backtrack:
            args.append(best)
    cps = _backtrack(args, m, n) if backtrack else np.zeros(m, dtype=np.int64)
    return cps, scores


def cpd_auto(K: np.ndarray, max_ncp: int, vmax: float, desc_rate: int = 1, *, lmin: int = 1,
             lmax: int = 100_000, early_stop: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Change points with their number chosen by the penalised cost (3), up to ``max_ncp``.

    Returns ``(cps, costs)``: the change points of the best count and ``costs[m]`` of (3) for
    ``m = 0, 1, ...``. With ``early_stop`` (valid for PSD kernels, whose scatters are >= 0) the
    search ends once the penalty alone exceeds the best cost, so ``costs`` may be shorter than
    ``max_ncp + 1``; every count it leaves out provably costs more. ``desc_rate`` is the
    sub-sampling rate of the frames ``K`` is built on: the penalty uses the original length
    ``n * desc_rate``; change points stay in sub-sampled coordinates.
    """
    m, n = int(max_ncp), np.shape(K)[0]
    big_n = float(n * desc_rate)
    costs, args = [], []
    for k, (values, best) in enumerate(_rows(K, m, lmin, lmax)):
        costs.append(values[n] / n + _penalty(k, big_n, vmax))
        args.append(best)
        best_cost = min(costs)
        if early_stop and k < m and math.isfinite(best_cost):
            if _penalty(k + 1, big_n, vmax) > best_cost + 1e-9 * (1.0 + abs(best_cost)):
                break  # scatters are >= 0 and the penalty grows with m: no larger count can win
    costs = np.asarray(costs)
    m_best = int(np.argmin(costs))
    return _backtrack(args, m_best, n), costs


def segment_features(features: np.ndarray, *, max_ncp: int | None = None, vmax: float = 1.0, lmin: int = 1,
                     lmax: int = 100_000, sample_rate: int = 1, n_frames: int | None = None,
                     fps: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """KTS shots of a video from its per-step features (T, D): ``(change_points, n_frame_per_seg)``.

    A linear kernel on L2-normalised features and :func:`cpd_auto` with ``vmax``. Step ``i`` is
    frame ``i * sample_rate`` (15 for 2 fps steps of a 30 fps video); the video has ``n_frames``
    frames (default ``T * sample_rate``). ``max_ncp`` defaults to one change point per 2 seconds
    when ``fps`` is given (``ceil(n_frames / fps / 2)``, as pytorch-vsumm-reinforce builds its
    datasets), else to ``T - 1``. Returns ``change_points`` (n_seg, 2) inclusive ``[start, end]``
    frame ranges covering ``0 .. n_frames-1`` and ``n_frame_per_seg`` (n_seg,) = ``end - start + 1``,
    as the eccv16 files store them.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"features must be (T, D) with T >= 1, got shape {x.shape}")
    steps = len(x)
    n_frames = steps * sample_rate if n_frames is None else int(n_frames)
    if n_frames < (steps - 1) * sample_rate + 1:
        raise ValueError(f"{steps} steps every {sample_rate} frames need n_frames >= {(steps - 1) * sample_rate + 1}, "
                         f"got {n_frames}")
    if max_ncp is None:
        max_ncp = steps - 1 if fps is None else math.ceil(n_frames / fps / 2)
    max_ncp = max(0, min(int(max_ncp), steps // lmin - 1))
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-10)  # (T, D) unit rows
    kernel = x @ x.T  # (T, T)
    cps, _ = cpd_auto(kernel, max_ncp, vmax, lmin=lmin, lmax=lmax)
    bounds = np.concatenate([[0], cps * sample_rate, [n_frames]])  # (n_seg+1,) segment starts, then the end
    change_points = np.stack([bounds[:-1], bounds[1:] - 1], axis=1)  # (n_seg, 2)
    return change_points.astype(np.int64), np.diff(bounds).astype(np.int64)
