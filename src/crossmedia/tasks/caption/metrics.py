"""Caption evaluation as in the COCO caption server: BLEU-1..4, METEOR, ROUGE-L, CIDEr (SPICE optional).

:func:`coco_caption_scores` follows pycocoevalcap's ``COCOEvalCap.evaluate()`` step by step:

1. Candidates and references are tokenised with pycocoevalcap's ``PTBTokenizer`` (Stanford
   PTBTokenizer, one caption per line, lowercased; the punctuation tokens in its ``PUNCTUATIONS``
   list are dropped. Brackets come out as ``-lrb-`` etc. and stay, as in pycocoevalcap).
2. The scorers ``Bleu(4)``, ``Meteor()``, ``Rouge()``, ``Cider()`` (and ``Spice()``) each get
   ``compute_score(gts, res)`` with ``gts[i]`` the tokenised references and ``res[i] = [candidate]``.

What the numbers are:

* BLEU-n: corpus-level BLEU (``option="closest"``): clipped n-gram counts and n-gram totals summed
  over all candidates, geometric mean of the precisions 1..n, brevity penalty from the summed
  candidate lengths and the summed lengths of each candidate's closest reference (ties: the shorter).
  pycocoevalcap adds 1e-15 to numerators and 1e-9 to denominators, so a perfect score is 1 − O(1e-9).
* METEOR: METEOR 1.5 (``-l en -norm``) in a Java subprocess, corpus-level from the summed statistics.
* ROUGE-L: LCS F-measure with β = 1.2 against the best reference (max precision and max recall),
  averaged over images.
* CIDEr: pycocoevalcap's ``Cider`` is CIDEr-D (clipped, with the Gaussian length penalty, σ = 6,
  times 10) whose document frequencies come from the references being evaluated, so it depends on
  the whole evaluated set (with a single image every idf is 0 and CIDEr is 0). It equals
  :func:`crossmedia.tasks.caption.cider.corpus_cider` on the tokenised text.
* SPICE: needs the Stanford CoreNLP 3.6.0 jars under ``pycocoevalcap/spice/lib``, which pycocoevalcap
  downloads on first use. When they are missing (or SPICE fails), SPICE is skipped with one warning
  per process and the other metrics are returned; nothing is downloaded.

Departures from pycocoevalcap, none of which changes a score: image ids are replaced by 0..n−1
before scoring (the corpus-level numbers do not depend on ids or their order, and SPICE would need
sortable JSON ids); every line break inside a caption (``str.splitlines``: ``\\r``, ``\\u2028`` …,
not only ``\\n``) becomes a space before tokenisation, as otherwise the tokenizer splits the line
and captions get silently mismatched with their images; candidates and references are tokenised
in one Java call instead of two. Empty captions (also ones that are only punctuation) need no
special care: they score 0 except that ROUGE-L counts an empty candidate against an empty reference
as a match, as pycocoevalcap does.

:class:`CaptionMetric` is the torchmetrics form the LightningModules use: it collects the decoded
token ids of an evaluation loop (synchronised across processes by torchmetrics) and scores them
when the loop ends, by this protocol (``protocol="coco"``, the test loop) or by our CIDEr-D
(``protocol="cider"``, the quick validation score), plus the scene checks of
:mod:`crossmedia.tasks.caption.scene_metrics` when the data has ground-truth objects.

Java must be on the PATH (tokenizer and METEOR). Each call starts the tokenizer once and METEOR once
(a few seconds: METEOR loads its paraphrase tables), and stops the METEOR process before returning.
"""
from __future__ import annotations

import contextlib
import shutil
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torchmetrics import Metric

__all__ = ["METRICS", "coco_caption_scores", "CaptionMetric"]

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
"""Keys of :func:`coco_caption_scores`'s result, in order (plus ``"SPICE"`` when it ran)."""

_spice_warned = False  # the SPICE skip warning is given once per process


