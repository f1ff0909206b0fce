"""CPU kernel for Hamming ranking: the k nearest database items per query, in one fused pass.

Compiled with numba (cached on disk after the first call) and imported lazily by
:mod:`crossmedia.tasks.hashing.metrics` only when ranking runs on the CPU; GPU tensors keep the
PyTorch path there. Both give the same order: Hamming distance ascending, ties by database index.

Per query the kernel makes three passes over a (N,) array that stays in cache, with no (Q, N)
matrix ever written to memory:

1. distances: codes are bit-packed into 64-bit words, d = Σ_words popcount(q XOR x);
2. a histogram of the distances (K + 1 bins), whose prefix sums give where each distance's
   items start in the ranking (a counting sort);
3. one scan in database order that drops every item into its slot, so ties keep index order,
   stopping once the first k slots are filled.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = ["pack_bits", "nearest"]


def pack_bits(signs: np.ndarray) -> np.ndarray:
    """±1 codes as bit sets, 64 bits per word: (N, K) -> (N, W) uint64, W = ceil(K / 64).

    Bit b of a code is set when its sign is +1; padding bits are 0 on every code, so they never
    add to a distance.
    """
    n, bits = signs.shape
    words = -(-bits // 64)
    on = np.zeros((n, words * 64), dtype=np.uint8)  # (N, 64W)
    on[:, :bits] = signs > 0
    packed = np.packbits(on.reshape(n, words, 64), axis=-1, bitorder="little")  # (N, W, 8)
    return np.ascontiguousarray(packed.reshape(n, words * 8)).view(np.uint64)  # (N, W)


@njit(inline="always")
def _popcount(x):
    """Set bits of a uint64 (the SWAR idiom; LLVM compiles it to one popcnt instruction)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(parallel=True, cache=True)
def _nearest(q, db_t, bits, k, blocks):
    """The kernel of :func:`nearest`; queries split into ``blocks`` contiguous runs, one per thread."""
    num_q, words = q.shape
    n = db_t.shape[1]
    out = np.empty((num_q, k), dtype=np.int64)
    per = (num_q + blocks - 1) // blocks
    for block in prange(blocks):  # each block owns its scratch arrays
        dist = np.empty(n, dtype=np.uint16)  # (N,)
        start = np.empty(bits + 2, dtype=np.int64)  # (K+2,)
        for i in range(block * per, min(num_q, (block + 1) * per)):
            dist[:] = 0
            for w in range(words):
                qw = q[i, w]
                for j in range(n):
                    dist[j] += _popcount(qw ^ db_t[w, j])
            start[:] = 0
            for j in range(n):
                start[dist[j] + 1] += 1
            for r in range(1, bits + 2):
                start[r] += start[r - 1]  # start[r]: first rank at distance r
            filled = 0
            for j in range(n):
                slot = start[dist[j]]
                if slot < k:
                    out[i, slot] = j
                    start[dist[j]] = slot + 1
                    filled += 1
                    if filled == k:
                        break
    return out


def nearest(q_bits: np.ndarray, db_bits_t: np.ndarray, bits: int, k: int, threads: int) -> np.ndarray:
    """Indices of the k nearest database items per query, by distance then index.

    Args:
        q_bits: (Q, W) uint64 packed query codes (:func:`pack_bits`).
        db_bits_t: (W, N) uint64 packed database codes, transposed (one row per word).
        bits: K, the code length (distances lie in 0..K, K < 65536).
        k: how many to return, 1 ≤ k ≤ N.
        threads: worker threads (capped by numba's pool).

    Returns:
        (Q, k) int64 database indices.
    """
    if not 0 < bits < 2**16:
        raise ValueError(f"code length must be in 1..65535 bits, got {bits}")
    threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return _nearest(q_bits, db_bits_t, bits, k, max(1, min(threads, len(q_bits))))
    finally:
        numba.set_num_threads(previous)
