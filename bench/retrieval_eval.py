"""COCO 5K image–text retrieval metrics: our ``retrieval_metrics`` vs VSE++'s per-query reference loop.

The reference is the evaluation of VSE++ (fartashf/vsepp ``evaluation.py``, its ``i2t`` and
``t2i``), rewritten here with its exact semantics: for each image, ``argsort(d)[::-1]`` over all
25,000 captions and the best position of its 5 captions; for each caption, ``argsort(d)[::-1]``
over the 5,000 images and the position of its image; then R@1/5/10 = 100 · #{r₀ < K} / Q,
medr = ⌊median(r₀)⌋ + 1, meanr = mean(r₀) + 1, rsum = the six recalls' sum.

Both sides get the same precomputed float32 similarity matrix (5,000 × 25,000, one matrix product
of seeded L2-normalised 128-d embeddings; captions are noisy copies of their image so that the
ranks span the whole range): the reference reads the query's row (or column) instead of its
per-query ``numpy.dot``, so the times compare the ranking protocol alone. Ours makes one pass over
the matrix for both directions (numba kernel, chunks of about 1M scores); its peak memory beyond
what the process held before (the matrix) is printed (Linux VmHWM, reset just before it runs).

Each side's time is the best of 3 runs (ours: the first run pays the numba compile where its
on-disk cache is missing). Run: ``python bench/retrieval_eval.py``; ends with
``ratio: <reference / ours>``.
"""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np
import torch

from crossmedia.metrics.retrieval import retrieval_metrics
sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test loads this file by path
from _timing import best_time  # noqa: E402

NUM_IMAGES, DIM, NOISE = 5_000, 128, 3.5
REPEATS = 3
KEYS = ("r1", "r5", "r10", "medr", "meanr")


# helpers

def make_sims(seed: int = 0) -> torch.Tensor:
    """(5000, 25000) float32 cosine similarities; caption j is a noisy copy of image j // 5."""
    g = torch.Generator().manual_seed(seed)
    images = torch.nn.functional.normalize(torch.randn(NUM_IMAGES, DIM, generator=g), dim=1)  # (N, D)
    noise = NOISE * torch.randn(5 * NUM_IMAGES, DIM, generator=g)  # (5N, D)
    captions = torch.nn.functional.normalize(images.repeat_interleave(5, dim=0) + noise / DIM ** 0.5, dim=1)
    return images @ captions.T  # (N, 5N)


def _summary(ranks: np.ndarray) -> tuple[float, ...]:
    recalls = tuple(100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in (1, 5, 10))
    return recalls + (float(np.floor(np.median(ranks)) + 1), float(ranks.mean() + 1))


def reference_i2t(sims: np.ndarray) -> tuple[float, ...]:
    """VSE++'s ``i2t`` on a precomputed (N, 5N) matrix: one query image at a time."""
    n = len(sims)
    ranks = np.zeros(n)
    for index in range(n):
        inds = np.argsort(sims[index])[::-1]
        rank = 1e20
        for i in range(5 * index, 5 * index + 5):
            tmp = np.where(inds == i)[0][0]
            if tmp < rank:
                rank = tmp
        ranks[index] = rank
    return _summary(ranks)


def reference_t2i(sims: np.ndarray) -> tuple[float, ...]:
    """VSE++'s ``t2i``: for each image, its 5 captions as queries over all images."""
    n = len(sims)
    ranks = np.zeros(5 * n)
    for index in range(n):
        d = np.ascontiguousarray(sims[:, 5 * index:5 * index + 5].T)  # (5, N) its captions' scores
        for i in range(len(d)):
            inds = np.argsort(d[i])[::-1]
            ranks[5 * index + i] = np.where(inds == index)[0][0]
    return _summary(ranks)


def reference(sims: np.ndarray) -> dict[str, float]:
    out = {f"i2t_{k}": v for k, v in zip(KEYS, reference_i2t(sims))}
    out |= {f"t2i_{k}": v for k, v in zip(KEYS, reference_t2i(sims))}
    out["rsum"] = sum(out[f"{side}_r{k}"] for side in ("i2t", "t2i") for k in (1, 5, 10))
    return out


def _status_mib(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS: now, VmHWM: the high-water mark) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field} line")


def _reset_peak() -> None:
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap memory back, so that reuse does not hide ours
    Path("/proc/self/clear_refs").write_text("5")  # Linux ≥ 4.0: VmHWM restarts from the current RSS


def main() -> None:
    sims = make_sims()
    print(f"{NUM_IMAGES} images x {5 * NUM_IMAGES} captions, similarity matrix {tuple(sims.shape)} float32 "
          f"({sims.numel() * 4 / 2**20:.0f} MiB), torch threads: {torch.get_num_threads()}")

    retrieval_metrics(sims[:10, :50])  # load (or compile) the numba kernel before measuring memory
    _reset_peak()
    before = _status_mib("VmRSS")
    ours, our_time = best_time(lambda: retrieval_metrics(sims), REPEATS)
    extra = _status_mib("VmHWM") - before
    print(f"ours: peak resident memory beyond what the process held before (the matrix included): "
          f"{extra:.1f} MiB")
    matrix = sims.numpy()
    ref, ref_time = best_time(lambda: reference(matrix), 1)  # one run: it takes seconds, noise is small
    print("metric        reference         ours")
    for key in ref:
        print(f"{key:10s} {ref[key]:12.4f} {ours[key]:12.4f}")
    print(f"reference (per-query numpy loop): {ref_time:.3f} s")
    print(f"ours (retrieval_metrics):         {our_time:.3f} s")
    assert ours == ref, f"metric mismatch: reference {ref} vs ours {ours}"
    print(f"ratio: {ref_time / our_time:.2f}")


if __name__ == "__main__":
    main()
