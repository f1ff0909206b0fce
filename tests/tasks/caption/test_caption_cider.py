"""CIDEr-D: hand-computed cases, pycocoevalcap on random captions, stored frequencies, JSON cache, errors."""
import json
import math

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from crossmedia.tasks.caption.cider import CiderD, _rank, corpus_cider

PENALTY_1 = math.exp(-1 / 72)  # length penalty for a length difference of 1: exp(-1 / (2 * 6^2))


def pycoco(candidates, refs):
    """pycocoevalcap's CIDEr-D: (mean, per-image scores)."""
    mean, scores = Cider().compute_score(dict(enumerate(refs)), {i: [c] for i, c in enumerate(candidates)})
    return mean, np.asarray(scores)


def random_captions(rng, images, vocabulary=12, max_refs=5, with_unknown=True):
    """(candidates, refs): 1–16 words from a small vocabulary (so n-grams repeat), 1–max_refs refs."""
    words = [f"w{i}" for i in range(vocabulary)]

    def caption(extra=()):
        return " ".join(rng.choice(words + list(extra), size=int(rng.integers(1, 17))))

    refs = [[caption() for _ in range(int(rng.integers(1, max_refs + 1)))] for _ in range(images)]
    unknown = ("u1", "u2") if with_unknown else ()  # in no reference
    candidates = [caption(unknown) for _ in range(images)]
    candidates[::7] = [image_refs[0] for image_refs in refs[::7]]  # some candidates equal a reference
    return candidates, refs


# hand-computed values

def test_clipping_by_hand():
    # N = 2 images, every n-gram in one image's references (or none): idf = log 2 for all, so the
    # tf-idf vectors are log 2 * term frequencies and log 2 cancels in each similarity.
    # image 0: candidate "a a a" vs "a b". 1-grams: cand {a: 3}, norm 3; ref {a: 1, b: 1}, norm sqrt 2;
    #   clipped overlap min(3, 1) * 1 = 1 (unclipped it would be 3 * 1 = 3) -> 1 / (3 sqrt 2).
    #   2-grams: {a a: 2} vs {a b: 1}: nothing shared. 3-grams: the ref has none (norm 0): 0.
    #   lengths (bigram counts) 2 vs 1 -> penalty exp(-1/72).
    # image 1: candidate "c" vs "c d": 1-grams 1 / (1 * sqrt 2); no 2-gram in the candidate.
    #   lengths 0 vs 1 -> penalty exp(-1/72).
    mean, scores = corpus_cider(["a a a", "c"], [["a b"], ["c d"]])
    expected = np.array([10 * (1 / (3 * math.sqrt(2))) / 4 * PENALTY_1,
                         10 * (1 / math.sqrt(2)) / 4 * PENALTY_1])
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    assert mean == pytest.approx(expected.mean(), rel=1e-12)
    unclipped = 10 * (3 / (3 * math.sqrt(2))) / 4 * PENALTY_1
    assert scores[0] < unclipped / 2


def test_length_penalty_by_hand():
    # N = 2, every n-gram in exactly one image: idf = log 2 for all, every tf is 1.
    # image 0, candidate "a b c" (3 1-grams, 2 2-grams, 1 3-gram, no 4-gram):
    #   vs "a b c": orders 1–3 give 1, order 4 gives 0, same length -> 3/4.
    #   vs "a b c d e f g h" (8, 7, 6, 5 n-grams): shared 3, 2, 1 -> 3/sqrt(3*8), 2/sqrt(2*7),
    #   1/sqrt(1*6), 0; lengths 2 vs 7 -> penalty exp(-25/72).
    # image 1, "p q" vs "p q": orders 1, 2 give 1, orders 3, 4 give 0 -> 10 * 2/4 = 5.
    far = (3 / math.sqrt(24) + 2 / math.sqrt(14) + 1 / math.sqrt(6)) / 4
    expected = np.array([10 * (3 / 4 + math.exp(-25 / 72) * far) / 2, 5.0])
    _, scores = corpus_cider(["a b c", "p q"], [["a b c", "a b c d e f g h"], ["p q"]])
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    without_penalty = 10 * (3 / 4 + far) / 2
    assert without_penalty - scores[0] > 0.5


def test_single_reference_set_scores_zero():
    # N = 1: idf = log 1 - log max(1, df) = 0 for every n-gram, as in pycocoevalcap
    assert corpus_cider(["a b c"], [["a b c"]])[1].tolist() == [0.0]


def test_empty_captions_score_zero():
    _, scores = corpus_cider(["a b", "", "c"], [["", "a b"], ["c"], [""]])
    np.testing.assert_allclose(scores, pycoco(["a b", "", "c"], [["", "a b"], ["c"], [""]])[1], atol=1e-12)
    assert scores[1] == scores[2] == 0.0


# against pycocoevalcap

@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pycocoevalcap_on_random_captions(seed):
    candidates, refs = random_captions(np.random.default_rng(seed), images=300)
    mean, scores = corpus_cider(candidates, refs)
    ref_mean, ref_scores = pycoco(candidates, refs)
    assert scores.dtype == np.float64 and scores.shape == (300,)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-6)
    assert abs(mean - ref_mean) <= 1e-6
    assert (scores > 0).mean() > 0.5  # the captions do share n-grams


