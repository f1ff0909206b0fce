"""Image–text retrieval metrics (VSE++'s i2t / t2i protocol) by hand and against a per-query loop
with the reference's exact semantics (``argsort(d)[::-1]``, best of the image's 5 captions)."""
import numpy as np
import pytest
import torch

from crossmedia.metrics.retrieval import (RetrievalRecall, coco_1k, coco_5k, rank_metrics, retrieval_metrics,
                                          retrieval_ranks)
from crossmedia.nn.contrastive import order_similarity

# 2 images × 10 captions; captions 0-4 describe image 0, 5-9 image 1
SIMS = torch.tensor([[0.10, 0.90, 0.20, 0.30, 0.00, 0.95, 0.50, 0.40, 0.35, 0.05],
                     [0.80, 0.70, 0.60, 0.10, 0.20, 0.05, 0.15, 0.30, 0.25, 0.55]])


# the reference protocol, one query at a time

def reference_ranks(sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(sims)
    i2t = np.zeros(n)
    for index in range(n):
        inds = np.argsort(sims[index])[::-1]
        i2t[index] = min(np.where(inds == i)[0][0] for i in range(5 * index, 5 * index + 5))
    t2i = np.zeros(5 * n)
    for j in range(5 * n):
        inds = np.argsort(np.ascontiguousarray(sims[:, j]))[::-1]
        t2i[j] = np.where(inds == j // 5)[0][0]
    return i2t, t2i


def reference_metrics(sims: np.ndarray) -> dict[str, float]:
    out = {}
    for side, ranks in zip(("i2t", "t2i"), reference_ranks(sims)):
        for k in (1, 5, 10):
            out[f"{side}_r{k}"] = 100.0 * len(np.where(ranks < k)[0]) / len(ranks)
        out[f"{side}_medr"] = np.floor(np.median(ranks)) + 1
        out[f"{side}_meanr"] = ranks.mean() + 1
    out["rsum"] = sum(out[f"{s}_r{k}"] for s in ("i2t", "t2i") for k in (1, 5, 10))
    return out


def reference_folds(sims: np.ndarray, fold: int) -> dict[str, float]:
    results = [reference_metrics(sims[f * fold:(f + 1) * fold, 5 * f * fold:5 * (f + 1) * fold])
               for f in range(len(sims) // fold)]
    return {key: float(np.array([r[key] for r in results]).mean()) for key in results[0]}


def random_sims(n: int, seed: int, ties: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    images, captions = torch.randn(n, 8, generator=g), torch.randn(5 * n, 8, generator=g)
    captions += 1.5 * images.repeat_interleave(5, dim=0)  # (5N, D) near their image: ranks of all sizes
    sims = images @ captions.T  # (N, 5N)
    return sims.round() if ties else sims  # integer scores: many ties


# tests

def test_ranks_and_metrics_by_hand():
    i2t, t2i = retrieval_ranks(SIMS)
    # image 0: 0.95 (caption 5) then 0.90 (its caption 1) -> 1; image 1: 0.8, 0.7, 0.6 then 0.55 (its 9) -> 3
    assert i2t.tolist() == [1, 3]
    # caption j against the other image: own image first where its score is higher
    assert t2i.tolist() == [1, 0, 1, 0, 1, 1, 1, 1, 1, 0]
    got = retrieval_metrics(SIMS)
    assert got == {"i2t_r1": 0.0, "i2t_r5": 100.0, "i2t_r10": 100.0, "i2t_medr": 3.0, "i2t_meanr": 3.0,
                   "t2i_r1": 30.0, "t2i_r5": 100.0, "t2i_r10": 100.0, "t2i_medr": 2.0, "t2i_meanr": 1.7,
                   "rsum": 430.0}
    assert rank_metrics(torch.tensor([0, 4, 5, 12])) == {"r1": 25.0, "r5": 50.0, "r10": 75.0,
                                                          "medr": 5.0, "meanr": 6.25}  # median 4.5 -> 4 + 1


@pytest.mark.parametrize("ties", [False, True])
def test_equals_reference_loop(ties):
    sims = random_sims(60, seed=1, ties=ties)
    want = reference_metrics(sims.numpy())
    assert 0 < want["i2t_r1"] < 100 and want["t2i_medr"] > 1  # a non-trivial case
    got_ranks = retrieval_ranks(sims)
    ref_ranks = reference_ranks(sims.numpy())
    assert np.array_equal(got_ranks[0].numpy(), ref_ranks[0]) and np.array_equal(got_ranks[1].numpy(), ref_ranks[1])
    assert retrieval_metrics(sims) == want
    assert coco_5k(sims, chunk_size=7) == want  # chunking changes nothing


def test_1k_folds_equal_reference():
    sims = random_sims(60, seed=2).double()
    got = coco_1k(sims, fold_size=20)
    want = reference_folds(sims.numpy(), 20)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert got["rsum"] == pytest.approx(sum(got[f"{s}_r{k}"] for s in ("i2t", "t2i") for k in (1, 5, 10)))
    with pytest.raises(ValueError, match="multiple of fold_size"):
        coco_1k(sims, fold_size=25)


def test_embeddings_and_callable_similarity():
    g = torch.Generator().manual_seed(3)
    images, captions = torch.randn(30, 6, generator=g).abs(), torch.randn(150, 6, generator=g).abs()
    assert retrieval_metrics(images=images, captions=captions, chunk_size=4) == retrieval_metrics(images @ captions.T)
    order = order_similarity(images, captions)  # (30, 150)
    assert retrieval_metrics(images=images, captions=captions, similarity=order_similarity, chunk_size=4) == \
        retrieval_metrics(order)
    assert coco_1k(images=images, captions=captions, fold_size=10) == coco_1k(images @ captions.T, fold_size=10)


def test_bad_inputs():
    with pytest.raises(ValueError, match="5 captions per image"):
        retrieval_ranks(torch.zeros(2, 9))
    with pytest.raises(ValueError, match="NaN"):
        retrieval_ranks(SIMS.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="either sims"):
        retrieval_ranks(SIMS, images=torch.zeros(2, 3), captions=torch.zeros(10, 3))


def test_torchmetric_dedupes_and_orders_by_index():
    g = torch.Generator().manual_seed(4)
    images, captions = torch.randn(12, 5, generator=g), torch.randn(12, 5, 5, generator=g)
    metric = RetrievalRecall()
    perm = torch.tensor([3, 0, 7, 11, 1, 2, 10, 4, 5, 9, 8, 6, 3, 0])  # the last two: sampler padding repeats
    metric.update(images[perm[:7]], captions[perm[:7]], perm[:7])
    metric.update(images[perm[7:]], captions[perm[7:]], perm[7:])
    assert metric.compute() == retrieval_metrics(images=images, captions=captions.flatten(0, 1))
    folds = RetrievalRecall(fold_size=4)
    folds.update(images, captions, torch.arange(12))
    assert folds.compute() == coco_1k(images=images, captions=captions.flatten(0, 1), fold_size=4)


def test_pytorch_path_equals_kernel(monkeypatch):
    """The PyTorch counting used off the CPU (GPU) gives the kernels' ranks, ties included."""
    import crossmedia.metrics.retrieval as retrieval

    sims = random_sims(40, seed=5, ties=True)
    want = retrieval_ranks(sims)
    monkeypatch.setattr(retrieval, "_KERNEL_DEVICES", ())
    got = retrieval_ranks(sims, chunk_size=9)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_ranks(SIMS.clone().fill_(float("nan")))
