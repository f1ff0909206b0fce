"""CIDEr-D (Vedantam et al., CVPR 2015, arXiv 1411.5726) computed with array operations.

The numbers are those of pycocoevalcap's ``Cider`` (its ``CiderScorer``, which is CIDEr-D: clipped,
length-penalised, no stemming), to floating-point rounding. Captions are already tokenised: a caption
is split on whitespace, nothing else (no PTB tokenizer, no lowercasing here).

Definition, for a candidate c of image i with references r_1..r_m (m ≥ 1):

* n-grams n = 1..4 of each caption, with term frequency tf(g) = occurrences of g in the caption.
* Document frequency df(g) = number of reference sets (images) in which some reference contains g,
  counted once per image. N = number of reference sets. idf(g) = log N − log max(1, df(g)): an n-gram
  found in no reference set (df = 0) gets the same idf as one found in a single set, log N. With
  N = 1 every idf is 0, hence every score is 0.
* Per order n, a caption's vector v_n(g) = tf(g) · idf(g) over its n-grams of order n, and its norm
  ‖v_n‖ (Euclidean).
* Similarity of c to r_j for order n: s_n = Σ_g min(v_n^c(g), v_n^r(g)) · v_n^r(g) (the "clipping":
  not symmetric in c and r), divided by ‖v_n^c‖ · ‖v_n^r‖ when both norms are non-zero (else left
  as is, which is then 0), times the length penalty exp(−(ℓ_c − ℓ_r)² / (2σ²)), σ = 6.
* The length ℓ of a caption is, as in pycocoevalcap, its number of bigrams: words − 1, and 0 for an
  empty caption. Only differences of lengths enter, and empty captions score 0 anyway, so this
  equals the difference of word counts wherever it matters.
* CIDEr-D(c) = 10 · (1/m) Σ_j (1/4) Σ_n s_n(c, r_j): mean over the 4 orders (also those where the
  candidate has no n-gram), mean over the references, times 10.

Two sources of df and N: :func:`corpus_cider` takes them from the references it evaluates (this is
pycocoevalcap's ``Cider().compute_score``); :meth:`CiderD.scores` takes them from a fixed set, e.g.
the training references for a self-critical reward (:meth:`CiderD.from_references`, cached with
:meth:`CiderD.save` / :meth:`CiderD.load` as JSON).

How it is vectorised: every distinct word gets an integer id, then every distinct n-gram of order
n > 1 the rank of the pair (rank of its (n−1)-gram prefix, id of its last word) among all such
pairs, found with one integer sort per order over all positions of all captions. A batch is then
a list of (image, n-gram, caption slot) occurrences; one more sort groups them into term
frequencies and puts each candidate entry right before the reference entries of the same image
and n-gram, and ``bincount`` sums norms and clipped products per (image, caption, order). Python
touches each word once (split and dictionary look-up) and nothing per n-gram.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["CiderD", "corpus_cider"]

MAX_N = 4  # n-gram orders 1..MAX_N
SIGMA = 6.0  # standard deviation of the Gaussian length penalty
_FORMAT = "CIDEr-D document frequencies"


@dataclass(frozen=True)
class _NgramVocab:
    """Distinct n-grams of some captions, numbered 0..total−1 order by order (all 1-grams first).

    ``words`` maps each distinct word to its id (0..V−1, insertion order). ``keys[n−1]`` is the sorted
    int64 array (count_n,) of the n-grams of order n: the word ids (arange(V)) for n = 1, and for
    n > 1 prefix · V + last word id, the prefix being the rank of the first n−1 words among the
    (n−1)-grams. The j-th n-gram of order n has global id count_1 + … + count_{n−1} + j.
    """

    words: dict[str, int]
    keys: tuple[np.ndarray, ...]

    @property
    def total(self) -> int:
        """Number of distinct n-grams, all orders."""
        return sum(map(len, self.keys))

    def order_index(self) -> np.ndarray:
        """(total,) int8: n − 1 for each n-gram of order n."""
        return np.repeat(np.arange(MAX_N, dtype=np.int8), [len(keys) for keys in self.keys])

    def ids_in(self, other: _NgramVocab) -> np.ndarray:
        """(total,) the global id in ``other`` of each of our n-grams, −1 where ``other`` lacks it."""
        ours, theirs = len(self.words), len(other.words)
        word_ids = np.fromiter((other.words.get(w, -1) for w in self.words), dtype=np.int64, count=ours)
        found = [word_ids]  # per order, rank in other's keys
        for keys, other_keys in zip(self.keys[1:], other.keys[1:]):
            prefix, last = found[-1][keys // ours], word_ids[keys % ours]
            wanted = prefix * theirs + last
            ranks = np.full(len(keys), -1, dtype=np.int64)
            if len(other_keys):
                pos = np.searchsorted(other_keys, wanted).clip(max=len(other_keys) - 1)
                hit = (prefix >= 0) & (last >= 0) & (other_keys[pos] == wanted)
                ranks[hit] = pos[hit]
            found.append(ranks)
        offsets = np.cumsum([0] + [len(keys) for keys in other.keys[:-1]])
        return np.concatenate([np.where(ranks >= 0, ranks + offset, -1) for ranks, offset in zip(found, offsets)])


@dataclass(frozen=True)
class _Tokenised:
    """Captions as n-gram occurrences: every n-gram (n = 1..MAX_N) at every position of every caption.

    ``caption``, ``ngram``: (occurrences,) caption index and global n-gram id (in ``vocab``) of each
    occurrence; ``lengths``: (captions,) words per caption.
    """

    vocab: _NgramVocab
    caption: np.ndarray
    ngram: np.ndarray
    lengths: np.ndarray


def _first_of_runs(sorted_keys: np.ndarray) -> np.ndarray:
    """(len,) bool: True where a sorted key differs from the one before (the first of each run)."""
    first = np.ones(len(sorted_keys), dtype=bool)
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    return first


def _rank(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for keys ≥ 0: (distinct,) sorted, (len(keys),) ranks.

    Sorts the keys with their positions packed into the low bits, when that fits in int64: numpy
    sorts plain integers several times faster than it argsorts them.
    """
    position_bits = max(len(keys) - 1, 0).bit_length()
    if int(keys.max(initial=0)).bit_length() + position_bits > 63:
        return np.unique(keys, return_inverse=True)
    packed = keys << position_bits
    packed |= np.arange(len(keys))
    packed.sort()
    position = packed & ((1 << position_bits) - 1)
    packed >>= position_bits
    new = _first_of_runs(packed)
    ranks = np.empty(len(keys), dtype=np.int64)
    ranks[position] = np.cumsum(new) - 1
    return packed[new], ranks