def test_ngrams_across_caption_boundaries_do_not_count():
    # "x y" ends one caption and "y x" starts the next: no n-gram may span two captions
    candidates, refs = ["y x", "x y"], [["a x", "y"], ["y b", "x"]]
    np.testing.assert_allclose(corpus_cider(candidates, refs)[1], pycoco(candidates, refs)[1], atol=1e-12)


# stored document frequencies

def test_stored_frequencies_by_hand():
    # candidate "a b" vs reference "a c"; only 1-grams are shared ("a"), the 2-grams differ.
    candidate, refs = ["a b"], [["a c"]]
    # train A, N = 3: df(a) = df(b) = df(c) = 1 and df("a b") = 0, so every idf is log 3 - log 1:
    # order 1: log3^2 / (sqrt2 log3)^2 = 1/2; orders 2-4: 0.
    train_a = CiderD.from_references([["a c"], ["b d"], ["e"]])
    # train B, N = 4: df(a) = 3, df(c) = 1, df(b) = 0 -> idf(a) = log 4 - log 3, idf(b) = idf(c) = log 4
    train_b = CiderD.from_references([["a"], ["a"], ["a c"], ["z"]])
    idf_a, idf_bc = math.log(4) - math.log(3), math.log(4)
    order_1 = idf_a**2 / (idf_a**2 + idf_bc**2)
    assert train_a.ref_count == 3 and train_b.ref_count == 4
    assert train_a.scores(candidate, refs)[0] == pytest.approx(10 * 0.5 / 4, rel=1e-12)
    assert train_b.scores(candidate, refs)[0] == pytest.approx(10 * order_1 / 4, rel=1e-12)
    assert corpus_cider(candidate, refs)[1][0] == 0.0  # the batch's own frequencies: N = 1


def test_stored_frequencies_match_pycocoevalcap_with_the_training_images_added():
    # scoring with frequencies of train + batch references equals pycocoevalcap on the batch plus
    # the training images (whose candidates do not matter), restricted to the batch
    rng = np.random.default_rng(2)
    train_candidates, train_refs = random_captions(rng, images=150)
    candidates, refs = random_captions(rng, images=100)
    ours = CiderD.from_references(train_refs + refs).scores(candidates, refs)
    _, theirs = pycoco(train_candidates + candidates, train_refs + refs)
    np.testing.assert_allclose(ours, theirs[150:], rtol=0, atol=1e-6)


def test_from_own_references_equals_corpus_cider():
    candidates, refs = random_captions(np.random.default_rng(3), images=200)
    np.testing.assert_allclose(CiderD.from_references(refs).scores(candidates, refs),
                               corpus_cider(candidates, refs)[1], rtol=0, atol=1e-12)


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    _, train_refs = random_captions(rng, images=200)
    candidates, refs = random_captions(rng, images=50)
    cider = CiderD.from_references(train_refs)
    path = tmp_path / "cider_df.json"
    cider.save(path)
    content = json.loads(path.read_text(encoding="utf-8"))  # plain JSON
    assert content["ref_count"] == 200 and content["max_n"] == 4
    table = content["document_frequency"]
    assert all(isinstance(df, int) and 1 <= df <= 200 for df in table.values())
    assert max(len(ngram.split()) for ngram in table) == 4
    loaded = CiderD.load(path)
    assert loaded.ref_count == 200
    np.testing.assert_array_equal(loaded.scores(candidates, refs), cider.scores(candidates, refs))
    loaded.save(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text(encoding="utf-8")) == content


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"document_frequency": {"a": 1}, "ref_count": 1}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a CIDEr-D"):
        CiderD.load(path)


# errors

@pytest.mark.parametrize("score", [corpus_cider, CiderD.from_references([["a b"], ["c"]]).scores])
def test_length_mismatch(score):
    with pytest.raises(ValueError, match=r"3 candidates but 2 reference lists"):
        score(["a", "b", "c"], [["a"], ["b"]])


@pytest.mark.parametrize("score", [corpus_cider, CiderD.from_references([["a b"], ["c"]]).scores])
def test_image_without_references(score):
    with pytest.raises(ValueError, match=r"image 1 has no references"):
        score(["a", "b", "c"], [["a"], [], ["c"]])


def test_training_image_without_references():
    with pytest.raises(ValueError, match=r"image 2 has no references"):
        CiderD.from_references([["a"], ["b"], []])


# internals

def test_rank_equals_unique_on_both_paths():
    rng = np.random.default_rng(5)
    for keys in (rng.integers(0, 1000, 5000), np.array([2**62, 7, 2**62, 0])):  # packed sort, np.unique
        distinct, ranks = _rank(keys)
        expected_distinct, expected_ranks = np.unique(keys, return_inverse=True)
        np.testing.assert_array_equal(distinct, expected_distinct)
        np.testing.assert_array_equal(ranks, expected_ranks)
