"""The self-critical reward: repeats beyond every reference counted by hand, and the penalty applied to CIDEr-D."""
import numpy as np
import pytest

from crossmedia.tasks.caption.cider import CiderD
from crossmedia.tasks.caption.reward import CaptionReward, excess_ngrams

REFS = [["there is a blue diamond and a yellow star", "a blue diamond above a yellow star", "two shapes"],
        ["a red star above another red star", "two red stars"]]


def test_excess_ngrams_by_hand():
    # "a blue diamond and a blue diamond": counts a 2, blue 2, diamond 2; the most any reference has:
    # a 2 ("there is a ... and a ..."), blue 1, diamond 1 -> unigram excess 0 + 1 + 1 = 2;
    # bigrams "a blue" 2 and "blue diamond" 2, at most 1 in a reference -> 2; trigram "a blue diamond" 2 vs 1 -> 1;
    # no 4-gram repeats -> 0. Mean over the 4 orders: (2 + 2 + 1 + 0) / 4.
    assert excess_ngrams("a blue diamond and a blue diamond", REFS[0]) == pytest.approx(5 / 4)
    # a reference that repeats "red star" licenses the repeat
    assert excess_ngrams("a red star above another red star", REFS[1]) == 0.0
    # words no reference has are not repeats (CIDEr-D already scores them): first use free
    assert excess_ngrams("a green circle", REFS[0]) == 0.0
    assert excess_ngrams("green green", REFS[0]) == pytest.approx(1 / 4)  # unigram green once too many
    assert excess_ngrams("", REFS[0]) == 0.0


def test_reward_is_cider_d_minus_the_penalty():
    scorer = CiderD.from_references(REFS)
    candidates = ["a blue diamond and a blue diamond", "a blue diamond and a yellow star", "two red stars"]
    images = [0, 0, 1]
    cider = scorer.scores(candidates, [REFS[i] for i in images])
    plain = CaptionReward(scorer, REFS)
    assert np.allclose(plain(candidates, images), cider)
    penalised = CaptionReward(scorer, REFS, repetition_penalty=0.5)
    assert np.allclose(penalised(candidates, images), cider - 0.5 * np.array([5 / 4, 0.0, 0.0]))
    # the repeat now scores below the caption that names the second object instead
    assert penalised(candidates, images)[0] < penalised(candidates, images)[1]
    with pytest.raises(ValueError, match="repetition_penalty"):
        CaptionReward(scorer, REFS, repetition_penalty=-1)
