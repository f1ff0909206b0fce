"""Hash centers for Central Similarity Quantization (CSQ).

Yuan et al., "Central Similarity Quantization for Efficient Image and Video Retrieval", CVPR 2020,
arXiv 1908.00347. A *hash center* is a point of the Hamming space {−1, +1}^K given to each class,
and a set of centers should be mutually far apart: the paper asks for pairwise distances that
average at least K/2 (its definition of hash centers), builds them from the rows of a Hadamard matrix when it can
(Algorithm 1: rows of H_K, or of [H_K; −H_K] when K < C ≤ 2K) and otherwise samples every bit from
a Bernoulli(0.5). A multi-label sample's target is the per-bit majority vote of its labels' centers.

All centers here are float tensors of ±1, shape (C, K), with K = ``bits``. The Hamming distance of
two ±1 vectors is (K − a·b) / 2.
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

__all__ = [
    "hadamard_centers",
    "random_centers",
    "default_min_distance",
    "hash_centers",
    "multilabel_centers",
    "min_hamming_distance",
]


# helpers

def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _check_sizes(num_classes: int, bits: int) -> None:
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if int(bits) != bits or bits < 1:
        raise ValueError(f"bits must be a positive integer, got {bits!r}")


def _sylvester_hadamard(n: int) -> Tensor:
    """Sylvester's Hadamard matrix H_n (n a power of two): H_1 = [1], H_2m = [[H, H], [H, −H]]."""
    h = torch.ones(1, 1)
    h2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    while h.shape[0] < n:
        h = torch.kron(h2, h)  # (2m, 2m)
    return h


def _pairwise_hamming(a: Tensor, b: Tensor) -> Tensor:
    """Hamming distances between ±1 rows: (M, K), (N, K) -> (M, N), as (K − a·bᵀ) / 2."""
    return (a.shape[1] - a @ b.T) / 2


# centers

def hadamard_centers(num_classes: int, bits: int) -> Tensor:
    """Hash centers from a Sylvester Hadamard matrix H_K (paper, Algorithm 1).

    Any two rows of H_K are orthogonal, i.e. at Hamming distance exactly K/2. For C ≤ K the
    centers are the first C rows of H_K; for K < C ≤ 2K they are the first C rows of [H_K; −H_K],
    whose pairs are at distance K/2 except the antipodal pairs (h, −h), which are at distance K.
    As in the official code, row 0 is the all-ones vector.

    Args:
        num_classes: C, the number of centers.
        bits: K, the code length; must be a power of two (Sylvester's construction).

    Returns:
        float tensor of ±1, shape (C, K).
    """
    _check_sizes(num_classes, bits)
    if not _is_power_of_two(bits):
        raise ValueError(f"hadamard_centers needs bits to be a power of two, got bits={bits}; "
                         "use random_centers (or hash_centers, which picks) for other lengths")
    if num_classes > 2 * bits:
        raise ValueError(f"hadamard_centers gives at most 2·bits = {2 * bits} centers, "
                         f"got num_classes={num_classes}; use random_centers")
    h = _sylvester_hadamard(bits)  # (K, K)
    both = torch.cat([h, -h])  # (2K, K)
    return both[:num_classes].contiguous()  # (C, K)


