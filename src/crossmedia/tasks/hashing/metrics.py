"""Evaluation of deep hashing by Hamming ranking: mAP@K, precision@K, precision–recall by radius.

The protocol of the deep hashing literature (DeepHash-pytorch's ``CalcTopMap``, used by CSQ,
Yuan et al., CVPR 2020, arXiv 1908.00347): binarise query and database codes with sign
(sign(0) = +1), rank the database for each query by Hamming distance, and call a database item
relevant when it shares at least one label with the query. For K-bit ±1 codes the Hamming
distance is d(q, x) = (K − q·x) / 2, so all distances come from one matrix product.

Labels are multi-hot (N, C) (nonzero means "has the label"), or class indices (N,) on both sides,
in which case relevant means "same class".

Queries are processed in chunks, so memory stays bounded for any number of queries. Ranking
sorts no full row: distances are small integers, so a per-query histogram gives where each
distance's items start (a counting sort). On the CPU a fused numba kernel (:mod:`.kernels`) does
this per query on bit-packed codes (popcount distances, histogram, one placing scan; 28-41x the
per-query NumPy loop on 2 cores in ``bench/hashing_map.py``); on GPUs, PyTorch ops do it per chunk:
one matrix product for the distances, one ``bincount`` for the histograms, and one stable sort of
only the items within each query's top-K radius (``_nearest``).

What is not about Hamming codes is shared with every ranking task and lives in
:mod:`crossmedia.metrics.ranking`: the label checks and packed label sets, the relevance of the
ranked items, AP@K from them and the query chunks. This module only ranks by Hamming distance.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from crossmedia.metrics.ranking import (CHUNK_ELEMENTS, average_precision, check_k, check_label_pair,
                                        check_labels, label_relevance, pack_label_sets, query_chunks,
                                        ranked_relevance)

__all__ = [
    "hamming_distance",
    "mean_average_precision",
    "precision_at_k",
    "pr_curve",
    "HammingMAP",
    "HammingPrecisionAtK",
    "HammingPRCurve",
]


# helpers

def _signs(codes: Tensor, name: str) -> Tensor:
    """±1 float codes from real-valued or ±1 codes, sign(0) = +1: (N, K) -> (N, K)."""
    if codes.ndim != 2:
        raise ValueError(f"{name} must be (N, bits), got shape {tuple(codes.shape)}")
    if codes.dtype == torch.bool:
        raise ValueError(f"{name} is boolean; pass ±1 (or real-valued) codes, sign(0) counts as +1")
    return torch.where(codes >= 0, 1.0, -1.0)


def _prepare(q_codes: Tensor, q_labels: Tensor, db_codes: Tensor, db_labels: Tensor):
    """Validate the four inputs and put them on the query codes' device."""
    device = q_codes.device
    q, db = _signs(q_codes, "q_codes"), _signs(db_codes.to(device), "db_codes")
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"q_codes have {q.shape[1]} bits but db_codes have {db.shape[1]}")
    if len(q) == 0 or len(db) == 0:
        raise ValueError(f"need at least one query and one database item, got {len(q)} and {len(db)}")
    ql, dl = check_label_pair(q_labels, db_labels, len(q), len(db), device)
    return q, ql, db, dl


