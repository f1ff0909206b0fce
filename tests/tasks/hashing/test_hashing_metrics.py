"""Hamming-ranking evaluation: hand-computed cases, a brute-force NumPy reference, Metric classes."""
import numpy as np
import pytest
import torch

from crossmedia.tasks.hashing.metrics import (
    HammingMAP,
    HammingPRCurve,
    HammingPrecisionAtK,
    hamming_distance,
    mean_average_precision,
    precision_at_k,
    pr_curve,
)

# A hand-built case, 4 bits. Query q0 = (1, 1, 1, 1); database distances to q0 are
# (1, 1, 0, 2, 1). Item 2 has a 0 entry, which counts as +1.
DB_CODES = torch.tensor([[1.0, 1, 1, -1],
                         [1, 1, -1, 1],
                         [0.3, 0, 2, 1],
                         [-1, -1, 1, 1],
                         [-1, 1, 1, 1]])
DB_LABELS = torch.tensor([[0, 1, 0],
                          [1, 1, 0],
                          [1, 0, 0],
                          [1, 0, 1],
                          [0, 0, 1]])
# q0: label 0 -> relevant items (1, 2, 3); q1: no label; q2: label 1 -> relevant items (0, 1)
Q_CODES = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1], [2, 0.1, 0, 5]])
Q_LABELS = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 1, 0]])
# ranking of every query (same code): item 2 (d 0), then 0, 1, 4 (d 1, database order), then 3
#   q0 relevance 1 0 1 0 1 -> AP@all = (1/1 + 2/3 + 3/5) / 3
#   q2 relevance 0 1 1 0 0 -> AP@all = (1/2 + 2/3) / 2


def test_hamming_distance_by_hand():
    d = hamming_distance(Q_CODES[:1], DB_CODES)
    assert d.dtype == torch.int64
    assert d.tolist() == [[1, 1, 0, 2, 1]]
    assert hamming_distance(torch.zeros(1, 3), -torch.ones(2, 3)).tolist() == [[3, 3]]  # sign(0) = +1
    with pytest.raises(ValueError, match="bits"):
        hamming_distance(torch.ones(1, 3), torch.ones(1, 4))


def test_map_by_hand_with_ties_and_a_label_less_query():
    ap0, ap2 = (1 + 2 / 3 + 3 / 5) / 3, (1 / 2 + 2 / 3) / 2
    assert mean_average_precision(Q_CODES[:1], Q_LABELS[:1], DB_CODES, DB_LABELS).item() == pytest.approx(ap0)
    # had ties gone by anything but database order (e.g. item 4 before item 1) q0 would get
    # (1 + 2/4 + 3/5) / 3 = 0.7 instead of 0.7556
    assert ap0 != pytest.approx((1 + 2 / 4 + 3 / 5) / 3)
    # the label-less query q1 counts as 0
    got = mean_average_precision(Q_CODES, Q_LABELS, DB_CODES, DB_LABELS)
    assert got.item() == pytest.approx((ap0 + 0 + ap2) / 3)
    # top-K truncation: AP@3 of q0 = (1 + 2/3) / 2; q2 has no relevant item in its top 1 -> 0
    at3 = mean_average_precision(Q_CODES[:1], Q_LABELS[:1], DB_CODES, DB_LABELS, top_k=3)
    assert at3.item() == pytest.approx((1 + 2 / 3) / 2)
    at1 = mean_average_precision(Q_CODES, Q_LABELS, DB_CODES, DB_LABELS, top_k=1)
    assert at1.item() == pytest.approx((1 + 0 + 0) / 3)
    at2 = mean_average_precision(Q_CODES, Q_LABELS, DB_CODES, DB_LABELS, top_k=2)
    assert at2.item() == pytest.approx((1 + 0 + 1 / 2) / 3)
    # top_k larger than the database means the whole database
    big = mean_average_precision(Q_CODES, Q_LABELS, DB_CODES, DB_LABELS, top_k=100)
    assert big.item() == pytest.approx(got.item())


def test_map_with_class_index_labels():
    q_labels, db_labels = torch.tensor([0]), torch.tensor([1, 0, 0, 0, 2])  # relevant: 1, 2, 3
    got = mean_average_precision(Q_CODES[:1], q_labels, DB_CODES, db_labels)
    assert got.item() == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    with pytest.raises(ValueError, match="both"):
        mean_average_precision(Q_CODES[:1], q_labels, DB_CODES, DB_LABELS)


