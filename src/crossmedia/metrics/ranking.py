"""Ranking metrics over a query × database score matrix: mAP@K by labels, R@K, median and mean rank.

Every query ranks the whole database by its row of ``scores`` (Q, N), higher first (for a
distance, pass its negative). **Ties are broken by database index: the earlier item ranks first**,
as a stable sort does; this is the convention of the hashing protocol (DeepHash-pytorch's
``CalcTopMap`` on a stable sort) and it makes every value here reproducible.

Relevance comes from labels on both sides: class indices (Q,) and (N,), relevant when equal, or
multi-hot (Q, C) and (N, C), relevant when they share a label. Class indices also express "these
database items belong to this query": VSE++'s image → text retrieval over 5 captions per image is
``q_labels = arange(n_images)``, ``db_labels = arange(5 · n_images) // 5``, and text → image is
the same with the sides swapped.

- :func:`mean_average_precision`: mAP@K (K = all by default), the protocol of deep hashing and of
  ACMR's label-based cross-modal evaluation (its ``fx_calc_map_label``):
  AP@K = (1 / R_K) Σ_{k≤K} P(k) rel(k), R_K the relevant items within the top K; AP@K = 0 when
  R_K = 0.
- :func:`first_relevant_rank`: per query, the 1-based rank of its best-ranked relevant item; from
  it :func:`recall_at_k` (the fraction of queries with that rank ≤ K: VSE++'s R@K, where an image
  counts as found when any of its captions is in the top K), :func:`median_rank` and
  :func:`mean_rank`, equal to VSE++'s ``i2t``/``t2i`` (``medr = floor(median(r₀)) + 1`` of its
  0-based ranks r₀, ``meanr = mean(r₀) + 1``) on scores without ties; VSE++ leaves ties to NumPy's
  unstable argsort, we break them as above.

Queries are processed in chunks of about 1M score elements, so memory stays bounded for any
number of queries. mAP sorts each row; ranks sort nothing (a counting pass per row, a numba kernel
on the CPU). The building blocks (label checks, packed label sets, per-row average
precision, chunking) are public because the hashing metrics rank by Hamming distance with their
own kernel and feed the same core.
"""
from __future__ import annotations

from typing import Iterator

import torch
from einops import rearrange
from torch import Tensor

__all__ = [
    "mean_average_precision",
    "first_relevant_rank",
    "recall_at_k",
    "median_rank",
    "mean_rank",
    # building blocks
    "CHUNK_ELEMENTS",
    "query_chunks",
    "check_k",
    "check_labels",
    "check_label_pair",
    "label_relevance",
    "pack_label_sets",
    "ranked_relevance",
    "average_precision",
]

CHUNK_ELEMENTS = 2**20  # default bound on a chunk's elements (about 1M)


# building blocks

def query_chunks(num_queries: int, row_elements: int, chunk_size: int | None = None,
                 limit: int | None = None) -> Iterator[slice]:
    """Slices of at most ``chunk_size`` queries (default: chunk × row_elements near 1M), ≤ limit."""
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS // max(1, row_elements))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be ≥ 1, got {chunk_size}")
    if limit is not None:
        chunk_size = min(chunk_size, limit)
    for start in range(0, num_queries, chunk_size):
        yield slice(start, min(start + chunk_size, num_queries))


def check_k(k: int | None, num_db: int, name: str) -> int:
    """K as an int in 1..N; ``None`` means N (the whole database)."""
    if k is None:
        return num_db
    if int(k) != k or k < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {k!r}")
    return min(int(k), num_db)


def check_labels(labels: Tensor, n: int, name: str) -> Tensor:
    """Multi-hot (N, C) -> float 0/1 (nonzero means "has the label"); class indices (N,) -> int64."""
    if labels.ndim not in (1, 2) or len(labels) != n:
        raise ValueError(f"{name} must be (N, C) multi-hot or (N,) class indices with N = {n}, "
                         f"got shape {tuple(labels.shape)}")
    if labels.ndim == 1:
        return labels.long()
    return (labels != 0).float()


def check_label_pair(q_labels: Tensor, db_labels: Tensor, num_q: int, num_db: int,
                     device: torch.device) -> tuple[Tensor, Tensor]:
    """Both sides' labels checked (:func:`check_labels`), of the same kind, on ``device``."""
    ql = check_labels(q_labels.to(device), num_q, "q_labels")
    dl = check_labels(db_labels.to(device), num_db, "db_labels")
    if ql.ndim != dl.ndim or (ql.ndim == 2 and ql.shape[1] != dl.shape[1]):
        raise ValueError(f"q_labels {tuple(q_labels.shape)} and db_labels {tuple(db_labels.shape)} "
                         "must both be (N, C) with the same C, or both (N,)")
    return ql, dl


def label_relevance(q_labels: Tensor, db_labels: Tensor) -> Tensor:
    """Whether each database item shares a label with each query: (c, ·), (N, ·) -> (c, N) bool.

    Labels as returned by :func:`check_labels` (float multi-hot or int64 class indices).
    """
    if q_labels.ndim == 1:
        return q_labels[:, None] == db_labels[None, :]  # (c, N)
    return q_labels @ db_labels.T > 0  # (c, N)


