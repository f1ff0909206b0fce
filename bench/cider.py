"""CIDEr-D: our vectorised ``corpus_cider`` vs pycocoevalcap's ``CiderScorer``.

The reference is pycocoevalcap's ``CiderScorer`` (what ``Cider().compute_score`` runs): per image,
Python dictionaries of n-gram counts for the candidate and each reference, a dictionary of document
frequencies, and a loop over each candidate's n-grams per reference. Ours
(``crossmedia.tasks.caption.cider.corpus_cider``) numbers every distinct n-gram once and scores the
whole batch with sorts and ``bincount``. Both start from the same whitespace-tokenised strings and
both count their document frequencies from the given references inside the timed call.

Data: 500 images, seeded; each has 5 reference captions and 1 candidate of 8 to 14 words drawn from
a 300-word vocabulary (40 frequent function words, 260 content words, of which each image favours
6, so captions of an image share n-grams the way human ones do). Per-image scores must agree to
1e-6.

Run: ``python bench/cider.py``. Prints both times and the corpus CIDEr-D, and ends with
``ratio: <pycocoevalcap time / our time>``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from pycocoevalcap.cider.cider_scorer import CiderScorer

from crossmedia.tasks.caption.cider import corpus_cider
sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test loads this file by path
from _timing import best_time  # noqa: E402

REPEATS = 10
IMAGES, REFS, WORDS = 500, 5, (8, 14)
FUNCTION_WORDS, CONTENT_WORDS, TOPIC = 40, 260, 6
TOLERANCE = 1e-6


def make_captions(seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """(candidates, refs): IMAGES candidates and REFS references each, as space-separated words."""
    rng = np.random.default_rng(seed)
    function = [f"f{i}" for i in range(FUNCTION_WORDS)]
    content = [f"w{i}" for i in range(CONTENT_WORDS)]
    zipf = 1.0 / np.arange(1, FUNCTION_WORDS + 1)

    def caption(topic: np.ndarray) -> str:
        n = int(rng.integers(WORDS[0], WORDS[1] + 1))
        kind = rng.random(n)  # about 45 % function words, 45 % the image's topic, 10 % anything
        words = np.where(kind < 0.45, rng.choice(function, n, p=zipf / zipf.sum()),
                         np.where(kind < 0.9, rng.choice(topic, n), rng.choice(content, n)))
        return " ".join(words)

    topics = [rng.choice(content, TOPIC, replace=False) for _ in range(IMAGES)]
    refs = [[caption(topic) for _ in range(REFS)] for topic in topics]
    candidates = [caption(topic) for topic in topics]
    return candidates, refs


def reference(candidates: list[str], refs: list[list[str]]) -> tuple[float, np.ndarray]:
    """pycocoevalcap: (mean, per-image scores)."""
    scorer = CiderScorer(n=4, sigma=6.0)
    for candidate, image_refs in zip(candidates, refs):
        scorer += (candidate, image_refs)
    return scorer.compute_score()


def main() -> None:
    candidates, refs = make_captions()
    print(f"{IMAGES} candidates x {REFS} references, {WORDS[0]}-{WORDS[1]} words, "
          f"{FUNCTION_WORDS + CONTENT_WORDS}-word vocabulary")
    (ref_mean, ref_scores), ref_time = best_time(lambda: reference(candidates, refs), REPEATS)
    (our_mean, our_scores), our_time = best_time(lambda: corpus_cider(candidates, refs), REPEATS)
    worst = float(np.abs(np.asarray(ref_scores) - our_scores).max())
    if worst > TOLERANCE or abs(ref_mean - our_mean) > TOLERANCE:
        raise SystemExit(f"MISMATCH: max abs difference of per-image CIDEr-D {worst:.3g}, "
                         f"means {ref_mean:.9f} (pycocoevalcap) vs {our_mean:.9f} (ours)")
    print(f"per-image CIDEr-D: max abs difference {worst:.1e}; corpus CIDEr-D {our_mean:.4f}")
    print(f"pycocoevalcap CiderScorer (best of {REPEATS}): {ref_time:.4f} s   "
          f"ours corpus_cider (best of {REPEATS}): {our_time:.4f} s")
    print(f"ratio: {ref_time / our_time:.1f}")


if __name__ == "__main__":
    main()
