"""Image–text retrieval metrics with 5 captions per image, by the protocol of VSE++'s evaluation.

Faghri et al., "VSE++: Improving Visual-Semantic Embeddings with Hard Negatives", BMVC 2018,
arXiv 1707.05612; the numbers are those of the ``i2t`` / ``t2i`` functions of its reference
``evaluation.py`` (fartashf/vsepp) on the same similarity matrix.

Setting: N images, 5N captions, caption j describes image j // 5 (the COCO / Flickr30k test
layout), and a similarity matrix S (N, 5N), S[i, j] = s(image i, caption j), higher = closer
(dot product of L2-normalised embeddings, or −E for order embeddings).

- Image → text (annotation): the query image i ranks all 5N captions by S[i, :] (descending);
  its 0-based rank r₀(i) is the best (lowest) position of any of its captions 5i..5i+4.
- Text → image (search): caption j ranks all N images by S[:, j]; r₀(j) is the position of image
  j // 5.
- Per direction, with Q queries: R@K = 100 · #{r₀ < K} / Q for K = 1, 5, 10 (percent),
  medr = ⌊median(r₀)⌋ + 1 (NumPy's median: the two middle values averaged), meanr = mean(r₀) + 1.
- rsum = the sum of the six recalls (i2t and t2i R@1, R@5, R@10), in percent (max 600).
- COCO 5K: the metrics on the whole (5000, 25000) matrix. COCO 1K: the 5000 test images in 5
  folds of 1,000 consecutive images (and their 5,000 captions), the metrics of each fold on its
  diagonal block of S, then every value (R@K, medr, meanr, rsum) averaged over the folds, as the
  reference's ``evalrank(fold5=True)`` does. Note: that function *prints* as "rsum" the mean
  i2t average recall × 6 (an index slip, ``mean_metrics[10]``); we report the mean of the folds'
  rsums, which equals the sum of the six fold-averaged recalls (the value its results table holds).

Ties. The reference ranks with ``numpy.argsort(d)[::-1]``: NumPy's default, unstable sort,
reversed. Where no other candidate scores exactly the best relevant score m of a query, the rank
is simply r₀ = #{candidates scoring > m} and ties cannot matter (relevant items tied with each
other give the same r₀). Where another candidate ties m, we rank that query's row with exactly
the reference's ``numpy.argsort(row)[::-1]`` (same values, same dtype), so the value equals the
reference's on the same NumPy, ties included. Such rows are rare with real-valued embeddings, and
only they leave the vectorised path. (Unlike :mod:`crossmedia.metrics.ranking`, whose ties go by
database index.)

How it is computed: nothing is sorted and no (Q, N) index matrix is made; each query needs one
comparison pass against its best relevant score. From a precomputed S on the CPU, a numba kernel
(:mod:`crossmedia.metrics._retrieval_kernels`) reads S once, in chunks of image rows
(:func:`crossmedia.metrics.ranking.query_chunks`, about 1M scores, copied into one reused NumPy
buffer), and counts both directions in the same pass (per row for i2t, per column accumulated for
t2i); the extra memory is that buffer and a few (5N,) vectors. From embeddings S is never held
whole: each chunk of scores is computed when needed (image rows for i2t, caption rows for t2i, as
the reference computes ``dot(im, captions.T)`` and ``dot(queries, ims.T)`` separately), so the
extra memory is one chunk (a ``similarity`` such as the order violation may make (c, M, D) inside:
pass a smaller ``chunk_size`` then). Off the CPU (GPU) the counting is two PyTorch comparisons per
chunk, with the same ranks.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from einops import rearrange
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from crossmedia.metrics.ranking import query_chunks

__all__ = [
    "CAPTIONS_PER_IMAGE",
    "RECALL_KS",
    "retrieval_ranks",
    "rank_metrics",
    "retrieval_metrics",
    "coco_1k",
    "coco_5k",
    "RetrievalRecall",
]

CAPTIONS_PER_IMAGE = 5
RECALL_KS = (1, 5, 10)
Similarity = Callable[[Tensor, Tensor], Tensor]  # (n, D), (m, D) -> (n, m)
_KERNEL_DEVICES = ("cpu",)  # scores on these devices are counted by the numba kernels; others by PyTorch


# helpers

def _dot(images: Tensor, captions: Tensor) -> Tensor:
    return images @ captions.T  # (n, m)


class _Scores:
    """Chunks of S (image rows) and of S^T (caption rows), from a matrix or from embeddings."""

    def __init__(self, sims: Tensor | None, images: Tensor | None, captions: Tensor | None,
                 similarity: Similarity | None) -> None:
        if sims is not None:
            if images is not None or captions is not None:
                raise ValueError("pass either sims or (images, captions), not both")
            if sims.ndim != 2:
                raise ValueError(f"sims must be an (N images, 5N captions) matrix, got shape {tuple(sims.shape)}")
            self.num_images, self.num_captions = sims.shape
        else:
            if images is None or captions is None:
                raise ValueError("pass sims (N, 5N), or images (N, D) and captions (5N, D)")
            if images.ndim != 2 or captions.ndim != 2 or images.shape[1] != captions.shape[1]:
                raise ValueError(f"images (N, D) and captions (5N, D) must share D, got "
                                 f"{tuple(images.shape)} and {tuple(captions.shape)}")
            self.num_images, self.num_captions = len(images), len(captions)
        if self.num_images == 0 or self.num_captions != CAPTIONS_PER_IMAGE * self.num_images:
            raise ValueError(f"expected {CAPTIONS_PER_IMAGE} captions per image (caption j of image j // 5), "
                             f"got {self.num_images} images and {self.num_captions} captions")
        self.sims, self.images, self.captions = sims, images, captions
        self.similarity = similarity or _dot

    def image_rows(self, rows: slice) -> Tensor:
        """S[rows, :]: (c, 5N)."""
        if self.sims is not None:
            return self.sims[rows]
        return self.similarity(self.images[rows], self.captions)  # (c, 5N)

    def caption_rows(self, rows: slice) -> Tensor:
        """S[:, rows]^T: (c, N), contiguous."""
        if self.sims is not None:
            return self.sims[:, rows].T.contiguous()  # (c, N)
        return self.similarity(self.images, self.captions[rows]).T.contiguous()  # (c, N)


def _reference_rank(row: Tensor, relevant: Tensor) -> int:
    """r₀ of one query as the reference finds it: best position of ``relevant`` in argsort(row)[::-1]."""
    order = np.argsort(row.detach().cpu().numpy())[::-1]  # the reference's ranking, ties included
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return int(position[relevant.cpu().numpy()].min())


def _kernel_dtype(s: Tensor) -> torch.dtype:
    return torch.float64 if s.dtype in (torch.float64, torch.int64, torch.int32) else torch.float32


def _no_nans(nans: Tensor | np.ndarray, first_query: int) -> None:
    if nans.any():
        query = first_query + int(np.asarray(nans).nonzero()[0][0])
        raise ValueError(f"similarities of query {query} contain NaN; a NaN has no rank "
                         "(check the embeddings for NaN first)")


def _chunk_ranks(s: Tensor, members: Tensor, first_query: int) -> Tensor:
    """0-based ranks of a chunk of queries: (c, M) scores, (c, R) relevant indices -> (c,) int64."""
    relevant = s.gather(1, members)  # (c, R)
    best = relevant.max(dim=1).values  # (c,) m
    if s.device.type in _KERNEL_DEVICES:
        from crossmedia.metrics import _retrieval_kernels as kernels  # numba, compiled on first use

        scores = s.to(_kernel_dtype(s)).contiguous().numpy()  # (c, M)
        unused = np.zeros(scores.shape[1], dtype=np.int64)  # (M,) column counts, not needed here
        counts = kernels.count_rows_and_columns(scores, best.to(_kernel_dtype(s)).numpy(),
                                                unused.astype(scores.dtype), unused, unused.copy())
        above, equal, nans = map(torch.from_numpy, counts)  # (c,) each
    else:
        above, equal = (s > best[:, None]).sum(dim=1), (s == best[:, None]).sum(dim=1)  # (c,), (c,)
        nans = torch.isnan(s).sum(dim=1) if s.is_floating_point() else torch.zeros_like(above)  # (c,)
    _no_nans(nans.cpu().numpy(), first_query)
    tied = equal > (relevant == best[:, None]).sum(dim=1)  # (c,) another candidate scores m
    for i in tied.nonzero().flatten().tolist():
        above[i] = _reference_rank(s[i], members[i])
    return above


def _ranks_one_pass(sims: Tensor, chunk_size: int | None) -> tuple[Tensor, Tensor]:
    """Both directions from one read of a CPU (N, 5N) matrix, chunks of image rows (a numba kernel)."""
    from crossmedia.metrics import _retrieval_kernels as kernels  # numba, compiled on first use

    n, m = sims.shape
    dtype = _kernel_dtype(sims)
    caption = torch.arange(m)  # (5N,)
    own = sims[caption // CAPTIONS_PER_IMAGE, caption]  # (5N,) S[j // 5, j], each caption's m
    own_np = own.to(dtype).numpy()
    col_above, col_equal = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    members = CAPTIONS_PER_IMAGE * torch.arange(n)[:, None] + torch.arange(CAPTIONS_PER_IMAGE)  # (N, 5)
    relevant = sims.gather(1, members)  # (N, 5) each image's own captions
    best = relevant.max(dim=1).values  # (N,) m
    ties_within = (relevant == best[:, None]).sum(dim=1)  # (N,) own captions scoring m
    best_np = best.to(dtype).numpy()
    i2t, buffer = [], None
    for rows in query_chunks(n, m, chunk_size):
        s = sims[rows]  # (c, 5N)
        if buffer is None:  # NumPy's memory (huge pages where the OS allows): the pass reads it ~1.5x faster
            buffer = np.empty((len(s), m), dtype=np.float64 if dtype == torch.float64 else np.float32)
        chunk = buffer[:len(s)]  # (c, 5N)
        np.copyto(chunk, (s if s.dtype in (torch.float32, torch.float64) else s.to(dtype)).numpy())
        above, equal, nans = kernels.count_rows_and_columns(chunk, best_np[rows], own_np, col_above, col_equal)
        _no_nans(nans, rows.start)
        above = torch.from_numpy(above)
        tied = torch.from_numpy(equal) > ties_within[rows]  # (c,) another caption scores m
        for i in tied.nonzero().flatten().tolist():
            above[i] = _reference_rank(s[i], members[rows.start + i])
        i2t.append(above)
    t2i = torch.from_numpy(col_above)  # (5N,)
    for j in (col_equal > 1).nonzero()[0].tolist():  # another image scores like the caption's own
        t2i[j] = _reference_rank(sims[:, j].contiguous(), torch.tensor([j // CAPTIONS_PER_IMAGE]))
    return torch.cat(i2t), t2i


# metrics

@torch.no_grad()
def retrieval_ranks(sims: Tensor | None = None, *, images: Tensor | None = None, captions: Tensor | None = None,
                    similarity: Similarity | None = None, chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
    """0-based ranks of every image → text and text → image query, as the reference's ``i2t`` / ``t2i``.

    Args:
        sims: (N, 5N) S[i, j] = s(image i, caption j), caption j of image j // 5; or instead
        images: (N, D) and captions: (5N, D) embeddings, with
        similarity: ``(n, D), (m, D) -> (n, m)`` scores (default: dot product, i.e. cosine for
            L2-normalised embeddings; pass e.g. minus the order violation for order embeddings).
        chunk_size: queries per chunk; ``None`` keeps a chunk near 1M scores.

    Returns:
        (i2t, t2i): (N,) and (5N,) int64 r₀ on the device of the scores (see the module docstring;
        ties as the reference's ``argsort(d)[::-1]``).

    Raises:
        ValueError: on shapes other than N images and 5N captions, or a NaN score.
    """
    scores = _Scores(sims, images, captions, similarity)
    n, m = scores.num_images, scores.num_captions
    if sims is not None and sims.device.type in _KERNEL_DEVICES:
        return _ranks_one_pass(sims, chunk_size)
    offsets = torch.arange(CAPTIONS_PER_IMAGE)  # (5,)
    i2t, t2i = [], []
    for rows in query_chunks(n, m, chunk_size):
        s = scores.image_rows(rows)  # (c, 5N)
        image = torch.arange(rows.start, rows.stop, device=s.device)  # (c,)
        members = CAPTIONS_PER_IMAGE * image[:, None] + offsets.to(s.device)  # (c, 5) its captions
        i2t.append(_chunk_ranks(s, members, rows.start))
    for rows in query_chunks(m, n, chunk_size):
        s = scores.caption_rows(rows)  # (c, N)
        caption = torch.arange(rows.start, rows.stop, device=s.device)  # (c,)
        t2i.append(_chunk_ranks(s, (caption // CAPTIONS_PER_IMAGE)[:, None], rows.start))  # (c, 1) its image
    return torch.cat(i2t), torch.cat(t2i)


def rank_metrics(ranks: Tensor) -> dict[str, float]:
    """R@1, R@5, R@10 (percent), medr and meanr of (Q,) 0-based ranks, computed as the reference does.

    R@K = 100 · #{r₀ < K} / Q; medr = ⌊median(r₀)⌋ + 1; meanr = mean(r₀) + 1 (Python floats).
    """
    if ranks.ndim != 1 or len(ranks) == 0:
        raise ValueError(f"ranks must be a non-empty (Q,) tensor, got shape {tuple(ranks.shape)}")
    r = ranks.detach().cpu().numpy().astype(np.float64)  # (Q,) as the reference's numpy.zeros
    out = {f"r{k}": 100.0 * int((r < k).sum()) / len(r) for k in RECALL_KS}
    out["medr"] = float(np.floor(np.median(r)) + 1)
    out["meanr"] = float(r.mean() + 1)
    return out


def retrieval_metrics(sims: Tensor | None = None, *, images: Tensor | None = None, captions: Tensor | None = None,
                      similarity: Similarity | None = None, chunk_size: int | None = None) -> dict[str, float]:
    """All image–text metrics on one (N, 5N) matrix (or embeddings): COCO 5K when N = 5000.

    Arguments as :func:`retrieval_ranks`. Returns ``{"i2t_r1", "i2t_r5", "i2t_r10", "i2t_medr",
    "i2t_meanr", "t2i_r1", ..., "t2i_meanr", "rsum"}``, recalls in percent, rsum = the six recalls' sum.
    """
    i2t, t2i = retrieval_ranks(sims, images=images, captions=captions, similarity=similarity,
                               chunk_size=chunk_size)
    out = {f"i2t_{key}": value for key, value in rank_metrics(i2t).items()}
    out |= {f"t2i_{key}": value for key, value in rank_metrics(t2i).items()}
    out["rsum"] = sum(out[f"{side}_r{k}"] for side in ("i2t", "t2i") for k in RECALL_KS)
    return out


def coco_5k(sims: Tensor | None = None, **kwargs) -> dict[str, float]:
    """COCO 5K: :func:`retrieval_metrics` on the whole test matrix (any N, 5N in fact)."""
    return retrieval_metrics(sims, **kwargs)


def coco_1k(sims: Tensor | None = None, *, images: Tensor | None = None, captions: Tensor | None = None,
            similarity: Similarity | None = None, fold_size: int = 1000,
            chunk_size: int | None = None) -> dict[str, float]:
    """COCO 1K: the mean over folds of ``fold_size`` consecutive images of :func:`retrieval_metrics`.

    Fold f holds images f·F..(f+1)·F − 1 and their captions 5f·F..5(f+1)·F − 1 (the reference's
    ``evalrank(fold5=True)`` with F = 1000 on the 5000 COCO test images: 5 folds). Every key of
    :func:`retrieval_metrics` is averaged over the folds (rsum: the mean of the folds' rsums).

    Raises:
        ValueError: when N is not a multiple of ``fold_size``.
    """
    n = len(sims) if sims is not None else len(images) if images is not None else 0
    if fold_size < 1 or n == 0 or n % fold_size:
        raise ValueError(f"coco_1k needs a number of images that is a positive multiple of fold_size="
                         f"{fold_size}, got {n} (COCO 1K: the 5000 test images in folds of 1000)")
    folds = []
    for f in range(n // fold_size):
        im, cap = slice(f * fold_size, (f + 1) * fold_size), slice(5 * f * fold_size, 5 * (f + 1) * fold_size)
        if sims is not None:
            folds.append(retrieval_metrics(sims[im, cap], chunk_size=chunk_size))
        else:
            folds.append(retrieval_metrics(images=images[im], captions=captions[cap], similarity=similarity,
                                           chunk_size=chunk_size))
    return {key: sum(fold[key] for fold in folds) / len(folds) for key in folds[0]}


# torchmetrics

class RetrievalRecall(Metric):
    """:func:`retrieval_metrics` (or :func:`coco_1k`) over embeddings collected across batches and DDP.

    ``update(images, captions, index)`` with images (B, D), captions (B, 5, D) (an image's 5
    captions) and index (B,) the image's position in its split. Under DDP the states are gathered
    (``cat``) before ``compute()``; a position seen more than once (the ``DistributedSampler``'s
    padding repeats) keeps its first row, and rows are put in position order, so the result is that
    of the whole split on one process. ``fold_size``: ``None`` for all images at once (COCO 5K),
    or e.g. 1000 for COCO 1K. ``similarity`` as in :func:`retrieval_ranks`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    images: list[Tensor]
    captions: list[Tensor]
    index: list[Tensor]

    def __init__(self, *, fold_size: int | None = None, similarity: Similarity | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fold_size, self.similarity = fold_size, similarity
        for name in ("images", "captions", "index"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, images: Tensor, captions: Tensor, index: Tensor) -> None:
        """Add (B, D) image and (B, 5, D) caption embeddings of the images at positions (B,)."""
        if captions.ndim != 3 or captions.shape[1] != CAPTIONS_PER_IMAGE or images.ndim != 2 \
                or len(captions) != len(images) or len(index) != len(images) \
                or captions.shape[2] != images.shape[1]:
            raise ValueError(f"RetrievalRecall.update takes images (B, D), captions (B, {CAPTIONS_PER_IMAGE}, D) "
                             f"and index (B,), got {tuple(images.shape)}, {tuple(captions.shape)}, "
                             f"{tuple(index.shape)}")
        self.images.append(images.detach())
        self.captions.append(captions.detach())
        self.index.append(index.detach().long())

    def compute(self) -> dict[str, float]:
        images, captions, index = (dim_zero_cat(getattr(self, name)) for name in ("images", "captions", "index"))
        order = index.argsort(stable=True)  # (M,) rows by position, first occurrence first
        ordered = index[order]  # (M,)
        keep = torch.ones_like(ordered, dtype=torch.bool)
        keep[1:] = ordered[1:] != ordered[:-1]  # first row of each position
        rows = order[keep]  # (N,)
        images = images[rows]  # (N, D)
        captions = rearrange(captions[rows], "n k d -> (n k) d")  # (5N, D), caption j of image j // 5
        if self.fold_size is None:
            return retrieval_metrics(images=images, captions=captions, similarity=self.similarity)
        return coco_1k(images=images, captions=captions, similarity=self.similarity, fold_size=self.fold_size)
