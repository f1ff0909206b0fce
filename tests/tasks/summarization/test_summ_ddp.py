"""Summarisation under DDP: per-split metrics and per-split networks when ranks see different splits.

The end-to-end run (2 gloo processes, fit, checkpoint, export) is
``tests/core/test_training_infra.py::test_ddp_two_cpu_processes_checkpoint_exports[summarization]``.
"""
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from crossmedia.tasks.summarization.metrics import SummaryFScore, evaluate_summary
from crossmedia.tasks.summarization.module import SumGDAModule


def _video(seed: int) -> dict:
    """A 300-frame video of 5 shots, scores on every 15th frame, 4 users."""
    rng = np.random.default_rng(seed)
    cuts = np.array([0, 60, 120, 180, 240, 300])
    change_points = np.stack([cuts[:-1], cuts[1:] - 1], 1)  # (5, 2) inclusive
    picks = np.arange(0, 300, 15)
    return {"step_scores": torch.from_numpy(rng.random(len(picks))), "change_points": change_points, "n_frames": 300,
            "n_frame_per_seg": np.full(5, 60), "picks": picks,
            "user_summary": (rng.random((4, 300)) < 0.2).astype(np.float32)}


def _gather_where_rank1_saw_nothing(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        metric = SummaryFScore(reduction="max")
        if rank == 0:
            for seed in (0, 1):
                metric.update(**_video(seed))
        torch.save(metric.compute(), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_metric_syncs_when_a_rank_saw_no_video(tmp_path):
    # before the fix the empty rank all-gathered float32, the other float64: gloo aborted
    mp.start_processes(_gather_where_rank1_saw_nothing, args=(str(tmp_path / "store"), str(tmp_path / "f")),
                       nprocs=2, start_method="fork")
    expected = np.mean([evaluate_summary(_generate(_video(seed)), _video(seed)["user_summary"], reduction="max")[0]
                        for seed in (0, 1)])
    for rank in (0, 1):
        assert torch.load(tmp_path / f"f.{rank}").item() == pytest.approx(expected, abs=1e-12)


def _generate(video: dict) -> np.ndarray:
    from crossmedia.data.keyshots import generate_summary

    return generate_summary(video["step_scores"], video["change_points"], video["n_frames"],
                            video["n_frame_per_seg"], video["picks"])


def _step(distributed: bool) -> SumGDAModule:
    torch.manual_seed(0)
    model = SumGDAModule(in_dim=8, hidden=8, dropout=0.0)
    model._distributed = lambda: distributed
    batch = {"features": torch.randn(1, 12, 8), "gtscore": torch.rand(1, 12),
             "train_in": torch.tensor([False, True, False, False, True])}
    model.training_step(batch, 0).backward()
    return model


def test_ddp_step_gives_every_split_a_gradient_and_the_trained_ones_theirs():
    single, ddp = _step(False), _step(True)
    for s in range(5):
        for a, b in zip(single.nets[s].parameters(), ddp.nets[s].parameters()):
            if s in (1, 4):
                assert a.grad is not None and torch.equal(a.grad, b.grad)  # the same gradient as in one process
            else:  # one process leaves them out; DDP all-reduces a zero
                assert a.grad is None and b.grad is not None and not b.grad.any()
    ddp.on_before_optimizer_step(None)  # after the all-reduce: splits no rank trained drop out, as in one process
    assert [all(p.grad is None for p in net.parameters()) for net in ddp.nets] == [True, False, True, True, False]