def test_precision_at_k_by_hand():
    # top 3 = items 2, 0, 1: q0 relevant 2 of 3, q1 0, q2 relevant 2 of 3
    got = precision_at_k(Q_CODES, Q_LABELS, DB_CODES, DB_LABELS, k=3)
    assert got.item() == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)
    assert precision_at_k(Q_CODES[:1], Q_LABELS[:1], DB_CODES, DB_LABELS, k=1).item() == pytest.approx(1.0)


def test_pr_curve_by_hand():
    # q0 = (1,1,1,1): distances (1,1,0,2,1), relevant (0,1,1,1,0)
    # q3 = (−1,−1,−1,−1): distances (3,3,4,2,3), same labels; retrieves nothing at r = 0, 1
    q = torch.tensor([[1.0, 1, 1, 1], [-1, -1, -1, -1]])
    labels = torch.tensor([[1, 0, 0], [1, 0, 0]])
    precision, recall = pr_curve(q, labels, DB_CODES, DB_LABELS)
    assert precision.shape == recall.shape == (5,)
    # q0: P = 1, .5, .6, .6, .6; R = 1/3, 2/3, 1, 1, 1
    # q3: P = −, −, 1, .5, .6;  R = 0, 0, 1/3, 2/3, 1
    assert precision.tolist() == pytest.approx([1.0, 0.5, 0.8, 0.55, 0.6])
    assert recall.tolist() == pytest.approx([1 / 6, 1 / 3, 2 / 3, 5 / 6, 1.0])
    # nothing retrieved by any query at r = 0, 1: precision 0 there by convention
    precision, recall = pr_curve(q[1:], labels[1:], DB_CODES, DB_LABELS)
    assert precision.tolist() == pytest.approx([0.0, 0.0, 1.0, 0.5, 0.6])
    assert recall.tolist() == pytest.approx([0.0, 0.0, 1 / 3, 2 / 3, 1.0])
    # a query without any relevant item is left out of recall, not counted as 0
    precision, recall = pr_curve(Q_CODES[:2], Q_LABELS[:2], DB_CODES, DB_LABELS)
    assert recall.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 1.0])
    assert precision.tolist() == pytest.approx([0.5, 0.25, 0.3, 0.3, 0.3])


def test_input_errors():
    with pytest.raises(ValueError, match="boolean"):
        mean_average_precision(Q_CODES > 0, Q_LABELS, DB_CODES, DB_LABELS)
    with pytest.raises(ValueError, match="bits"):
        mean_average_precision(Q_CODES[:, :3], Q_LABELS, DB_CODES, DB_LABELS)
    with pytest.raises(ValueError, match="top_k"):
        mean_average_precision(Q_CODES, Q_LABELS, DB_CODES, DB_LABELS, top_k=0)
    with pytest.raises(ValueError, match="db_labels"):
        mean_average_precision(Q_CODES, Q_LABELS, DB_CODES, DB_LABELS[:4])


# brute force

def reference(q, ql, db, dl, top_k):
    """Per-query NumPy loop: CalcTopMap with a stable argsort, plus P@K and the PR curve."""
    q, db = np.where(q >= 0, 1, -1), np.where(db >= 0, 1, -1)
    bits, n = q.shape[1], len(db)
    k = min(top_k or n, n)
    aps, pks, prec, rec = [], [], [[] for _ in range(bits + 1)], [[] for _ in range(bits + 1)]
    for i in range(len(q)):
        rel = (ql[i] @ dl.T > 0).astype(float)
        dist = (bits - q[i] @ db.T) // 2
        top = rel[np.argsort(dist, kind="stable")][:k]
        found = int(top.sum())
        aps.append(0.0 if found == 0 else np.mean(np.arange(1, found + 1) / (np.flatnonzero(top) + 1)))
        pks.append(top.sum() / k)
        for r in range(bits + 1):
            got = dist <= r
            if got.any():
                prec[r].append(rel[got].sum() / got.sum())
            if rel.any():
                rec[r].append(rel[got].sum() / rel.sum())
    mean = [np.mean(p) if p else 0.0 for p in prec]
    return np.mean(aps), np.mean(pks), np.array(mean), np.array([np.mean(r) if r else 0.0 for r in rec])