def pack_label_sets(labels: Tensor) -> Tensor:
    """Multi-hot labels as bit sets, 63 classes per int64 word: (N, C) -> (N, W); (N,) unchanged."""
    if labels.ndim == 1:
        return labels
    words = -(-labels.shape[1] // 63)
    hot = torch.nn.functional.pad((labels != 0).long(), (0, words * 63 - labels.shape[1]))  # (N, 63W)
    hot = rearrange(hot, "n (w b) -> n w b", b=63)  # (N, W, 63)
    return (hot << torch.arange(63, device=hot.device)).sum(dim=-1)  # (N, W)


def ranked_relevance(order: Tensor, q_sets: Tensor, db_sets: Tensor) -> Tensor:
    """Relevance of ranked database items: (c, k) indices, (c, ·) query sets, (N, ·) database sets
    (:func:`pack_label_sets`) -> (c, k) bool, True where the item shares a label with its query."""
    if q_sets.ndim == 1:
        return db_sets[order] == q_sets[:, None]  # (c, k)
    return (db_sets[order] & q_sets[:, None, :]).ne(0).any(dim=-1)  # (c, k)


def average_precision(rel: Tensor) -> Tensor:
    """AP@K of each row of a ranked relevance matrix: (c, K) bool -> (c,) float64.

    AP@K = (1 / R_K) Σ_{k≤K} P(k) rel(k) with P(k) the precision of the first k items and
    R_K = Σ_{k≤K} rel(k); a row without a relevant item has AP@K = 0.
    """
    ranks = torch.arange(1, rel.shape[1] + 1, device=rel.device, dtype=torch.float64)  # (K,)
    hits = rel.cumsum(dim=1)  # (c, K) relevant items up to each rank
    precision = hits / ranks  # (c, K) P(k)
    found = hits[:, -1].clamp_min(1)  # (c,) R_K, 1 where 0 (the sum is 0 then)
    return (precision * rel).sum(dim=1) / found  # (c,)


def _check_scores(scores: Tensor, nan: bool = True) -> None:
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"scores must be a non-empty (queries, database) matrix, got shape {tuple(scores.shape)}")
    if nan and scores.is_floating_point() and torch.isnan(scores).any():
        raise ValueError("scores contain NaN; a NaN has no rank (check the embeddings for NaN first)")


# metrics

@torch.no_grad()
def mean_average_precision(scores: Tensor, q_labels: Tensor, db_labels: Tensor, *, top_k: int | None = None,
                           chunk_size: int | None = None) -> Tensor:
    """mAP@K with relevance by shared label; ties by database index (see the module docstring).

    Args:
        scores: (Q, N) similarity of each query to each database item, higher = closer.
        q_labels: (Q, C) multi-hot, or (Q,) class indices.
        db_labels: (N, C) multi-hot, or (N,) class indices.
        top_k: K; ``None`` ranks the whole database (mAP@all); values above N mean N.
        chunk_size: queries per chunk; ``None`` keeps a chunk near 1M scores.

    Returns:
        scalar float32 tensor on the device of ``scores``: the mean over all queries of AP@K
        (a query with no relevant item in its top K counts as 0).
    """
    _check_scores(scores)
    ql, dl = check_label_pair(q_labels, db_labels, *scores.shape, scores.device)
    k = check_k(top_k, scores.shape[1], "top_k")
    q_sets, db_sets = pack_label_sets(ql), pack_label_sets(dl)  # (Q, W), (N, W) or (Q,), (N,)
    total = torch.zeros((), dtype=torch.float64, device=scores.device)
    for rows in query_chunks(len(scores), scores.shape[1], chunk_size):
        order = scores[rows].sort(dim=1, descending=True, stable=True).indices[:, :k]  # (c, k)
        total += average_precision(ranked_relevance(order, q_sets[rows], db_sets)).sum()
    return (total / len(scores)).float()


def _relevant_members(ql: Tensor, dl: Tensor, rows: slice, order: Tensor | None) -> tuple[Tensor, Tensor]:
    """The relevant database items of queries ``rows``: (c, R) indices in database order and (c, R)
    validity. Class-index labels look up the query's class in ``order`` (the database items
    grouped by class, :func:`torch.argsort` stable), R the largest class; multi-hot labels give
    every item, R = N, valid where a label is shared."""
    if order is None:  # multi-hot
        valid = label_relevance(ql[rows], dl)  # (c, N)
        return torch.arange(len(dl), device=dl.device).expand_as(valid), valid  # (c, N), (c, N)
    grouped = dl[order]  # (N,)
    start = torch.searchsorted(grouped, ql[rows])  # (c,)
    count = torch.searchsorted(grouped, ql[rows], right=True) - start  # (c,)
    slots = torch.arange(max(1, int(count.max())), device=dl.device)  # (R,)
    valid = slots < count[:, None]  # (c, R)
    return order[(start[:, None] + slots).clamp(max=len(order) - 1)], valid  # (c, R), (c, R)