def _tokenise(captions: Sequence[str]) -> _Tokenised:
    """Split on whitespace and number the distinct n-grams; occurrences are listed order by order."""
    tokens = list(map(str.split, captions))
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    words: defaultdict[str, int] = defaultdict()
    words.default_factory = words.__len__  # a new word gets the next id, in one C-level pass
    word_ids = np.fromiter(map(words.__getitem__, chain.from_iterable(tokens)), dtype=np.int64,
                           count=int(lengths.sum()))
    occurrences = int(sum(np.maximum(lengths - n + 1, 0).sum() for n in range(1, MAX_N + 1)))
    caption, ngram = np.empty(occurrences, dtype=np.int64), np.empty(occurrences, dtype=np.int64)
    caption_of_token = np.repeat(np.arange(len(tokens)), lengths)
    caption[:len(word_ids)], ngram[:len(word_ids)] = caption_of_token, word_ids
    words_left = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(word_ids))  # from this token to the end
    start = np.arange(len(word_ids))  # first token of each occurrence of the current order
    ranks, keys, filled = word_ids, [np.arange(len(words))], len(word_ids)
    for n in range(2, MAX_N + 1):
        fits = words_left[start] >= n
        start = start[fits]
        order_keys, ranks = _rank(ranks[fits] * len(words) + word_ids[start + n - 1])
        segment = slice(filled, filled + len(start))
        caption[segment] = caption_of_token[start]
        np.add(ranks, sum(map(len, keys)), out=ngram[segment])
        keys.append(order_keys)
        filled += len(start)
    return _Tokenised(_NgramVocab(dict(words), tuple(keys)), caption, ngram, lengths)