@pytest.mark.parametrize("seed,nq,ndb,bits,classes,top_k", [
    (0, 40, 300, 6, 4, None),   # 6 bits: heavy ties
    (1, 33, 500, 8, 5, 50),
    (2, 25, 400, 16, 3, 7),
    (3, 17, 250, 12, 70, 400),  # 70 classes: labels span two 63-bit words
    (4, 21, 300, 100, 5, 30),   # 100 bits: codes span two 64-bit words in the CPU kernel
])
def test_functional_matches_brute_force(seed, nq, ndb, bits, classes, top_k):
    g = torch.Generator().manual_seed(seed)
    q, db = torch.randn(nq, bits, generator=g), torch.randn(ndb, bits, generator=g)
    density = 2.0 / classes
    ql = (torch.rand(nq, classes, generator=g) < density).float()
    dl = (torch.rand(ndb, classes, generator=g) < density).float()
    ref_map, ref_pk, ref_p, ref_r = reference(q.numpy(), ql.numpy(), db.numpy(), dl.numpy(), top_k)
    k = top_k or ndb
    for chunk_size in (None, 4):
        got = mean_average_precision(q, ql, db, dl, top_k=top_k, chunk_size=chunk_size)
        assert got.item() == pytest.approx(ref_map, abs=1e-6)
        got = precision_at_k(q, ql, db, dl, k=k, chunk_size=chunk_size)
        assert got.item() == pytest.approx(ref_pk, abs=1e-6)
        precision, recall = pr_curve(q, ql, db, dl, chunk_size=chunk_size)
        np.testing.assert_allclose(precision.numpy(), ref_p, atol=1e-6)
        np.testing.assert_allclose(recall.numpy(), ref_r, atol=1e-6)


# Metric classes

def batches(tensor, size):
    return [tensor[i:i + size] for i in range(0, len(tensor), size)]


def test_metric_classes_match_functional_over_batches():
    g = torch.Generator().manual_seed(5)
    q, db = torch.randn(30, 16, generator=g), torch.randn(200, 16, generator=g)
    ql = (torch.rand(30, 6, generator=g) < 0.3).float()
    dl = (torch.rand(200, 6, generator=g) < 0.3).float()
    metrics = {"map": HammingMAP(), "map10": HammingMAP(top_k=10), "p5": HammingPrecisionAtK(k=5),
               "pr": HammingPRCurve()}
    # interleave query and database batches, as validation with two dataloaders may
    for (qc, qlab), (dc, dlab) in zip(zip(batches(q, 7), batches(ql, 7)), zip(batches(db, 45), batches(dl, 45))):
        for metric in metrics.values():
            metric.update(qc, qlab, database=False)
            metric.update(dc, dlab, database=True)
    assert metrics["map"].compute().item() == pytest.approx(mean_average_precision(q, ql, db, dl).item())
    assert metrics["map10"].compute().item() == pytest.approx(
        mean_average_precision(q, ql, db, dl, top_k=10).item())
    assert metrics["p5"].compute().item() == pytest.approx(precision_at_k(q, ql, db, dl, k=5).item())
    curve = metrics["pr"].compute()
    precision, recall = pr_curve(q, ql, db, dl)
    assert torch.allclose(curve["precision"], precision) and torch.allclose(curve["recall"], recall)
    # reset empties both sides
    metrics["map"].reset()
    metrics["map"].update(db[:5], dl[:5], database=True)
    with pytest.raises(RuntimeError, match="no query items"):
        metrics["map"].compute()


