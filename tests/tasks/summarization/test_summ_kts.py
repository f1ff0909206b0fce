"""Kernel temporal segmentation: the authors' DP number for number, and planted shots recovered."""
from __future__ import annotations

import numpy as np
import pytest

from crossmedia.tasks.summarization.kts import cpd_auto, cpd_nonlin, segment_features


def _literal_cpd_nonlin(K: np.ndarray, m: int, lmin: int, lmax: int) -> tuple[np.ndarray, np.ndarray]:
    """The authors' triple loop over (k, l, t), with their 1e100 / 1e101 sentinels."""
    n = K.shape[0]
    d = np.concatenate([[0.0], np.cumsum(np.diag(K))])
    c = np.zeros((n + 1, n + 1))
    c[1:, 1:] = np.cumsum(np.cumsum(K, 0), 1)
    J = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            J[i, j] = d[j + 1] - d[i] - (c[j + 1, j + 1] + c[i, i] - c[j + 1, i] - c[i, j + 1]) / (j - i + 1)
    I = 1e101 * np.ones((m + 1, n + 1))
    I[0, lmin:lmax] = J[0, lmin - 1:lmax - 1]
    p = np.zeros((m + 1, n + 1), dtype=int)
    for k in range(1, m + 1):
        for l in range((k + 1) * lmin, n + 1):
            I[k, l] = 1e100
            for t in range(max(k * lmin, l - lmax), l - lmin + 1):
                if I[k - 1, t] + J[t, l - 1] < I[k, l]:
                    I[k, l], p[k, l] = I[k - 1, t] + J[t, l - 1], t
    cps, cur = np.zeros(m, dtype=int), n
    for k in range(m, 0, -1):
        cps[k - 1] = cur = p[k, cur]
    scores = I[:, n].copy()
    scores[scores > 1e99] = np.inf
    return cps, scores


def _planted(seed: int, lengths: list[int], dim: int = 64, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Features (T, dim) of scenes with the given lengths (consecutive scenes differ) and their true starts."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(lengths), dim))
    x = np.concatenate([np.repeat(directions[i:i + 1], n, 0) for i, n in enumerate(lengths)])
    x = x + noise * rng.normal(size=x.shape)
    return x, np.cumsum(lengths)[:-1]


def test_dynamic_program_matches_the_authors_loop():
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(6, 30))
        m = int(rng.integers(0, min(5, n // 2) + 1))
        lmin = int(rng.integers(1, 3))
        lmax = int(rng.choice([100_000, n // 2 + 2]))
        if not (m + 1) * lmin <= n <= (m + 1) * lmax:
            continue
        x = rng.normal(size=(n, 4))
        if trial % 3 == 0:
            x = np.round(x)  # repeated frames: exact ties
        K = x @ x.T
        cps, scores = cpd_nonlin(K, m, lmin=lmin, lmax=lmax)
        expected_cps, expected_scores = _literal_cpd_nonlin(K, m, lmin, lmax)
        assert cps.tolist() == expected_cps.tolist()
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-9, atol=1e-9)


def test_cpd_nonlin_recovers_planted_change_points():
    x, truth = _planted(1, [30, 45, 25, 50, 40])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cps, scores = cpd_nonlin(x @ x.T, len(truth))
    assert np.abs(cps - truth).max() <= 2
    assert np.all(np.diff(scores) < 0)  # every extra change point lowers the scatter


def test_cpd_auto_picks_the_planted_count():
    for seed, lengths in ((2, [40, 25, 60, 35, 30, 50]), (3, [80, 70]), (4, [20] * 9)):
        x, truth = _planted(seed, lengths)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        cps, costs = cpd_auto(x @ x.T, 20, 1.0)
        assert len(cps) == len(truth)
        assert np.abs(cps - truth).max() <= 2
        full_cps, full_costs = cpd_auto(x @ x.T, 20, 1.0, early_stop=False)  # the authors' exhaustive search
        assert cps.tolist() == full_cps.tolist()
        np.testing.assert_allclose(costs, full_costs[:len(costs)])
        assert np.all(full_costs[len(costs):] > costs.min())


def test_segment_features_gives_eccv16_shots():
    x, truth = _planted(5, [20, 34, 26, 40])  # steps at 2 fps
    change_points, nfps = segment_features(x, sample_rate=15, n_frames=120 * 15 + 7)
    assert change_points[0, 0] == 0 and change_points[-1, 1] == 120 * 15 + 6
    assert np.all(change_points[1:, 0] == change_points[:-1, 1] + 1)
    assert nfps.tolist() == (change_points[:, 1] - change_points[:, 0] + 1).tolist()
    assert np.abs(change_points[1:, 0] - truth * 15).max() <= 2 * 15
    one_per_two_seconds, _ = segment_features(x, sample_rate=15, fps=30.0, max_ncp=None)
    assert len(one_per_two_seconds) == len(truth) + 1


def test_kts_rejects_impossible_requests():
    K = np.eye(5)
    with pytest.raises(ValueError, match="cannot cut 5 frames"):
        cpd_nonlin(K, 5)
    with pytest.raises(ValueError, match="square kernel"):
        cpd_nonlin(np.ones((3, 4)), 1)
    with pytest.raises(ValueError, match="NaN"):
        cpd_auto(np.full((4, 4), np.nan), 1, 1.0)
