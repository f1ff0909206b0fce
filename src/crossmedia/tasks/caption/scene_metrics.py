"""Are a caption's words true of its scene? Metrics against the built-in ``scenes``' ground truth.

The built-in :mod:`crossmedia.data.builtin.scenes` keeps each image's objects (``colour``,
``shape``, ...), and its caption words map back to them (:data:`COLOUR_WORDS`, :data:`SHAPE_WORDS`,
:data:`SIZE_WORDS`, synonyms and plurals included). Two kinds of check:

* :func:`word_precision`: is each colour word and each shape word true of *some* object?
* :func:`object_mentions`: does the caption name the right objects, each as often as the scene
  holds it? This catches what word precision cannot: "a big blue diamond and a big blue diamond"
  on a scene with one blue diamond has word precision 1.

A *colour–shape mention* is a colour word followed by a shape word with only size words between
them ("blue diamond", "big blue diamond", "red plus sign"). Its *count* comes from the word before
the (size words +) colour: ``two`` → 2, ``three`` → 3, ``pair of`` → 2, anything else ("a", "an",
"the", "another", "one", nothing) → 1. The scene's words in the grammar only ever write
``number [size] colour shape``, so every reference caption scores 0 errors (tested).

For caption ``c`` of scene ``s``, with ``m_k`` the summed count of its mentions of look
``k = (colour, shape)`` and ``n_k`` the number of objects of look ``k`` in ``s``:

    errors(c, s) = sum_k max(0, m_k - n_k)          (a look absent from s counts every mention)
    named(c, s)  = sum_k min(m_k, n_k)

:func:`object_mentions` returns, over N captions,

    object_errors = (1/N) sum_i errors(c_i, s_i)                 mean wrong mentions per caption
    object_error_rate = (1/N) #{i : errors(c_i, s_i) > 0}         share of captions with one or more
    object_recall = sum_i named(c_i, s_i) / sum_i |s_i|          share of all scene objects named
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from crossmedia.data.builtin.scenes import COLOUR_WORDS, SHAPE_WORDS, SIZE_WORDS

__all__ = ["word_precision", "mentions", "object_mentions"]

_COUNT_WORDS = {"two": 2, "three": 3}


def word_precision(captions: Sequence[str], objects: Sequence[Sequence[dict]]) -> dict[str, float]:
    """How often a caption's colour and shape words are true of its image.

    ``objects[i]`` are image i's objects as stored in the JSON (dicts with ``colour`` and
    ``shape``). A colour word (``COLOUR_WORDS``, synonyms included) is correct when some object has
    that colour, a shape word (``SHAPE_WORDS``, plurals and synonyms included) when some object has
    that shape. Returns ``{"colour": ..., "shape": ...}``, the fraction of correct words over all
    captions (0 when no such word was written). Background words are not colour words here.
    """
    _check_lengths(captions, objects)
    hits = {"colour": [0, 0], "shape": [0, 0]}
    for caption, scene in zip(captions, objects):
        colours, shapes = {o["colour"] for o in scene}, {o["shape"] for o in scene}
        for word in caption.split():
            if word in COLOUR_WORDS:
                hits["colour"][0] += COLOUR_WORDS[word] in colours
                hits["colour"][1] += 1
            if word in SHAPE_WORDS:
                hits["shape"][0] += SHAPE_WORDS[word] in shapes
                hits["shape"][1] += 1
    return {kind: right / total if total else 0.0 for kind, (right, total) in hits.items()}


def mentions(caption: str) -> Counter:
    """``Counter({(colour, shape): count})`` of the caption's colour–shape mentions (module docstring)."""
    words = caption.split()
    found: Counter = Counter()
    for j, word in enumerate(words):
        if word not in SHAPE_WORDS:
            continue
        i = j - 1
        while i >= 0 and words[i] in SIZE_WORDS:
            i -= 1
        if i < 0 or words[i] not in COLOUR_WORDS:
            continue
        k = i - 1
        while k >= 0 and words[k] in SIZE_WORDS:  # "two big red squares"
            k -= 1
        before = words[k] if k >= 0 else ""
        count = _COUNT_WORDS.get(before, 2 if before == "of" and k >= 1 and words[k - 1] == "pair" else 1)
        found[COLOUR_WORDS[words[i]], SHAPE_WORDS[word]] += count
    return found


def object_mentions(captions: Sequence[str], objects: Sequence[Sequence[dict]]) -> dict[str, float]:
    """``{"object_errors", "object_error_rate", "object_recall"}`` of one caption per scene (module docstring)."""
    _check_lengths(captions, objects)
    errors = erroneous = named = total = 0
    for caption, scene in zip(captions, objects):
        held = Counter((o["colour"], o["shape"]) for o in scene)
        said = mentions(caption)
        wrong = sum(max(0, m - held[k]) for k, m in said.items())
        errors, erroneous = errors + wrong, erroneous + (wrong > 0)
        named += sum(min(m, held[k]) for k, m in said.items())
        total += len(scene)
    n = len(captions)
    return {"object_errors": errors / n if n else 0.0, "object_error_rate": erroneous / n if n else 0.0,
            "object_recall": named / total if total else 0.0}


def _check_lengths(captions: Sequence[str], objects: Sequence[Sequence[dict]]) -> None:
    if len(captions) != len(objects):
        raise ValueError(f"{len(captions)} captions for {len(objects)} images: give one scene's objects per caption")