def coco_caption_scores(candidates: Mapping[Hashable, str], references: Mapping[Hashable, list[str]], *,
                        spice: bool = False, verbose: bool = False) -> dict[str, float]:
    """Corpus-level COCO caption metrics of one candidate caption per image (see the module docstring).

    ``candidates[i]``: the generated caption of image ``i``; ``references[i]``: its reference
    captions (at least one). Both map the same ids; captions are raw text (tokenised here).
    ``spice``: also compute SPICE if pycocoevalcap's CoreNLP models are cached, else warn (once per
    process) and leave it out. ``verbose``: print progress and BLEU's totals as ``COCOEvalCap`` does.

    Returns ``{"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"[, "SPICE"]: float}``.
    Raises ValueError for ids on one side only, an empty or non-list reference set, or a caption that
    is not a string, naming the id; RuntimeError when Java is missing.
    """
    ids = _validate(candidates, references)
    if shutil.which("java") is None:
        raise RuntimeError("coco_caption_scores needs Java on the PATH (PTB tokenizer and METEOR)")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    def say(message: str) -> None:
        if verbose:
            print(message)

    say("tokenization...")
    ref_counts = [len(references[i]) for i in ids]
    tokens = _ptb_tokenize([candidates[i] for i in ids] + [c for i in ids for c in references[i]])
    res, gts, start = {}, {}, len(ids)
    for k, count in enumerate(ref_counts):
        res[k] = [tokens[k]]
        gts[k] = tokens[start:start + count]
        start += count

    say("setting up scorers...")
    scores: dict[str, float] = {}
    say("computing Bleu score...")
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=int(verbose))
    scores.update({f"BLEU-{n}": float(b) for n, b in enumerate(bleu, start=1)})
    say("computing METEOR score...")
    scores["METEOR"] = _meteor(gts, res)
    say("computing Rouge score...")
    scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    say("computing CIDEr score...")
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    if spice:
        say("computing SPICE score...")
        value = _spice(gts, res)
        if value is not None:
            scores["SPICE"] = value
    if verbose:
        for name, value in scores.items():
            print(f"{name}: {value:0.3f}")
    return scores


def _validate(candidates: Mapping[Hashable, str], references: Mapping[Hashable, list[str]]) -> list[Hashable]:
    """The ids (in ``candidates``' order) after checking both mappings; ValueError naming the culprit."""
    if not isinstance(candidates, Mapping) or not isinstance(references, Mapping):
        raise ValueError("candidates and references must be mappings {image id: caption(s)}")
    if not candidates and not references:
        raise ValueError("no captions to evaluate: candidates and references are empty")
    only_cand = [i for i in candidates if i not in references]
    only_refs = [i for i in references if i not in candidates]
    if only_cand or only_refs:
        problems = []
        if only_cand:
            problems.append(f"candidates without references: {_some(only_cand)}")
        if only_refs:
            problems.append(f"references without a candidate: {_some(only_refs)}")
        raise ValueError("candidates and references must have the same image ids; " + "; ".join(problems))
    for i, caption in candidates.items():
        if not isinstance(caption, str):
            raise ValueError(f"candidate of image {i!r} is of type {type(caption).__name__}, not a string")
        refs = references[i]
        if isinstance(refs, (str, bytes)) or not isinstance(refs, (list, tuple)):
            raise ValueError(f"references of image {i!r} must be a list of strings, not of type {type(refs).__name__}")
        if not refs:
            raise ValueError(f"image {i!r} has an empty reference list")
        for j, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise ValueError(f"reference {j} of image {i!r} is of type {type(ref).__name__}, not a string")
    return list(candidates)


def _some(ids: list[Hashable], shown: int = 10) -> str:
    """The first ``shown`` ids as reprs, and how many more."""
    text = ", ".join(map(repr, ids[:shown]))
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def _ptb_tokenize(captions: list[str]) -> list[str]:
    """pycocoevalcap's PTB tokenisation of each caption, in one Java call; line breaks become spaces."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    out = PTBTokenizer().tokenize({k: [{"caption": " ".join(c.splitlines())}] for k, c in enumerate(captions)})
    if len(out) != len(captions) or any(len(out.get(k, ())) != 1 for k in range(len(captions))):
        raise RuntimeError(f"the PTB tokenizer returned {len(out)} lines for {len(captions)} captions")
    return [out[k][0] for k in range(len(captions))]


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    """pycocoevalcap's METEOR score; its Java process is stopped before returning, also on errors."""
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()
    try:
        return float(meteor.compute_score(gts, res)[0])
    finally:
        proc = meteor.meteor_p
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()
        if meteor.lock.locked():  # left held by a failed compute_score: Meteor.__del__ would block on it
            meteor.lock.release()


def _missing_spice_models() -> list[Path]:
    """The Stanford CoreNLP jars SPICE needs that are not cached under pycocoevalcap/spice/lib."""
    from pycocoevalcap.spice import get_stanford_models as g

    lib = Path(g.SPICEDIR) / g.SPICELIB
    return [path for path in (lib / f"{g.JAR}.jar", lib / f"{g.JAR}-models.jar") if not path.exists()]


