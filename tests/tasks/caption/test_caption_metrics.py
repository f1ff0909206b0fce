"""COCO caption metrics through pycocoevalcap: hand-computed BLEU, identical captions, CIDEr against
corpus_cider, empty captions, the SPICE skip, input errors. Java is started by one module fixture."""
import math
import os
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from crossmedia.tasks.caption import metrics
from crossmedia.tasks.caption.cider import corpus_cider
from crossmedia.tasks.caption.metrics import METRICS, coco_caption_scores

# ids of several types: they are only keys
HAND_CANDIDATES = {
    "dog": "A dog runs on green grass.",
    2: "Two cats two cats",
    ("horse", 1): "a man riding horse",
}
HAND_REFERENCES = {
    "dog": ["A dog is running on the grass.", "The dog runs fast."],
    2: ["Two cats are sleeping together.", "Two small cats sleep on a sofa", "Cats."],
    ("horse", 1): ["A man rides a horse.", "Man riding horse.", "A person on a brown horse on the beach"],
}
# the same after PTB tokenisation (lowercase, punctuation dropped), in the same order
HAND_CANDIDATES_TOKENISED = ["a dog runs on green grass", "two cats two cats", "a man riding horse"]
HAND_REFERENCES_TOKENISED = [
    ["a dog is running on the grass", "the dog runs fast"],
    ["two cats are sleeping together", "two small cats sleep on a sofa", "cats"],
    ["a man rides a horse", "man riding horse", "a person on a brown horse on the beach"],
]

IDENTICAL_REFERENCES = {
    0: ["A brown dog jumps over a fence.", "A dog jumping."],
    1: ["Two children are playing football in a park", "Kids play soccer."],
    2: ["A red bus parked on the street.", "A bus on a road", "The bus is red."],
}
IDENTICAL_CANDIDATES = {i: refs[0] for i, refs in IDENTICAL_REFERENCES.items()}

# both candidates become "" after tokenisation
EMPTY_CANDIDATES = {"a": "", "b": "..."}
EMPTY_REFERENCES = {"a": ["A cat on a mat.", "A cat."], "b": ["A bird in the sky.", "Birds fly."]}


def java_children():
    """Pids of this process's child processes running java (Linux /proc), or None without /proc."""
    if not Path("/proc/self/stat").exists():
        return None
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"java" in comm:
            found.append(int(stat.parent.name))
    return found


def force_spice_missing(monkeypatch):
    """SPICE models reported missing (whatever is cached on this machine), and no warning given yet."""
    monkeypatch.setattr(metrics, "_spice_warned", False)
    monkeypatch.setattr(metrics, "_missing_spice_models",
                        lambda: [Path("/cache/spice/lib/stanford-corenlp-3.6.0-models.jar")])


@pytest.fixture(scope="module")
def scored():
    """Scores of the three cases (hand case with spice=True), and the warnings they gave."""
    with pytest.MonkeyPatch.context() as monkeypatch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        force_spice_missing(monkeypatch)
        hand = coco_caption_scores(HAND_CANDIDATES, HAND_REFERENCES, spice=True)
        identical = coco_caption_scores(IDENTICAL_CANDIDATES, IDENTICAL_REFERENCES)
        empty = coco_caption_scores(EMPTY_CANDIDATES, EMPTY_REFERENCES)
    return SimpleNamespace(hand=hand, identical=identical, empty=empty, warnings=[str(w.message) for w in caught])


def test_keys(scored):
    for scores in (scored.hand, scored.identical, scored.empty):
        assert tuple(scores) == METRICS == ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
        assert all(type(value) is float and math.isfinite(value) for value in scores.values())


def test_bleu_by_hand(scored):
    # Corpus-level BLEU as pycocoevalcap's Bleu (option "closest"): clipped n-gram matches and n-gram
    # counts summed over images; brevity penalty exp(1 − r/c) with c the summed candidate lengths and
    # r the summed lengths of each candidate's closest reference (ties go to the shorter reference).
    # image "dog": "a dog runs on green grass", 6 words; references of 7 and 4 words: closest 7.
    #   1-grams: a, dog, runs, on, grass are in some reference, green in none: 5 of 6.
    #   2-grams: "a dog", "dog runs" found; "runs on", "on green", "green grass" not: 2 of 5.
    # image 2: "two cats two cats", 4 words; references of 5, 7 and 1 words: closest 5.
    #   1-grams: "two" and "cats" twice each, at most once in any reference: clipped to 1 + 1 = 2 of 4.
    #   2-grams: "two cats" twice, clipped to 1; "cats two" not found: 1 of 3.
    # image ("horse", 1): "a man riding horse", 4 words; references of 5, 3 and 9 words: 5 and 3 are
    #   both 1 away, the tie goes to 3. 1-grams: all 4 found ("a" once in the candidate, twice in a
    #   reference: 1). 2-grams: "a man", "man riding", "riding horse" all found: 3 of 3.
    # p1 = (5 + 2 + 4) / (6 + 4 + 4) = 11/14, p2 = (2 + 1 + 3) / (5 + 3 + 3) = 6/11,
    # c = 14 < r = 7 + 5 + 3 = 15: brevity penalty exp(1 − 15/14). (pycocoevalcap adds 1e-15 to the
    # numerators and 1e-9 to the denominators, which moves these values by ~1e-10.)
    penalty = math.exp(1 - 15 / 14)
    assert scored.hand["BLEU-1"] == pytest.approx(11 / 14 * penalty, rel=1e-8)
    assert scored.hand["BLEU-2"] == pytest.approx(math.sqrt(11 / 14 * 6 / 11) * penalty, rel=1e-8)


