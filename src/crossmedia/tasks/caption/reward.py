"""The self-critical reward: CIDEr-D, optionally minus a penalty for n-grams repeated beyond the references.

After self-critical training from the XE model, the Up-Down captioner learned to list two objects
("there is a blue diamond and a ...") faster than it learned which object comes second, and filled
the second place with the first object again ("... and a blue diamond") on a quarter of the test
scenes. CIDEr-D does not favour that repeat (on a training sample it scores below stopping after
the first object, and far below naming the right second one), but it barely tells it apart either:
clipping only stops the repeated n-grams from earning *more*, and the caption's norm grows a little.
So the policy gradient against the repeat is weak and shared with the rest of the caption.

:func:`excess_ngrams` measures the repeat directly, with the references only (never the scene's
ground truth): the repeats of n-grams a candidate uses more often than once and than *any* of its references does,

    excess(c) = (1/N) sum_{n=1..N} sum_g max(0, count_c(g) - max(1, max_r count_r(g))),   g of order n,

(BLEU's clip to the largest reference count, kept as a count instead of dropped; an n-gram no
reference has is CIDEr-D's business, not a repeat, so its first use is free). A caption that
repeats nothing no reference repeats scores 0; "a blue diamond and a blue diamond" against
references that name one blue diamond scores (2 + 2 + 1 + 0) / 4 = 1.25. :class:`CaptionReward`
returns

    r(c) = CIDEr-D(c) - lambda * excess(c)

with ``lambda = repetition_penalty`` (0: plain CIDEr-D, the earlier entries' reward).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["excess_ngrams", "CaptionReward"]


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def excess_ngrams(candidate: str, references: Sequence[str], n: int = 4) -> float:
    """Mean over orders 1..n of the repeats of ``candidate``'s n-grams beyond once and beyond every reference's count."""
    words, ref_words = candidate.split(), [r.split() for r in references]
    total = 0
    for order in range(1, n + 1):
        most: Counter = Counter()
        for ref in ref_words:
            most |= _ngrams(ref, order)  # Counter union keeps the max count
        total += sum(max(0, c - max(1, most[g])) for g, c in _ngrams(words, order).items())
    return total / n


class CaptionReward:
    """``r(c) = CIDEr-D(c) - repetition_penalty * excess_ngrams(c)`` (module docstring).

    ``scorer``: a :class:`~crossmedia.tasks.caption.cider.CiderD` with the training references'
    document frequencies; ``references[i]``: image i's training references as the model can write them.
    """

    def __init__(self, scorer, references: Sequence[Sequence[str]], *, repetition_penalty: float = 0.0):
        if repetition_penalty < 0:
            raise ValueError(f"repetition_penalty must be >= 0, got {repetition_penalty}")
        self.scorer, self.references, self.repetition_penalty = scorer, references, repetition_penalty

    def __call__(self, candidates: Sequence[str], images: Sequence[int]) -> np.ndarray:
        """(len(candidates),) rewards; ``images[j]`` is the training image of ``candidates[j]``."""
        refs = [self.references[i] for i in images]
        rewards = np.asarray(self.scorer.scores(candidates, refs), dtype=np.float64)
        if self.repetition_penalty:
            rewards = rewards - self.repetition_penalty * np.array([excess_ngrams(c, r) for c, r in zip(candidates, refs)])
        return rewards