def _spice(gts: dict[int, list[str]], res: dict[int, list[str]]) -> float | None:
    """pycocoevalcap's SPICE score, or None (with one warning per process) when it cannot run."""
    missing = _missing_spice_models()
    if missing:
        reason = (f"the Stanford CoreNLP models it needs are not cached ({', '.join(p.name for p in missing)} "
                  f"missing in {missing[0].parent}); pycocoevalcap downloads them on first use, so run "
                  "pycocoevalcap's Spice() once with internet access to cache them")
    else:
        try:
            from pycocoevalcap.spice.spice import Spice

            return float(Spice().compute_score(gts, res)[0])
        except Exception as error:  # noqa: BLE001 - SPICE is optional: any failure means no SPICE
            reason = f"it failed: {type(error).__name__}: {error}"
    global _spice_warned
    if not _spice_warned:
        _spice_warned = True
        warnings.warn(f"SPICE skipped: {reason}. The other metrics are computed.", stacklevel=3)
    return None


class CaptionMetric(Metric):
    """The captions of one evaluation loop, scored when it ends.

    ``update(seq, index)``: ``seq`` (B, L) token ids of the decoded captions (``<eos>`` = 0 pads),
    ``index`` (B,) each image's position in the split. ``compute()`` gathers every process's rows
    with ``gather`` (:func:`crossmedia.metrics.gather.gather_by_index` bound to the evaluating
    module: one row per position, the DistributedSampler's padding repeats dropped, so torchmetrics'
    own sync is off), decodes them with ``decode`` and returns the scores: ``protocol="coco"``:
    :func:`coco_caption_scores` against ``references[i]`` (raw sentences); ``"cider"``:
    ``{"CIDEr": corpus CIDEr-D}`` against ``references[i]`` (space-joined tokens). With ``objects``
    (ground-truth objects per position) also ``{colour,shape}_precision`` and
    :func:`~crossmedia.tasks.caption.scene_metrics.object_mentions`' ``object_errors``,
    ``object_error_rate`` and ``object_recall``. The decoded captions stay in ``samples``:
    [(position, caption)].
    """

    full_state_update = False

    def __init__(self, *, decode: Callable[[list[int]], str], references: Sequence[Sequence[str]],
                 gather: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, list[int]]],
                 protocol: Literal["coco", "cider"] = "coco", objects: Sequence[Sequence[dict]] | None = None,
                 max_len: int = 16, spice: bool = False):
        super().__init__(sync_on_compute=False)
        if protocol not in ("coco", "cider"):
            raise ValueError(f"protocol must be 'coco' or 'cider', got {protocol!r}")
        self.decode, self.references, self.objects, self.gather = decode, references, objects, gather
        self.protocol, self.width, self.spice = protocol, max_len + 1, spice
        self.samples: list[tuple[int, str]] = []
        self.add_state("seq", default=[], dist_reduce_fx="cat")
        self.add_state("index", default=[], dist_reduce_fx="cat")

    def update(self, seq: torch.Tensor, index: torch.Tensor) -> None:
        width = self.width
        seq = seq[:, :width] if seq.shape[1] >= width else F.pad(seq, (0, width - seq.shape[1]))  # (B, max_len + 1)
        self.seq.append(seq.long())
        self.index.append(index.long())

    def compute(self) -> dict[str, float]:
        seq = torch.cat(self.seq) if self.seq else torch.zeros(0, self.width, dtype=torch.long, device=self.device)
        index = torch.cat(self.index) if self.index else torch.zeros(0, dtype=torch.long, device=self.device)
        seq, order = self.gather(seq, index)                       # (M, max_len + 1), M distinct positions
        captions = [self.decode(row) for row in seq.tolist()]
        self.samples = list(zip(order, captions))
        if not captions:
            return {}
        if self.protocol == "cider":
            from crossmedia.tasks.caption.cider import corpus_cider

            return {"CIDEr": float(corpus_cider(captions, [self.references[i] for i in order])[0])}
        scores = coco_caption_scores(dict(zip(order, captions)), {i: list(self.references[i]) for i in order},
                                     spice=self.spice)
        if self.objects is not None:
            from crossmedia.tasks.caption.scene_metrics import object_mentions, word_precision

            objects = [self.objects[i] for i in order]
            scores.update({f"{kind}_precision": v for kind, v in word_precision(captions, objects).items()})
            scores.update(object_mentions(captions, objects))
        return scores