def test_metric_errors_name_the_missing_side():
    metric = HammingMAP()
    metric.update(torch.randn(4, 8), torch.ones(4, 2), database=True)
    with pytest.raises(RuntimeError, match="no query items"):
        metric.compute()
    metric = HammingMAP(top_k=3)
    metric.update(torch.randn(4, 8), torch.ones(4, 2), database=False)
    with pytest.raises(RuntimeError, match="no database items"):
        metric.compute()
    with pytest.raises(ValueError):
        HammingPrecisionAtK(k=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_metric_on_gpu_fed_with_cpu_codes():
    metric = HammingMAP(top_k=3).to("cuda")
    metric.update(Q_CODES, Q_LABELS, database=False)
    metric.update(DB_CODES, DB_LABELS, database=True)
    got = metric.compute()
    assert got.device.type == "cuda"
    assert got.item() == pytest.approx(mean_average_precision(Q_CODES, Q_LABELS, DB_CODES, DB_LABELS, top_k=3).item())
    cpu = mean_average_precision(Q_CODES.cuda(), Q_LABELS.cuda(), DB_CODES.cuda(), DB_LABELS.cuda(), top_k=3)
    assert cpu.item() == pytest.approx(got.item())


@pytest.mark.parametrize("bits", [16, 33, 64, 256])
def test_bf16_and_float32_distance_paths_agree(monkeypatch, bits):
    """The fast bfloat16 inner product must give exactly the float32 distances."""
    from crossmedia.tasks.hashing import metrics

    g = torch.Generator().manual_seed(bits)
    q = torch.randint(0, 2, (50, bits), generator=g).float() * 2 - 1
    db = torch.randint(0, 2, (300, bits), generator=g).float() * 2 - 1
    results = []
    for fast in (True, False):
        monkeypatch.setattr(metrics, "_bf16_is_fast", lambda device_type, fast=fast: fast)
        results.append(metrics._flat_distances(q, db.T.contiguous()))
    assert torch.equal(results[0], results[1])
    expected = (q[:, None, :] != db[None, :, :]).sum(-1) + torch.arange(50)[:, None] * (bits + 1)
    assert torch.equal(results[0], expected.int())


@pytest.mark.parametrize("bits,k", [(6, 1), (6, 300), (64, 17), (70, 45), (130, 300)])
def test_cpu_kernel_and_torch_ranking_agree(bits, k):
    """The CPU kernel and the PyTorch path (what GPUs run) rank identically, ties by index."""
    from crossmedia.tasks.hashing import kernels, metrics

    g = torch.Generator().manual_seed(bits + k)
    q = torch.where(torch.rand(23, bits, generator=g) < 0.5, -1.0, 1.0)
    db = torch.where(torch.rand(300, bits, generator=g) < 0.5, -1.0, 1.0)
    db[150:] = db[:150]  # every distance tied at least twice
    torch_order = metrics._nearest(metrics._flat_distances(q, db.T.contiguous()), bits, k)
    db_bits_t = np.ascontiguousarray(kernels.pack_bits(db.numpy()).T)
    for threads in (1, 2):
        order = kernels.nearest(kernels.pack_bits(q.numpy()), db_bits_t, bits, k, threads)
        np.testing.assert_array_equal(order, torch_order.numpy())
    distance = (q[:, None, :] != db[None, :, :]).sum(-1)  # (23, 300) by hand
    ranked = distance.gather(1, torch.from_numpy(order))
    assert (ranked[:, 1:] >= ranked[:, :-1]).all()
    ties = ranked[:, 1:] == ranked[:, :-1]
    assert (torch.from_numpy(order)[:, 1:] > torch.from_numpy(order)[:, :-1])[ties].all()


def test_pack_bits_popcount_is_the_hamming_distance():
    from crossmedia.tasks.hashing import kernels

    signs = np.array([[1, -1, 1] + [-1] * 66, [-1, -1, 1] + [1] * 66], dtype=np.float32)  # 69 bits
    packed = kernels.pack_bits(signs)
    assert packed.shape == (2, 2) and packed.dtype == np.uint64
    assert packed[0, 0] == 0b101 and packed[0, 1] == 0  # bit b set where the sign is +1
    assert sum(bin(int(a ^ b)).count("1") for a, b in zip(*packed)) == 1 + 66
    with pytest.raises(ValueError, match="65535"):
        kernels.nearest(packed, packed.T.copy(), 2**16, 1, 1)


@pytest.mark.parametrize("top_k", [None, 7])
@pytest.mark.parametrize("multi_hot", [False, True])
def test_hamming_map_is_the_shared_ranking_map_on_minus_distances(top_k, multi_hot):
    """One protocol: Hamming mAP equals crossmedia.metrics.ranking's label mAP on −distance (many ties)."""
    from crossmedia.metrics import ranking

    gen = torch.Generator().manual_seed(5)
    q, db = torch.randn(40, 6, generator=gen), torch.randn(90, 6, generator=gen)  # 6 bits: ties everywhere
    if multi_hot:
        ql, dl = (torch.rand(40, 70, generator=gen) < 0.03).long(), (torch.rand(90, 70, generator=gen) < 0.03).long()
    else:
        ql, dl = torch.randint(0, 5, (40,), generator=gen), torch.randint(0, 5, (90,), generator=gen)
    scores = -hamming_distance(q, db)  # (40, 90) int64
    expected = ranking.mean_average_precision(scores, ql, dl, top_k=top_k)
    assert mean_average_precision(q, ql, db, dl, top_k=top_k).item() == pytest.approx(expected.item(), abs=1e-6)