@dataclass(frozen=True)
class _Entries:
    """Distinct (image, n-gram, slot) triples of some captions, sorted in that order.

    A slot is one caption of its image. ``image``, ``ngram``, ``slot``, ``tf`` (term frequency):
    (entries,); ``run_start``: (runs,) index of the first entry of each (image, n-gram) run.
    """

    image: np.ndarray
    ngram: np.ndarray
    slot: np.ndarray
    tf: np.ndarray
    run_start: np.ndarray

    def run_end(self) -> np.ndarray:
        """(runs,) one past the last entry of each run."""
        end = np.empty_like(self.run_start)
        end[:-1] = self.run_start[1:]
        end[-1:] = len(self.image)
        return end

    def document_frequency(self, total: int) -> np.ndarray:
        """(total,) float64: for each n-gram, the number of images where a slot > 0 holds it."""
        last = self.run_end() - 1  # the highest slot of each run
        return np.bincount(self.ngram[last[self.slot[last] > 0]], minlength=total).astype(np.float64)


def _entries(tok: _Tokenised, image_of_caption: np.ndarray, slot_of_caption: np.ndarray) -> _Entries:
    """Group ``tok``'s occurrences by (image, n-gram, slot); ``*_of_caption``: (captions,)."""
    slot_bits = int(slot_of_caption.max(initial=0)).bit_length()
    ngram_bits = max(tok.vocab.total - 1, 0).bit_length()
    if int(image_of_caption.max(initial=0)).bit_length() + ngram_bits + slot_bits > 63:
        raise ValueError("too many images and n-grams for one call; score them in smaller batches")
    # bit fields rather than products: decoding is then shifts and masks, not int64 divisions
    key = tok.ngram << slot_bits
    key |= ((image_of_caption << (ngram_bits + slot_bits)) | slot_of_caption)[tok.caption]
    key.sort()
    start = np.flatnonzero(_first_of_runs(key))
    tf = np.empty_like(start)  # run lengths; np.diff(append=) would allocate twice
    np.subtract(start[1:], start[:-1], out=tf[:-1])
    tf[-1:] = len(key) - start[-1:]
    key = key[start]
    slot = key & ((1 << slot_bits) - 1)
    key >>= slot_bits  # image and n-gram
    return _Entries(key >> ngram_bits, key & ((1 << ngram_bits) - 1), slot, tf, np.flatnonzero(_first_of_runs(key)))


def _count_references(refs: Sequence[Sequence[str]]) -> np.ndarray:
    """(images,) number of references of each image; each must have one."""
    counts = np.fromiter(map(len, refs), dtype=np.int64, count=len(refs))
    if (counts == 0).any():
        raise ValueError(f"image {int(np.argmin(counts))} has no references; every image needs at least one")
    return counts


