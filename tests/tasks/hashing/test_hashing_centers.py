"""Hash centers (CSQ, Yuan 2020): distances, bounds, the dispatcher and multi-label targets."""
import math
import warnings

import pytest
import torch

from crossmedia.tasks.hashing.centers import (
    default_min_distance,
    hadamard_centers,
    hash_centers,
    min_hamming_distance,
    multilabel_centers,
    random_centers,
)


def pairwise(centers: torch.Tensor) -> torch.Tensor:
    """Brute-force Hamming distances by counting differing bits: (C, K) -> (C, C)."""
    return (centers[:, None, :] != centers[None, :, :]).sum(dim=-1)


# Hadamard centers

@pytest.mark.parametrize("bits", [1, 2, 8, 16, 32, 64, 128])
def test_hadamard_rows_are_exactly_half_the_bits_apart(bits):
    centers = hadamard_centers(bits, bits)
    assert centers.shape == (bits, bits)
    assert set(centers.unique().tolist()) <= {-1.0, 1.0}
    d = pairwise(centers)
    off = ~torch.eye(bits, dtype=torch.bool)
    if bits > 1:
        assert (d[off] == bits // 2).all()
        assert min_hamming_distance(centers) == bits // 2


@pytest.mark.parametrize("bits", [8, 32, 64])
def test_hadamard_with_negated_rows(bits):
    centers = hadamard_centers(2 * bits, bits)  # [H; −H]
    d = pairwise(centers)
    off = ~torch.eye(2 * bits, dtype=torch.bool)
    assert (d[off] >= bits // 2).all()
    assert min_hamming_distance(centers) == bits // 2
    i = torch.arange(bits)
    assert (d[i, i + bits] == bits).all()  # antipodal pairs (h, −h)
    assert int((d == bits).sum()) == 2 * bits  # and no other pair is at distance K
    assert torch.equal(centers[bits:], -centers[:bits])
    # a count between K and 2K takes the first rows of [H; −H]
    assert torch.equal(hadamard_centers(bits + 3, bits), centers[: bits + 3])


def test_hadamard_rejects_bad_sizes():
    with pytest.raises(ValueError, match="power of two"):
        hadamard_centers(4, 48)
    with pytest.raises(ValueError, match="num_classes=129"):
        hadamard_centers(129, 64)
    with pytest.raises(ValueError):
        hadamard_centers(0, 64)


# random centers

def test_default_min_distance_values():
    # max(floor(K/4) + 1, floor(K/2 − 2·sqrt(K))): DeepHash's min > K/4, or 4 sigma below K/2 for long codes
    assert [default_min_distance(k) for k in (12, 16, 32, 48, 64, 100, 256)] == [4, 5, 9, 13, 17, 30, 96]
    for k in range(1, 300):
        assert default_min_distance(k) > k / 4
        assert default_min_distance(k) == max(k // 4 + 1, math.floor(k / 2 - 2 * math.sqrt(k)))


def _distances(centers: torch.Tensor) -> torch.Tensor:
    """The C(C−1)/2 pairwise Hamming distances, i < j."""
    d = pairwise(centers)
    i, j = torch.triu_indices(len(centers), len(centers), 1)
    return d[i, j].double()


# (C, K) -> the min distance the floor rule reaches where min > K/4 cannot be met (16 bits hold
# about 60 balanced centers more than 4 bits apart); None: the default bound, > K/4, holds
FLOOR = {(100, 16): 4, (200, 16): 4, (1000, 16): 2}


@pytest.mark.parametrize("bits", [16, 32, 64])
@pytest.mark.parametrize("num_classes", [100, 200, 1000])
def test_random_centers_meet_min_above_quarter_and_mean_at_least_half(num_classes, bits):
    """DeepHash's CSQ conditions on random centers: min pairwise distance > K/4, mean ≥ K/2."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        centers = random_centers(num_classes, bits, seed=0)
    distances = _distances(centers)
    assert distances.mean() >= bits / 2, distances.mean()
    floor = FLOOR.get((num_classes, bits))
    if floor is None:
        assert distances.min() > bits / 4 and distances.min() >= default_min_distance(bits)
        assert not caught
    else:
        assert distances.min() == floor
        [warning] = caught  # the lowered bound is said, not silent
        assert f"are ≥ {floor} apart" in str(warning.message)


def test_random_centers_redraw_reaches_the_mean_that_one_greedy_pass_misses():
    """Seed 0 at C = 200, K = 64: the first greedy pass averages below 32; the redraw does not."""
    from crossmedia.tasks.hashing.centers import _greedy_centers

    first = _greedy_centers(200, 64, default_min_distance(64), torch.Generator().manual_seed(0), 10_000)
    centers = random_centers(200, 64, seed=0)
    assert _distances(first).mean() < 32 <= _distances(centers).mean()
    assert _distances(centers).min() >= 18
    assert torch.equal(centers, random_centers(200, 64, seed=0))  # seed-stable


@pytest.mark.parametrize("num_classes,bits", [(10, 48), (100, 48), (300, 64), (200, 100), (50, 33), (30, 12)])
def test_random_centers_meet_the_default_bound_and_are_balanced(num_classes, bits):
    centers = random_centers(num_classes, bits, seed=3)
    assert centers.shape == (num_classes, bits)
    assert min_hamming_distance(centers) >= default_min_distance(bits)
    assert _distances(centers).mean() >= bits / 2
    d = pairwise(centers)
    assert int(d[~torch.eye(num_classes, dtype=torch.bool)].min()) == min_hamming_distance(centers)
    ones = (centers == 1).sum(dim=1)
    assert ((ones == bits // 2) | (ones == bits - bits // 2)).all()  # K/2 (+1)s; (K±1)/2 when K is odd
    assert ((centers == 1) | (centers == -1)).all()


def test_random_centers_explicit_bound_seed_and_errors():
    centers = random_centers(20, 64, min_distance=24, seed=1)
    assert min_hamming_distance(centers) >= 24
    assert torch.equal(centers, random_centers(20, 64, min_distance=24, seed=1))
    assert not torch.equal(centers, random_centers(20, 64, min_distance=24, seed=2))
    # 8-bit balanced codes: only 70 exist, and few are 6 bits apart
    with pytest.raises(ValueError, match=r"num_classes=100.*bits=8.*min_distance=6"):
        random_centers(100, 8, min_distance=6, max_tries=50)
    with pytest.raises(ValueError, match="exceeds bits"):
        random_centers(3, 8, min_distance=9)
    # the default bound is lowered down to 1 at most: 71 distinct balanced 8-bit codes do not exist
    with pytest.raises(ValueError, match=r"num_classes=71.*min_distance=1"):
        random_centers(71, 8, max_tries=200)


# the dispatcher

def test_hash_centers_dispatch():
    assert torch.equal(hash_centers(10, 64), hadamard_centers(10, 64))
    assert torch.equal(hash_centers(64, 64), hadamard_centers(64, 64))
    assert torch.equal(hash_centers(100, 64), hadamard_centers(100, 64))  # [H; −H]
    assert torch.equal(hash_centers(129, 64, seed=5), random_centers(129, 64, seed=5))  # C > 2K
    # bits not a power of two: always random, even for few classes
    assert torch.equal(hash_centers(10, 48, seed=7), random_centers(10, 48, seed=7))
    assert not torch.equal(hash_centers(10, 48, seed=7), hash_centers(10, 48, seed=8))
    assert min_hamming_distance(hash_centers(10, 48)) >= default_min_distance(48)


# multi-label targets

def test_multilabel_majority_vote_and_tie_break():
    centers = torch.tensor([[1.0, 1.0, 1.0, 1.0],
                            [1.0, -1.0, 1.0, -1.0],
                            [1.0, 1.0, -1.0, -1.0],
                            [-1.0, -1.0, -1.0, -1.0]])
    labels = torch.tensor([[0, 1, 0, 0],   # one-hot: exactly center 1
                           [1, 1, 1, 0],   # sums (3, 1, 1, −1): no ties
                           [1, 1, 0, 0],   # sums (2, 0, 2, 0): bits 1 and 3 tied
                           [1, 0, 0, 1],   # sums all 0: the tie vector itself
                           [0, 1, 1, 1]])  # sums (1, −1, −1, −3)
    out = multilabel_centers(labels, centers, seed=0)
    tie = out[3]
    assert ((tie == 1) | (tie == -1)).all()
    assert torch.equal(out[0], centers[1])
    assert out[1].tolist() == [1.0, 1.0, 1.0, -1.0]
    assert out[2].tolist() == [1.0, tie[1].item(), 1.0, tie[3].item()]
    assert out[4].tolist() == [1.0, -1.0, -1.0, -1.0]
    # the same tie vector for every sample and every call with the same seed
    again = multilabel_centers(labels.bool(), centers, seed=0)
    assert torch.equal(again, out)
    expected = torch.randint(0, 2, (4,), generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert tie.tolist() == expected.float().tolist()


def test_multilabel_one_hot_gives_class_centers_and_seed_changes_ties():
    centers = hash_centers(10, 64)
    assert torch.equal(multilabel_centers(torch.eye(10), centers), centers)
    pair = torch.zeros(1, 10)
    pair[0, [0, 1]] = 1  # rows 0 and 1 of H agree on half the bits: the other half ties
    a, b = multilabel_centers(pair, centers, seed=0), multilabel_centers(pair, centers, seed=1)
    agree = centers[0] == centers[1]
    assert torch.equal(a[0, agree], centers[0, agree])
    assert not torch.equal(a[0, ~agree], b[0, ~agree])


def test_multilabel_rejects_unlabelled_rows_and_bad_shapes():
    centers = hash_centers(3, 8)
    with pytest.raises(ValueError, match="row 1"):
        multilabel_centers(torch.tensor([[1.0, 0, 0], [0, 0, 0]]), centers)
    with pytest.raises(ValueError, match="labels"):
        multilabel_centers(torch.ones(2, 4), centers)


def test_min_hamming_distance_by_hand():
    codes = torch.tensor([[1.0, 1, 1, 1], [1, 1, -1, -1], [0.5, 0, 2, -3]])  # last = (1, 1, 1, −1)
    assert min_hamming_distance(codes) == 1
    with pytest.raises(ValueError):
        min_hamming_distance(codes[:1])