def default_min_distance(bits: int) -> int:
    """The minimum pairwise Hamming distance :func:`random_centers` aims for by default.

    ``max(floor(K/4) + 1, floor(K/2 − 2·sqrt(K)))``:

    * ``floor(K/4) + 1`` is DeepHash-pytorch's CSQ condition, min > K/4 (the official notebook
      asks min ≥ 20 at 64 bits, between K/4 and K/3);
    * ``K/2 − 2·sqrt(K)`` is four standard deviations below the mean distance of two random
      balanced codes (mean K/2, std ≈ sqrt(K)/2). It is the larger one from K = 75 bits on, and
      keeps long codes clearly apart (K = 100: 30, K = 256: 96) at a few draws per center.

    Values: K = 16: 5, 32: 9, 48: 13, 64: 17, 100: 30, 256: 96. Balanced codes of even length are
    an even number of bits apart, so a bound of 17 means 18 in practice.
    """
    if int(bits) != bits or bits < 1:
        raise ValueError(f"bits must be a positive integer, got {bits!r}")
    return max(bits // 4 + 1, math.floor(bits / 2 - 2 * math.sqrt(bits)))


def _greedy_centers(num_classes: int, bits: int, bound: int, generator: torch.Generator,
                    max_tries: int) -> Tensor | None:
    """One greedy pass: center k is the first draw at distance ≥ ``bound`` from centers 0..k−1.

    Every center is balanced: floor(K/2) or ceil(K/2) of its bits are −1 (a coin flip decides for
    odd K, so that every bit is ±1 with probability 1/2), placed uniformly at random. Returns
    None when some center needs more than ``max_tries`` draws.
    """
    draws_per_round = 64
    centers = torch.empty(0, bits)
    for _ in range(num_classes):
        tries, accepted = 0, None
        while accepted is None and tries < max_tries:
            n = min(draws_per_round, max_tries - tries)
            tries += n
            negatives = torch.full((n, 1), bits // 2)  # (n, 1)
            if bits % 2:
                negatives += torch.randint(0, 2, (n, 1), generator=generator)
            # a uniform random permutation per row; its `negatives` smallest entries mark the −1 bits
            perm = torch.rand(n, bits, generator=generator).argsort(dim=1)  # (n, K)
            candidates = torch.where(perm < negatives, -1.0, 1.0)  # (n, K)
            if len(centers) == 0:
                accepted = candidates[0]
                break
            nearest = _pairwise_hamming(candidates, centers).min(dim=1).values  # (n,)
            ok = (nearest >= bound).nonzero()
            if len(ok):
                accepted = candidates[ok[0, 0]]
        if accepted is None:
            return None
        centers = torch.cat([centers, accepted[None]])  # (k+1, K)
    return centers


def _mean_at_least_half(centers: Tensor) -> bool:
    """Whether the mean pairwise Hamming distance of ±1 rows is ≥ K/2, in exact integers.

    With S = Σ_i c_i (column sums), Σ_{i<j} c_i·c_j = (‖S‖² − CK)/2, so the mean distance is
    K/2 − (‖S‖² − CK) / (2C(C − 1)): it reaches K/2 exactly when ‖S‖² ≤ CK.
    """
    num_classes, bits = centers.shape
    column_sums = centers.long().sum(dim=0)  # (K,)
    return int((column_sums ** 2).sum()) <= num_classes * bits


def random_centers(num_classes: int, bits: int, *, min_distance: int | None = None, seed: int = 0,
                   max_tries: int = 10_000, max_rounds: int = 100) -> Tensor:
    """Random balanced hash centers: min pairwise distance ≥ the bound AND mean ≥ K/2.

    The paper samples each bit from Bernoulli(0.5) and asks the centers to be, on average, at
    least K/2 apart; DeepHash-pytorch's CSQ redraws the whole set until min > K/4 and
    mean ≥ K/2, the official notebook until min ≥ 20 and mean ≥ 32 at 64 bits. We follow
    DeepHash's rule (with :func:`default_min_distance`, which is stricter for K ≥ 64):

    1. a greedy pass draws balanced centers (K/2 bits at −1; see :func:`_greedy_centers`) and
       accepts center k only at distance ≥ the bound from the ones before it;
    2. the whole set is redrawn (the same generator, going on) until its mean pairwise distance
       is ≥ K/2, at most ``max_rounds`` times; about half the draws pass, since random centers
       average exactly K/2.

    The floor rule: when the default bound cannot be met (short codes, many classes: 16 bits hold
    about 60 centers more than K/4 apart), it is lowered one bit at a time, each try restarting
    from ``seed``, and a warning names the bound reached (16 bits: 4 for 100 or 200 classes, 2
    for 1000). An explicit ``min_distance`` is never lowered. The result is a pure function of
    (num_classes, bits, min_distance, seed).

    Args:
        num_classes: C, the number of centers.
        bits: K, the code length (any positive integer).
        min_distance: the bound; ``None`` means :func:`default_min_distance` (bits) with the floor rule.
        seed: seed of the generator.
        max_tries: draws allowed per center before a pass gives up.
        max_rounds: whole-set draws allowed to reach the mean K/2.

    Returns:
        float tensor of ±1, shape (C, K).

    Raises:
        ValueError: when the bound (an explicit one, or 1) or the mean cannot be met.
    """
    _check_sizes(num_classes, bits)
    explicit = min_distance is not None
    bound = int(min_distance) if explicit else default_min_distance(bits)
    if bound > bits:
        raise ValueError(f"random_centers: min_distance={bound} exceeds bits={bits}; "
                         f"no two {bits}-bit codes are that far apart")
    if max_tries < 1 or max_rounds < 1:
        raise ValueError(f"max_tries and max_rounds must be ≥ 1, got {max_tries} and {max_rounds}")
    target = bound
    while True:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(max_rounds):
            centers = _greedy_centers(num_classes, bits, bound, generator, max_tries)
            if centers is None or num_classes < 2 or _mean_at_least_half(centers):
                break
        else:
            raise ValueError(f"random_centers: no draw of {num_classes} centers of {bits} bits (seed={seed}) "
                             f"reached the mean pairwise distance K/2 = {bits / 2} in max_rounds={max_rounds}; "
                             f"raise max_rounds")
        if centers is not None:
            break
        if explicit or bound <= 1:
            raise ValueError(f"random_centers could not place num_classes={num_classes} centers with "
                             f"bits={bits} at Hamming distance ≥ min_distance={bound} from each other in "
                             f"max_tries={max_tries} draws per center; lower min_distance or use more bits")
        bound -= 1
    if bound < target:
        warnings.warn(f"random_centers: {num_classes} centers of {bits} bits cannot all be ≥ {target} bits "
                      f"apart (more than K/4); they are ≥ {bound} apart. Use more bits to separate them further",
                      stacklevel=2)
    return centers


def hash_centers(num_classes: int, bits: int, *, seed: int = 0) -> Tensor:
    """The CSQ hash centers for C classes and K bits (paper, Algorithm 1).

    - K a power of two and C ≤ 2K: Hadamard rows (:func:`hadamard_centers`: H_K, or [H_K; −H_K]);
    - otherwise (always when K is not a power of two): :func:`random_centers` with its default
      bound (min > K/4, mean ≥ K/2, see there) and the given ``seed``.

    Returns:
        float tensor of ±1, shape (C, K).
    """
    _check_sizes(num_classes, bits)
    if _is_power_of_two(bits) and num_classes <= 2 * bits:
        return hadamard_centers(num_classes, bits)
    return random_centers(num_classes, bits, seed=seed)


def multilabel_centers(labels: Tensor, centers: Tensor, *, seed: int = 0) -> Tensor:
    """Target centers of (multi-label) samples: the per-bit majority vote of their labels' centers.

    For a sample with label set Y, the target is c' = sign(Σ_{y∈Y} c_y) bit by bit (the paper's
    centers for multi-label data, as in the official code). Bits where the vote is tied (sum 0)
    take the value of one fixed random ±1 vector drawn from ``seed`` — the same vector for every
    sample and every call. A one-hot row gives exactly its class center.

    Args:
        labels: (N, C) multi-hot labels (bool, int or float; nonzero means "has the label").
        centers: (C, K) ±1 class centers.
        seed: seed of the tie-breaking vector.

    Returns:
        (N, K) ±1 tensor, with the dtype and device of ``centers``.

    Raises:
        ValueError: on shape mismatch, or when a row of ``labels`` has no label (names the row).
    """
    if labels.ndim != 2 or centers.ndim != 2 or labels.shape[1] != centers.shape[0]:
        raise ValueError(f"multilabel_centers expects labels (N, C) and centers (C, K), "
                         f"got labels {tuple(labels.shape)} and centers {tuple(centers.shape)}")
    hot = (labels != 0).to(centers.dtype).to(centers.device)  # (N, C)
    empty = (hot.sum(dim=1) == 0).nonzero().flatten()
    if len(empty):
        raise ValueError(f"multilabel_centers: row {int(empty[0])} of labels has no label "
                         f"({len(empty)} such rows in all); every sample needs at least one class")
    votes = hot @ centers  # (N, K)
    generator = torch.Generator().manual_seed(seed)
    tie = torch.randint(0, 2, (centers.shape[1],), generator=generator) * 2 - 1  # (K,)
    tie = tie.to(dtype=centers.dtype, device=centers.device)
    signs = torch.where(votes > 0, 1.0, -1.0).to(centers.dtype)  # (N, K)
    return torch.where(votes == 0, tie.expand_as(votes), signs)  # (N, K)


def min_hamming_distance(centers: Tensor) -> int:
    """The smallest Hamming distance between two different rows of ``centers`` (C, K), C ≥ 2.

    Rows are binarised with sign(0) = +1 first, so real-valued codes are accepted too.
    """
    if centers.ndim != 2 or centers.shape[0] < 2:
        raise ValueError(f"min_hamming_distance needs at least two centers (C, K), "
                         f"got shape {tuple(centers.shape)}")
    signs = torch.where(centers >= 0, 1.0, -1.0).double()  # (C, K)
    distance = _pairwise_hamming(signs, signs)  # (C, C)
    distance.fill_diagonal_(float("inf"))
    return int(distance.min().round())