def _ref_layout(ref_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image and slot (1..m) of each caption of the flattened references: (refs,) each."""
    first = np.cumsum(ref_counts) - ref_counts
    image = np.repeat(np.arange(len(ref_counts)), ref_counts)
    return image, 1 + np.arange(len(image)) - first[image]


@dataclass(frozen=True)
class _Batch:
    """Candidates with their references: captions ``candidates + flattened refs``.

    Image i's candidate is in slot 0, its references in slots 1..ref_counts[i]. ``ref_counts``:
    (images,); ``image_of_caption``, ``slot_of_caption``, ``lengths`` (words): (captions,).
    """

    vocab: _NgramVocab
    ref_counts: np.ndarray
    image_of_caption: np.ndarray
    slot_of_caption: np.ndarray
    lengths: np.ndarray
    entries: _Entries


def _batch(candidates: Sequence[str], refs: Sequence[Sequence[str]]) -> _Batch:
    """Check that candidates and references pair up, and group their n-grams into entries."""
    if len(candidates) != len(refs):
        raise ValueError(f"got {len(candidates)} candidates but {len(refs)} reference lists; "
                         "need one reference list per candidate")
    counts = _count_references(refs)
    tok = _tokenise(list(chain(candidates, chain.from_iterable(refs))))
    ref_image, ref_slot = _ref_layout(counts)
    image = np.concatenate([np.arange(len(counts)), ref_image])
    slot = np.concatenate([np.zeros(len(counts), dtype=np.int64), ref_slot])
    return _Batch(tok.vocab, counts, image, slot, tok.lengths, _entries(tok, image, slot))


def _clipped_overlap(entries: _Entries, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σ min(candidate, reference) · reference per reference entry whose n-gram the candidate has.

    ``weight``: (entries,) tf · idf. Returns (shared,) the reference entries and their terms.
    """
    run_end = entries.run_end()
    # a run whose first entry is the candidate's (slot 0): the rest of the run shares its n-gram
    with_candidate = np.flatnonzero(entries.slot[entries.run_start] == 0)
    candidate = entries.run_start[with_candidate]
    sharing = run_end[with_candidate] - candidate - 1
    offset_in_run = np.arange(int(sharing.sum())) - np.repeat(np.cumsum(sharing) - sharing, sharing)
    candidate = np.repeat(candidate, sharing)
    ref = candidate + 1 + offset_in_run
    return ref, np.minimum(weight[candidate], weight[ref]) * weight[ref]


def _cider_d(batch: _Batch, frequency: np.ndarray, ref_sets: int) -> np.ndarray:
    """(images,) CIDEr-D of each candidate of ``batch``.

    ``frequency``: (total,) document frequency of each n-gram of ``batch.vocab``; ``ref_sets``: N,
    the number of reference sets it was counted over.
    """
    entries, ref_counts = batch.entries, batch.ref_counts
    images, slots = len(ref_counts), int(ref_counts.max()) + 1
    idf = math.log(ref_sets) - np.log(np.maximum(frequency, 1.0))
    weight = idf[entries.ngram]
    weight *= entries.tf
    cell = entries.image * (slots * MAX_N)  # (image, slot, n − 1), flattened
    cell += entries.slot * MAX_N
    cell += batch.vocab.order_index()[entries.ngram]
    cells = images * slots * MAX_N
    norm = np.sqrt(np.bincount(cell, weight * weight, minlength=cells)).reshape(images, slots, MAX_N)
    shared, clipped = _clipped_overlap(entries, weight)
    overlap = np.bincount(cell[shared], clipped, minlength=cells).reshape(images, slots, MAX_N)[:, 1:]

    norms = norm[:, :1] * norm[:, 1:]  # (images, slots − 1, MAX_N)
    similarity = np.zeros(norms.shape)  # where a norm is 0 the overlap is 0 as well
    np.divide(overlap, norms, out=similarity, where=norms != 0)
    length = np.zeros((images, slots))
    length[batch.image_of_caption, batch.slot_of_caption] = np.maximum(batch.lengths - 1, 0)  # bigrams
    penalty = np.exp(-((length[:, 1:] - length[:, :1]) ** 2) / (2 * SIGMA**2))  # (images, slots − 1)
    return 10.0 * (similarity.mean(axis=2) * penalty).sum(axis=1) / ref_counts  # empty slots add 0


class CiderD:
    """CIDEr-D with fixed document frequencies (see the module docstring for the definition).

    Build it with :meth:`from_references` (or :meth:`load`); :meth:`scores` then scores any batch of
    candidates against their references with those frequencies and N = ``ref_count``.
    """

    def __init__(self, vocab: _NgramVocab, frequency: np.ndarray, ref_count: int):
        self._vocab = vocab
        self._frequency = frequency  # (total,) document frequency of each n-gram of vocab
        self.ref_count = ref_count

    @classmethod
    def from_references(cls, refs: Sequence[Sequence[str]]) -> CiderD:
        """Document frequencies of ``refs``, one list of reference captions per image; N = len(refs)."""
        counts = _count_references(refs)
        if not len(counts):
            raise ValueError("from_references needs at least one image")
        tok = _tokenise(list(chain.from_iterable(refs)))
        entries = _entries(tok, *_ref_layout(counts))
        return cls(tok.vocab, entries.document_frequency(tok.vocab.total), len(counts))

    def scores(self, candidates: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
        """(len(candidates),) float64 CIDEr-D of ``candidates[i]`` against ``refs[i]``."""
        if not len(candidates) and not len(refs):
            return np.zeros(0)
        batch = _batch(candidates, refs)
        ids = batch.vocab.ids_in(self._vocab)
        frequency = np.zeros(len(ids))
        known = ids >= 0
        frequency[known] = self._frequency[ids[known]]
        return _cider_d(batch, frequency, self.ref_count)

    def save(self, path: str | Path) -> None:
        """Write the document frequencies ({"space-separated n-gram": df}) and N as JSON."""
        words = list(self._vocab.words)
        names: list[str] = []
        order_names = words
        for n, keys in enumerate(self._vocab.keys, start=1):
            if n > 1:
                prefix, last = np.divmod(keys, len(words))
                order_names = [f"{order_names[p]} {words[w]}" for p, w in zip(prefix.tolist(), last.tolist())]
            names.extend(order_names)
        table = {name: int(df) for name, df in zip(names, self._frequency.tolist()) if df > 0}
        content = {"format": _FORMAT, "max_n": MAX_N, "ref_count": self.ref_count, "document_frequency": table}
        Path(path).write_text(json.dumps(content), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CiderD:
        """Read what :meth:`save` wrote."""
        content = json.loads(Path(path).read_text(encoding="utf-8"))
        if content.get("format") != _FORMAT or content.get("max_n") != MAX_N:
            raise ValueError(f"{path} is not a {_FORMAT} file for n-grams up to {MAX_N} words")
        table, ref_count = content["document_frequency"], int(content["ref_count"])
        if ref_count < 1:
            raise ValueError(f"{path}: ref_count must be at least 1, got {ref_count}")
        tok = _tokenise(list(table))
        bad = (tok.lengths < 1) | (tok.lengths > MAX_N)
        if bad.any():
            raise ValueError(f"{path}: n-gram {list(table)[int(np.argmax(bad))]!r} is not 1 to {MAX_N} words")
        # each listed n-gram is the longest n-gram of its own "caption"; the shorter ones stay at
        # df 0 unless listed themselves
        whole = tok.vocab.order_index()[tok.ngram] + 1 == tok.lengths[tok.caption]
        listed = np.fromiter(table.values(), dtype=np.float64, count=len(table))
        frequency = np.zeros(tok.vocab.total)
        frequency[tok.ngram[whole]] = listed[tok.caption[whole]]
        return cls(tok.vocab, frequency, ref_count)


def corpus_cider(candidates: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[float, np.ndarray]:
    """(mean, (len(candidates),) per-image scores), df and N taken from ``refs`` themselves.

    Equals pycocoevalcap's ``Cider().compute_score(gts, res)`` with ``res[i] = [candidates[i]]`` and
    ``gts[i] = refs[i]``.
    """
    if not len(candidates) and not len(refs):
        raise ValueError("corpus_cider needs at least one image")
    batch = _batch(candidates, refs)
    per_image = _cider_d(batch, batch.entries.document_frequency(batch.vocab.total), len(refs))
    return float(per_image.mean()), per_image