def test_identical_captions(scored):
    # every candidate is one of its references: all clipped counts equal the totals and the closest
    # reference has the candidate's length, so BLEU-n = 1 up to pycocoevalcap's 1e-15 / 1e-9 terms
    for n in range(1, 5):
        assert scored.identical[f"BLEU-{n}"] == pytest.approx(1, abs=1e-8)
    assert scored.identical["ROUGE-L"] == pytest.approx(1, abs=1e-12)
    assert 0.95 < scored.identical["METEOR"] <= 1  # 1 with METEOR 1.5 here; not asserted exactly
    assert scored.identical["CIDEr"] > scored.hand["CIDEr"]


def test_cider_equals_corpus_cider(scored):
    expected, _ = corpus_cider(HAND_CANDIDATES_TOKENISED, HAND_REFERENCES_TOKENISED)
    assert expected > 0.1
    assert scored.hand["CIDEr"] == pytest.approx(expected, abs=1e-6)


def test_empty_candidates(scored):
    # "" and "..." (punctuation only, "" once tokenised) match nothing: every metric is 0
    for name, value in scored.empty.items():
        assert value == pytest.approx(0, abs=1e-9), name


def test_ptb_tokenisation():
    # the literal tokenised texts used above, and line breaks other than "\n" kept on their line
    captions = list(HAND_CANDIDATES.values()) + [c for refs in HAND_REFERENCES.values() for c in refs]
    expected = HAND_CANDIDATES_TOKENISED + [c for refs in HAND_REFERENCES_TOKENISED for c in refs]
    odd = ["x\ry", "a\u2028b", "one\r\ntwo\nthree", "", "...", "Last one!"]
    assert metrics._ptb_tokenize(captions + odd) == expected + ["x y", "a b", "one two three", "", "", "last one"]


def test_spice_skipped_with_one_warning(scored):
    assert "SPICE" not in scored.hand
    assert len(scored.warnings) == 1
    message = scored.warnings[0]
    assert message.startswith("SPICE skipped")
    assert "CoreNLP" in message and "stanford-corenlp-3.6.0-models.jar" in message
    assert "internet" in message


def test_spice_warning_once_per_process(monkeypatch, recwarn):
    force_spice_missing(monkeypatch)
    warnings.simplefilter("always")
    gts, res = {0: ["a cat"]}, {0: ["a cat"]}
    assert metrics._spice(gts, res) is None
    assert metrics._spice(gts, res) is None
    assert [str(w.message).split(":")[0] for w in recwarn] == ["SPICE skipped"]


def test_missing_spice_models_looks_in_pycocoevalcap():
    import pycocoevalcap.spice

    lib = Path(pycocoevalcap.spice.__file__).parent / "lib"
    for path in metrics._missing_spice_models():
        assert path.parent == lib and not path.exists()
        assert path.name in ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def test_no_java_process_left(scored):
    children = java_children()
    if children is None:
        pytest.skip("needs /proc")
    assert children == []


@pytest.mark.parametrize("candidates, references, message", [
    ({1: "x", "b": "y"}, {1: ["x"]}, "candidates without references: 'b'"),
    ({1: "x"}, {1: ["x"], (2, 3): ["y"]}, "references without a candidate: (2, 3)"),
    ({1: "x", 2: "y"}, {1: ["x"], 3: ["z"]}, "candidates without references: 2; references without a candidate: 3"),
    ({1: "x"}, {1: []}, "image 1 has an empty reference list"),
    ({1: None}, {1: ["x"]}, "candidate of image 1 is of type NoneType, not a string"),
    ({"a": "x"}, {"a": "x"}, "references of image 'a' must be a list of strings, not of type str"),
    ({"a": "x"}, {"a": ["x", 3]}, "reference 1 of image 'a' is of type int, not a string"),
    ({}, {}, "no captions to evaluate"),
])
def test_bad_inputs(candidates, references, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        coco_caption_scores(candidates, references)