def _exact_rows(bits: int) -> int:
    """Most queries per chunk for which _flat_distances' codes c·(K+1) stay exact in float32."""
    return max(1, (2**22 - 1) // (bits + 1))


def _bf16_is_fast(device_type: str) -> bool:
    """bf16 matmul pays off on GPUs. On CPUs, even with AVX512-BF16, the casts to and from
    bf16 cost more than the matmul saves at these shapes (measured: 0.18 s vs 0.14 s for the
    bench/hashing_map.py problem on 2 cores), so the float32 path is used there."""
    return device_type == "cuda"


def _flat_distances(q: Tensor, db_t: Tensor) -> Tensor:
    """Row-major flat codes r·(K+1) + d(q_r, x_j) of a chunk: (c, K), (K, N) -> (c, N) int32.

    d = K/2 − (q·x)/2. The inner products of ±1 codes are even integers in [−K, K], exact in
    bfloat16 for K ≤ 256 (8 significant bits cover every even integer up to 512), so where bf16
    matmul is fast it is used; otherwise one float32 addmm, exact for c·(K+1) < 2^22. The flat
    code orders pairs by (query, distance), and bincount over it gives per-query histograms.
    """
    c, bits = q.shape
    if bits <= 256 and _bf16_is_fast(q.device.type):
        inner = (q.to(torch.bfloat16) @ db_t.to(torch.bfloat16)).to(torch.int32)  # (c, N)
        base = torch.arange(c, device=q.device, dtype=torch.int32) * (bits + 1) + bits // 2  # (c,)
        return base[:, None] - inner.div_(2, rounding_mode="floor")  # (c, N)
    base = torch.arange(c, device=q.device, dtype=torch.float32) * (bits + 1) + bits / 2  # (c,)
    return torch.addmm(base[:, None], q, db_t, alpha=-0.5).to(torch.int32)  # (c, N)


def _nearest(flat: Tensor, bits: int, k: int) -> Tensor:
    """Indices of the k nearest database items per query, by distance then index: (c, N) -> (c, k).

    A counting pass instead of a sort of every row: the per-query distance histogram gives the
    radius r* within which the k nearest lie; only items within r* (about k per query) are
    kept, and one stable sort of their flat codes (row, distance) orders them, ties by index.
    """
    c, width = len(flat), bits + 1
    counts = torch.bincount(flat.flatten(), minlength=c * width).view(c, width)  # (c, K+1)
    within = counts.cumsum(dim=1)  # (c, K+1) items at distance ≤ r
    radius = (within < k).sum(dim=1)  # (c,) smallest r with at least k items within r
    kept = within.gather(1, radius[:, None]).squeeze(1)  # (c,) items within that radius
    limit = torch.arange(c, device=flat.device, dtype=torch.int32) * width + radius.int()  # (c,)
    rows, items = (flat <= limit[:, None]).nonzero(as_tuple=True)  # (M,), (M,) by row, then index
    items = items[flat[rows, items].sort(stable=True).indices]  # (M,) by row, distance, index
    start = kept.cumsum(dim=0) - kept  # (c,) first kept item of each row
    return items[start[:, None] + torch.arange(k, device=flat.device)]  # (c, k)


def _ranked(q: Tensor, db: Tensor, k: int, chunk_size: int | None) -> Iterator[tuple[slice, Tensor]]:
    """The k nearest database items per query, by distance then index, per chunk of queries.

    On the CPU the fused numba kernel of :mod:`.kernels` ranks (no (c, N) matrix is built, so a
    chunk is bounded by its c × k output); elsewhere ``_flat_distances`` + ``_nearest``.

    Yields:
        (rows, order): the chunk's query slice and its (c, k) int64 database indices.
    """
    bits = db.shape[1]
    if q.device.type == "cpu":
        from crossmedia.tasks.hashing import kernels  # numba: imported (and compiled) on first use

        threads = torch.get_num_threads()
        q_bits = kernels.pack_bits(q.numpy())  # (Q, W)
        db_bits_t = np.ascontiguousarray(kernels.pack_bits(db.numpy()).T)  # (W, N)
        if chunk_size is None:  # enough queries per chunk for every thread, even for mAP@all
            chunk_size = max(threads, CHUNK_ELEMENTS // k)
        for rows in query_chunks(len(q), k, chunk_size):
            yield rows, torch.from_numpy(kernels.nearest(q_bits[rows], db_bits_t, bits, k, threads))
        return
    db_t = db.T.contiguous()  # (K, N)
    for rows in query_chunks(len(q), len(db), chunk_size, _exact_rows(bits)):
        yield rows, _nearest(_flat_distances(q[rows], db_t), bits, k)  # (c, k)


def _ranked_relevance(q: Tensor, ql: Tensor, db: Tensor, dl: Tensor, k: int,
                      chunk_size: int | None) -> Iterator[Tensor]:
    """Relevance of the k nearest database items, in ranking order, per chunk of queries.

    Ranking is by Hamming distance ascending, ties by database index (a stable sort).

    Yields:
        (c, k) bool tensors, one per chunk.
    """
    q_sets, db_sets = pack_label_sets(ql), pack_label_sets(dl)  # (Q, W), (N, W) or (Q,), (N,)
    for rows, order in _ranked(q, db, k, chunk_size):  # (c, k)
        yield ranked_relevance(order, q_sets[rows], db_sets)  # (c, k)


# functional

def hamming_distance(q_codes: Tensor, db_codes: Tensor) -> Tensor:
    """Hamming distances between sign codes: (Q, K), (N, K) -> (Q, N) int64.

    Codes are binarised with sign(0) = +1, then d = (K − q·xᵀ) / 2.
    """
    q, db = _signs(q_codes, "q_codes"), _signs(db_codes.to(q_codes.device), "db_codes")
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"q_codes have {q.shape[1]} bits but db_codes have {db.shape[1]}")
    with torch.autocast(q.device.type, enabled=False):
        inner = q @ db.T  # (Q, N), exact: integers of at most K in float32
    return ((q.shape[1] - inner) / 2).round().long()


@torch.no_grad()
def mean_average_precision(q_codes: Tensor, q_labels: Tensor, db_codes: Tensor, db_labels: Tensor, *,
                           top_k: int | None = None, chunk_size: int | None = None) -> Tensor:
    """mAP@K by Hamming ranking (DeepHash-pytorch ``CalcTopMap`` convention).

    For each query the database is ranked by Hamming distance ascending; ties are broken by
    database order (the earlier item ranks first, as a stable sort does). With rel(k) = 1 when
    the item at rank k shares a label with the query, P(k) the precision of the first k items
    and R_K = Σ_{k≤K} rel(k) the number of relevant items within the top K,

        AP@K = (1 / R_K) Σ_{k≤K} P(k) rel(k),

    and a query with no relevant item in its top K (R_K = 0, e.g. a query without labels) has
    AP@K = 0 and still counts in the mean. mAP@K is the mean over all queries.

    Args:
        q_codes: (Q, K) query codes (real-valued or ±1; sign(0) = +1).
        q_labels: (Q, C) multi-hot, or (Q,) class indices.
        db_codes: (N, K) database codes.
        db_labels: (N, C) multi-hot, or (N,) class indices.
        top_k: K; ``None`` ranks the whole database (mAP@all); values above N mean N.
        chunk_size: queries per chunk; ``None`` keeps a chunk near 1M elements (c × k on the CPU,
            c × N elsewhere).

    Returns:
        scalar float32 tensor on the device of ``q_codes``.
    """
    q, ql, db, dl = _prepare(q_codes, q_labels, db_codes, db_labels)
    k = check_k(top_k, len(db), "top_k")
    total = torch.zeros((), dtype=torch.float64, device=q.device)
    with torch.autocast(q.device.type, enabled=False):
        for rel in _ranked_relevance(q, ql, db, dl, k, chunk_size):
            total += average_precision(rel).sum()
    return (total / len(q)).float()


@torch.no_grad()
def precision_at_k(q_codes: Tensor, q_labels: Tensor, db_codes: Tensor, db_labels: Tensor, *,
                   k: int, chunk_size: int | None = None) -> Tensor:
    """Precision@K by Hamming ranking: mean over queries of (relevant items in the top K) / K.

    Ranking and ties as in :func:`mean_average_precision`. K above the database size N is
    taken as N. Returns a scalar float32 tensor.
    """
    q, ql, db, dl = _prepare(q_codes, q_labels, db_codes, db_labels)
    k = check_k(k, len(db), "k")
    total = torch.zeros((), dtype=torch.float64, device=q.device)
    with torch.autocast(q.device.type, enabled=False):
        for rel in _ranked_relevance(q, ql, db, dl, k, chunk_size):
            total += rel.sum(dtype=torch.float64) / k
    return (total / len(q)).float()


@torch.no_grad()
def pr_curve(q_codes: Tensor, q_labels: Tensor, db_codes: Tensor, db_labels: Tensor, *,
             chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Precision and recall of Hamming-ball retrieval at every radius r = 0..K.

    At radius r a query retrieves every database item at distance ≤ r. Per query,
    precision(r) = relevant retrieved / retrieved and recall(r) = relevant retrieved / relevant.
    The curves average over queries, with these conventions:

    - precision(r) averages over the queries that retrieve at least one item at radius r
      (a query with nothing retrieved is left out at that radius); it is 0 when no query
      retrieves anything at r;
    - recall(r) averages over the queries with at least one relevant item in the database; it is
      0 when no query has one.

    Returns:
        (precision, recall), each a float32 tensor of shape (K + 1,), index r = radius.
    """
    q, ql, db, dl = _prepare(q_codes, q_labels, db_codes, db_labels)
    bits, width = q.shape[1], q.shape[1] + 1
    p_sum = torch.zeros(width, dtype=torch.float64, device=q.device)  # (K+1,)
    p_count = torch.zeros(width, dtype=torch.int64, device=q.device)  # (K+1,)
    r_sum = torch.zeros(width, dtype=torch.float64, device=q.device)  # (K+1,)
    r_count = 0
    db_t = db.T.contiguous()  # (K, N)
    with torch.autocast(q.device.type, enabled=False):
        for rows in query_chunks(len(q), len(db), chunk_size, _exact_rows(bits)):
            flat = _flat_distances(q[rows], db_t)  # (c, N)
            rel = label_relevance(ql[rows], dl)  # (c, N)
            c = len(flat)
            retrieved = torch.bincount(flat.flatten(), minlength=c * width).view(c, width).cumsum(dim=1)  # (c, K+1)
            hits = torch.bincount(flat[rel], minlength=c * width).view(c, width).cumsum(dim=1)  # (c, K+1)
            relevant = hits[:, -1]  # (c,) relevant items in the whole database
            some = retrieved > 0  # (c, K+1)
            p_sum += torch.where(some, hits / retrieved.clamp_min(1), 0.0).sum(dim=0)
            p_count += some.sum(dim=0)
            has = relevant > 0  # (c,)
            r_sum += (hits[has] / relevant[has, None]).sum(dim=0)
            r_count += int(has.sum())
    precision = torch.where(p_count > 0, p_sum / p_count.clamp_min(1), 0.0)
    recall = r_sum / max(r_count, 1)
    return precision.float(), recall.float()


# metrics

class _HammingRetrievalMetric(Metric):
    """Collects query and database codes and labels; subclasses rank at ``compute()``.

    Feed both sides with ``update(codes, labels, database=False|True)``, in any number of
    batches, then call ``compute()``. Codes are stored as int8 signs, multi-hot labels as int8,
    class-index labels as int64; under DDP the lists are gathered (``cat``) before computing,
    which runs on the metric's device whatever device the updates came from. Use
    ``update``/``compute``, not ``forward``: a single batch is not a query set and a database.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    query_codes: list[Tensor]
    query_labels: list[Tensor]
    db_codes: list[Tensor]
    db_labels: list[Tensor]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("query_codes", "query_labels", "db_codes", "db_labels"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, codes: Tensor, labels: Tensor, *, database: bool) -> None:
        """Add a batch of (N, K) codes and (N, C) multi-hot or (N,) class labels to one side."""
        codes, labels = codes.detach(), labels.detach()
        signs = _signs(codes, "codes").to(torch.int8)  # (N, K)
        labels = check_labels(labels, len(signs), "labels")
        labels = labels.to(torch.int8) if labels.ndim == 2 else labels
        if database:
            self.db_codes.append(signs)
            self.db_labels.append(labels)
        else:
            self.query_codes.append(signs)
            self.query_labels.append(labels)

    def _collected(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The concatenated (query codes, query labels, database codes, database labels)."""
        out = []
        for name, side in (("query_codes", "query"), ("query_labels", "query"),
                           ("db_codes", "database"), ("db_labels", "database")):
            state = getattr(self, name)
            parts = [state] if isinstance(state, Tensor) else list(state)
            if sum(len(p) for p in parts) == 0:
                raise RuntimeError(f"{type(self).__name__}.compute(): no {side} items were seen; call "
                                   f"update(codes, labels, database={side == 'database'}) first")
            if len({p.ndim for p in parts}) > 1:
                raise ValueError(f"{type(self).__name__}: {name} mixes multi-hot and class-index labels")
            out.append(torch.cat([p.to(self.device) for p in parts]))
        return tuple(out)


class HammingMAP(_HammingRetrievalMetric):
    """mAP@K by Hamming ranking; see :func:`mean_average_precision`. ``top_k=None``: mAP@all."""

    def __init__(self, *, top_k: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        check_k(top_k, 1, "top_k")
        self.top_k = top_k

    def compute(self) -> Tensor:
        return mean_average_precision(*self._collected(), top_k=self.top_k)


class HammingPrecisionAtK(_HammingRetrievalMetric):
    """Precision@K by Hamming ranking; see :func:`precision_at_k`."""

    def __init__(self, *, k: int, **kwargs) -> None:
        super().__init__(**kwargs)
        check_k(k, 1, "k")
        self.k = k

    def compute(self) -> Tensor:
        return precision_at_k(*self._collected(), k=self.k)


class HammingPRCurve(_HammingRetrievalMetric):
    """Precision and recall by Hamming radius; see :func:`pr_curve`.

    ``compute()`` returns ``{"precision": (K+1,), "recall": (K+1,)}``, index r = radius.
    """

    higher_is_better = None

    def compute(self) -> dict[str, Tensor]:
        precision, recall = pr_curve(*self._collected())
        return {"precision": precision, "recall": recall}
