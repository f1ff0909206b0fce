"""The keyshot protocol: hand-computed numbers, the reference's edge rules, batch == per video == reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crossmedia.data.keyshots import generate_summary
from crossmedia.tasks.summarization.metrics import SummaryFScore, evaluate_summary, evaluate_videos


def _random_video(rng: np.random.Generator, *, odd: bool = False) -> dict:
    """A video in eccv16 form; ``odd`` adds what real files and models sometimes do."""
    n_frames = int(rng.integers(80, 700))
    cuts = np.sort(rng.choice(np.arange(1, n_frames), size=int(rng.integers(1, 12)), replace=False))
    starts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [n_frames]]) - 1
    change_points = np.stack([starts, ends], 1)
    nfps = ends - starts + 1
    picks = np.arange(0, n_frames, 15)
    scores = rng.random(len(picks)).astype(np.float32)
    if odd:
        kind = int(rng.integers(4))
        if kind == 0:
            scores = np.full(len(picks), 0.5, dtype=np.float32)  # constant scores: knapsack ties everywhere
        elif kind == 1:
            scores = scores[:-1]  # one score short: the last run gets 0
        elif kind == 2:
            picks = picks + 3  # frames before the first pick get 0
            picks = picks[picks < n_frames]
            scores = scores[:len(picks)]
        else:
            nfps = nfps.copy()
            nfps[-1] += 5  # a summary longer than the video: cut to the users' length
    users = (rng.random((int(rng.integers(3, 8)), n_frames)) < rng.uniform(0.05, 0.3)).astype(np.float32)
    return {"scores": scores, "change_points": change_points, "n_frames": n_frames, "nfps": nfps, "picks": picks,
            "users": users}


# generate_summary


def test_generate_summary_stays_within_15_percent():
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = _random_video(rng)
        summary = generate_summary(v["scores"], v["change_points"], v["n_frames"], v["nfps"], v["picks"])
        assert summary.shape == (v["nfps"].sum(),)
        assert set(np.unique(summary)) <= {0.0, 1.0}
        assert summary.sum() <= math.floor(0.15 * v["n_frames"])


# evaluate_summary


def test_f_score_hand_computed_max_vs_avg():
    machine = np.array([1, 1, 0, 0, 1, 0])
    users = np.array([[1, 0, 0, 0, 1, 1],  # overlap 2: P = 2/3, R = 2/3, F = 2/3
                      [0, 0, 1, 1, 0, 0],  # overlap 0: F = 0
                      [1, 0, 1, 1, 1, 1]])  # overlap 2: P = 2/3, R = 2/5, F = 1/2
    f, p, r = evaluate_summary(machine, users, reduction="max")
    assert (f, p, r) == pytest.approx((2 / 3, 2 / 3, 2 / 3), rel=1e-7)  # the best user, with its P and R
    f, p, r = evaluate_summary(machine, users, reduction="avg")
    assert (f, p, r) == pytest.approx(((2 / 3 + 1 / 2) / 3, (2 / 3 + 2 / 3) / 3, (2 / 3 + 2 / 5) / 3), rel=1e-7)


def test_f_score_cuts_or_pads_the_machine_summary():
    users = np.array([[1, 1, 0, 0]])
    assert evaluate_summary([1, 1, 0, 0, 1, 1], users, reduction="max")[0] == pytest.approx(1.0)  # tail cut
    f, p, r = evaluate_summary([1], users, reduction="avg")  # padded with zeros
    assert (p, r) == pytest.approx((1.0, 0.5))
    assert evaluate_summary([0, 0, 0, 0], users, reduction="avg") == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="'max' \\(SumMe\\) or 'avg' \\(TVSum\\)"):
        evaluate_summary([1], users, reduction="mean")


# the batch path and the reference


@pytest.mark.parametrize("reduction", ["max", "avg"])
def test_batch_equals_per_video_equals_reference(reduction, summ_bench):
    rng = np.random.default_rng(1)
    videos = [_random_video(rng, odd=i % 2 == 1) for i in range(40)]
    batch = evaluate_videos([v["scores"] for v in videos], [v["change_points"] for v in videos],
                            [v["n_frames"] for v in videos], [v["nfps"] for v in videos], [v["picks"] for v in videos],
                            [v["users"] for v in videos], reduction=reduction)
    for i, v in enumerate(videos):
        machine = generate_summary(v["scores"], v["change_points"], v["n_frames"], v["nfps"], v["picks"])
        ours = evaluate_summary(machine, v["users"], reduction=reduction)
        reference_machine = summ_bench.reference_generate_summary(v["scores"], v["change_points"], v["n_frames"],
                                                                  v["nfps"].tolist(), v["picks"])
        assert machine.tolist() == reference_machine.tolist()
        assert ours == summ_bench.reference_evaluate_summary(reference_machine, v["users"], reduction)
        assert (batch[0][i], batch[1][i], batch[2][i]) == ours  # bit for bit


def test_batch_names_the_bad_video():
    rng = np.random.default_rng(2)
    videos = [_random_video(rng) for _ in range(3)]
    fields = [[v[k] for v in videos] for k in ("scores", "change_points", "n_frames", "nfps", "picks", "users")]
    fields[1][2], fields[3][2] = np.array([[0, 5], [6, 100_000]]), np.array([6, 99_995])
    with pytest.raises(ValueError, match="video 2: .*n_frames"):
        evaluate_videos(*fields, reduction="avg")
    with pytest.raises(ValueError, match="one entry per video"):
        evaluate_videos(fields[0][:2], *fields[1:], reduction="avg")


# the torchmetrics Metric


def test_metric_equals_the_functional_path():
    rng = np.random.default_rng(3)
    videos = [_random_video(rng) for _ in range(6)]
    metric = SummaryFScore(reduction="max")
    expected = []
    for v in videos:
        metric.update(torch.from_numpy(v["scores"]), change_points=torch.from_numpy(v["change_points"]),
                      n_frames=torch.tensor(v["n_frames"]), n_frame_per_seg=v["nfps"], picks=v["picks"],
                      user_summary=torch.from_numpy(v["users"]))
        machine = generate_summary(v["scores"], v["change_points"], v["n_frames"], v["nfps"], v["picks"])
        expected.append(evaluate_summary(machine, v["users"], reduction="max")[0])
    assert metric.compute().item() == pytest.approx(float(np.mean(expected)), abs=1e-12)
    assert len(metric.f_scores) == len(videos)