def _count_above(s: Tensor, best: Tensor, first: Tensor) -> Tensor:
    """PyTorch path of :func:`crossmedia.metrics.kernels.ranks_from_best`: (c, N), (c,), (c,) -> (c,) ranks."""
    above = (s > best[:, None]).sum(dim=1)  # (c,)
    tied = (s >= best[:, None]).sum(dim=1) > above + 1  # (c,) rows with another item scoring m
    if tied.any():
        t = tied.nonzero().squeeze(1)  # (t,)
        positions = torch.arange(s.shape[1], device=s.device)  # (N,)
        above[t] += ((s[t] == best[t, None]) & (positions < first[t, None])).sum(dim=1)
    return above + 1


@torch.no_grad()
def first_relevant_rank(scores: Tensor, q_labels: Tensor, db_labels: Tensor, *,
                        chunk_size: int | None = None) -> Tensor:
    """The 1-based rank of each query's best-ranked relevant database item: (Q, N) -> (Q,) int64.

    No row is sorted: with m the best relevant score of a query and j* the first relevant index
    scoring m, rank = #{j < j* : s_j ≥ m} + #{j > j* : s_j > m} + 1 (ties by database index).
    m and j* come from the query's relevant items alone (its class members for class-index
    labels); the count is one fused pass per row on the CPU (:mod:`crossmedia.metrics.kernels`)
    and two comparison passes elsewhere. A non-contiguous ``scores`` (e.g. ``sims.T`` for text →
    image) is copied chunk by chunk; a contiguous one is about 2.5× faster.

    Raises:
        ValueError: when a query has no relevant item in the database (its rank is undefined), or
            a score is NaN.
    """
    on_cpu = scores.device.type == "cpu"
    _check_scores(scores, nan=not on_cpu)  # the CPU kernel counts NaNs in its pass
    ql, dl = check_label_pair(q_labels, db_labels, *scores.shape, scores.device)
    order = dl.argsort(stable=True) if dl.ndim == 1 else None  # (N,) items grouped by class
    lowest = float("-inf") if scores.is_floating_point() else torch.iinfo(scores.dtype).min
    ranks = []
    for rows in query_chunks(len(scores), scores.shape[1], chunk_size):
        s = scores[rows]  # (c, N)
        members, valid = _relevant_members(ql, dl, rows, order)  # (c, R), (c, R)
        missing = ~valid.any(dim=1)  # (c,)
        if missing.any():
            query = rows.start + int(missing.nonzero()[0])
            raise ValueError(f"query {query} has no relevant database item (no shared label); "
                             "its rank is undefined: drop it or fix its labels")
        candidates = s.gather(1, members).masked_fill(~valid, lowest)  # (c, R) relevant scores
        best = candidates.max(dim=1).values  # (c,) m
        pick = ((candidates == best[:, None]) & valid).int().argmax(dim=1, keepdim=True)  # (c, 1) first maximum
        first = members.gather(1, pick).squeeze(1)  # (c,) j*
        if not on_cpu:
            ranks.append(_count_above(s, best, first))
            continue
        from crossmedia.metrics import kernels  # numba: imported (and compiled) on first use

        dtype = torch.float64 if s.dtype == torch.float64 else torch.float32 if s.is_floating_point() else torch.int64
        row_ranks, nans = kernels.ranks_from_best(s.to(dtype).contiguous().numpy(), best.to(dtype).numpy(),
                                                  first.numpy())
        if nans.any():
            raise ValueError(f"scores of query {rows.start + int(nans.nonzero()[0][0])} contain NaN; "
                             "a NaN has no rank (check the embeddings for NaN first)")
        ranks.append(torch.from_numpy(row_ranks))
    return torch.cat(ranks)


def _check_ranks(ranks: Tensor) -> Tensor:
    if ranks.ndim != 1 or len(ranks) == 0 or ranks.is_floating_point() or (ranks < 1).any():
        raise ValueError("ranks must be a non-empty (Q,) integer tensor of 1-based ranks "
                         "(from first_relevant_rank)")
    return ranks


def recall_at_k(ranks: Tensor, k: int) -> Tensor:
    """R@K: the fraction of queries whose first relevant item ranks within the top K; float64 scalar.

    ``ranks`` are 1-based (:func:`first_relevant_rank`). Papers report 100 × this value.
    """
    return (_check_ranks(ranks) <= k).double().mean()


def median_rank(ranks: Tensor) -> Tensor:
    """floor of the median of 1-based ranks (the middle two averaged first, as NumPy does); float64.

    Equals VSE++'s ``floor(median(r₀)) + 1`` over its 0-based ranks r₀.
    """
    ordered = _check_ranks(ranks).sort().values.double()  # (Q,)
    n = len(ordered)
    return ((ordered[(n - 1) // 2] + ordered[n // 2]) / 2).floor()


def mean_rank(ranks: Tensor) -> Tensor:
    """Mean of 1-based ranks; float64 scalar (VSE++'s ``mean(r₀) + 1``)."""
    return _check_ranks(ranks).double().mean()
