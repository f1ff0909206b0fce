"""Evaluation of text-to-image generation: semantic object accuracy, R-precision, diversity.

Every metric here is a :class:`torchmetrics.Metric` whose states are reduced across DDP processes
(``dist_reduce_fx``), so ``compute()`` gives the same value on every process.

- :class:`SemanticObjectAccuracy` — SOA (Hinz et al., "Semantic Object Accuracy for Generative
  Text-to-Image Synthesis", TPAMI 2020, arXiv 1910.13321) with our scene tagger in place of their
  YOLOv3 detector. For an attribute c (a shape, a colour, or a "colour shape" pair) let I_c be the
  generated images whose prompt's ground-truth objects contain c, and Det(i, c) = 1 when the
  tagger finds c in image i (σ(logit_c) > threshold). The class-wise rate is
  SOA-C = 1/|C| Σ_c 1/|I_c| Σ_{i∈I_c} Det(i, c), averaged over the shapes, the colours and the
  pairs separately; ``image`` is the fraction of images in which *every* named pair was found.
- :class:`RPrecision` — AttnGAN's R-precision (Xu et al., "AttnGAN: Fine-Grained Text to Image
  Generation with Attentional GANs", CVPR 2018, arXiv 1711.10485, Sec. 5): each generated image
  ranks its own caption and 99 captions of other images by cosine similarity of joint
  embeddings; with R = 1 relevant caption, R-precision is the fraction of images whose own caption
  ranks first. Chance is 1/100.
- :class:`Diversity` — the mean pairwise distance d(a, b) = 1 − cos(a, b) between features of
  images generated from one text with different noise, averaged over texts. 0 means every noise
  gives the same image (mode collapse); the cosine makes it independent of the feature scale,
  and it is at most 2 (at most 1 for non-negative features such as pooled ReLU activations).

FID and KID are :class:`crossmedia.metrics.image.FID` / :class:`~crossmedia.metrics.image.KID`
(no new code): the t2i task computes them, and :class:`Diversity`, on the **scene tagger's
encoder** — the zoo's ``scene-tagger`` (task caption, loaded through the registry, never
imported), its grid region features (B, N, D) averaged over the N regions — on images in
[−1, 1], the range it was trained on. Values are comparable only between runs that use the same
tagger weights (the card names them). SOA uses the same tagger's tag logits, and R-precision the
joint text-image encoder of the task (AttnGAN's DAMSM encoders play that role in the paper).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from crossmedia.metrics.ranking import query_chunks

__all__ = ["SemanticObjectAccuracy", "RPrecision", "Diversity", "soa_attributes"]

_KINDS = ("shape", "colour", "pair")


def soa_attributes(scene: Sequence[dict]) -> tuple[set[str], set[str], set[str]]:
    """The distinct shapes, colours and "colour shape" pairs a scene's objects name."""
    shapes = {o["shape"] for o in scene}
    colours = {o["colour"] for o in scene}
    pairs = {f"{o['colour']} {o['shape']}" for o in scene}
    return shapes, colours, pairs


class SemanticObjectAccuracy(Metric):
    """Semantic object accuracy (SOA-C per attribute kind) of generated images, by the scene tagger.

    ``update(tag_logits, objects)``: (B, T) tagger logits on the generated images (columns in the
    order of ``tag_names``) and, for each image, the list of ground-truth object dicts (``shape``,
    ``colour``, ...) of the prompt it was generated from. For each image, each *distinct* shape,
    colour and pair the objects name counts once (two red objects name "red" once) as
    found when σ(logit) > ``threshold``.

    ``compute()`` returns float tensors: ``shape``, ``colour``, ``pair`` (SOA-C: the mean over the
    attributes of that kind named at least once of the fraction of their images in which they were
    found), ``mean`` (the mean of those three) and ``image`` (the fraction of images in which
    every named pair was found). :meth:`per_attribute` gives each attribute's own rate.

    States (summed across processes): ``named`` and ``found`` (3, T) counts per kind and tag,
    ``images`` and ``complete`` (image counts).

    Raises:
        ValueError: on shapes that do not match, an image without objects, or an attribute that
            has no column in ``tag_names`` (the tagger cannot have detected it).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, tag_names: Sequence[str], threshold: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold is a probability in (0, 1), got {threshold}")
        self.tag_names, self.threshold = list(tag_names), float(threshold)
        if not self.tag_names or len(set(self.tag_names)) != len(self.tag_names):
            raise ValueError("tag_names must be a non-empty list of distinct tags (the tagger's tag_names)")
        self.column = {tag: j for j, tag in enumerate(self.tag_names)}
        t = len(self.tag_names)
        self.add_state("named", default=torch.zeros(3, t, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("found", default=torch.zeros(3, t, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("images", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("complete", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def _columns(self, names: set[str], kind: str, i: int) -> list[int]:
        missing = sorted(names - self.column.keys())
        if missing:
            raise ValueError(f"objects[{i}] names the {kind} {missing[0]!r}, which is not among the tagger's "
                             f"{len(self.tag_names)} tag_names; use a tagger trained on scenes with that {kind}")
        return sorted(self.column[name] for name in names)

    def update(self, tag_logits: Tensor, objects: Sequence[Sequence[dict]]) -> None:
        if tag_logits.ndim != 2 or tag_logits.shape[1] != len(self.tag_names):
            raise ValueError(f"tag_logits must be (B, {len(self.tag_names)}) (one column per tag name), "
                             f"got shape {tuple(tag_logits.shape)}")
        if len(objects) != len(tag_logits):
            raise ValueError(f"objects holds {len(objects)} scenes for {len(tag_logits)} rows of tag_logits")
        detected = (torch.sigmoid(tag_logits.float()) > self.threshold).cpu()  # (B, T)
        named = torch.zeros(3, *detected.shape, dtype=torch.bool)  # (3, B, T) kind, image, tag
        for i, scene in enumerate(objects):
            if not scene:
                raise ValueError(f"objects[{i}] is empty: SOA scores the objects a prompt names, and this one "
                                 "names none")
            for k, (names, kind) in enumerate(zip(soa_attributes(scene), _KINDS)):
                named[k, i, self._columns(names, kind, i)] = True
        hits = named & detected  # (3, B, T)
        self.named += named.sum(dim=1).to(self.named.device)
        self.found += hits.sum(dim=1).to(self.found.device)
        complete = (hits[2] == named[2]).all(dim=1)  # (B,) every named pair found
        self.images += len(objects)
        self.complete += int(complete.sum())

    def per_attribute(self) -> dict[str, dict[str, float]]:
        """Per kind, each attribute named at least once -> the fraction of its images where it was found."""
        rates = self.found.double() / self.named.clamp_min(1).double()  # (3, T)
        return {kind: {tag: float(rates[k, j]) for j, tag in enumerate(self.tag_names) if self.named[k, j] > 0}
                for k, kind in enumerate(_KINDS)}

    def compute(self) -> dict[str, Tensor]:
        if int(self.images) == 0:
            raise ValueError("SemanticObjectAccuracy.compute() before any update: no generated image was scored")
        out = {}
        for k, kind in enumerate(_KINDS):
            seen = self.named[k] > 0  # (T,) attributes of this kind some prompt named
            out[kind] = (self.found[k][seen].double() / self.named[k][seen].double()).mean().float()
        out["mean"] = torch.stack([out[kind] for kind in _KINDS]).mean()
        out["image"] = (self.complete.double() / self.images.double()).float()
        return out


class RPrecision(Metric):
    """AttnGAN's R-precision of generated images against their captions (R = 1 relevant caption).

    ``update(image_emb, text_emb, image_id)``: (B, D) joint embeddings of the generated images,
    (B, D) embeddings of the captions they were generated from, and (B,) integer ids of the
    dataset images those captions describe. ``compute()`` scores every accumulated row i: its
    candidates are its own caption t_i and ``candidates − 1`` captions t_j drawn uniformly without
    replacement from the accumulated captions with image_id_j ≠ image_id_i (mismatched: captions
    of *other* images; pass class ids as ``image_id`` to also exclude same-class captions). The
    draw is a function of ``seed`` and the accumulated rows only (Floyd's sampling on a seeded CPU
    generator), so it is the same in every run and on every process. Then

        R-precision = 1/N Σ_i [cos(v_i, t_i) > max_j cos(v_i, t_j)]

    A tie with a negative counts as a miss, so an encoder that maps everything to one vector scores
    0, not 1. Returns a float32 scalar; chance is 1 / ``candidates``.

    States: the embeddings and ids, concatenated across processes (under DDP a sampler's padding
    repeats are scored again; evaluate on one process for the exact protocol).

    Raises:
        ValueError: in ``compute()`` when some image has fewer than ``candidates − 1`` captions of
            other images to draw from (the message names the count).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, candidates: int = 100, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(candidates) != candidates or candidates < 2:
            raise ValueError(f"candidates must be an integer ≥ 2 (the true caption and at least one other), "
                             f"got {candidates!r}")
        self.candidates, self.seed = int(candidates), int(seed)
        self.add_state("image_emb", default=[], dist_reduce_fx="cat")
        self.add_state("text_emb", default=[], dist_reduce_fx="cat")
        self.add_state("image_id", default=[], dist_reduce_fx="cat")

    def update(self, image_emb: Tensor, text_emb: Tensor, image_id: Tensor) -> None:
        if image_emb.ndim != 2 or image_emb.shape != text_emb.shape:
            raise ValueError(f"image_emb and text_emb must both be (B, D) of one shape, got "
                             f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
        image_id = torch.as_tensor(image_id)
        if image_id.shape != (len(image_emb),) or image_id.is_floating_point():
            raise ValueError(f"image_id must be (B,) integers with B = {len(image_emb)}, got "
                             f"{image_id.dtype} of shape {tuple(image_id.shape)}")
        self.image_emb.append(F.normalize(image_emb.detach().float(), dim=1))
        self.text_emb.append(F.normalize(text_emb.detach().float(), dim=1))
        self.image_id.append(image_id.to(self.device, torch.long))

    @staticmethod
    def _cat(state: list[Tensor] | Tensor) -> Tensor:
        return torch.cat(state) if isinstance(state, list) else state

    def negatives(self, image_id: Tensor) -> Tensor:
        """(N, candidates − 1) indices of the mismatched captions of each row (see the class docstring).

        Rows are grouped by id (a stable sort): row i may draw from the M_i = N − n_i positions
        outside its group of n_i rows. Floyd's algorithm draws k = candidates − 1 distinct values
        of [0, M_i) for all rows at once: for j = M_i − k … M_i − 1 take t uniform in [0, j], keep
        it unless already taken, else keep j. A value u maps to the sorted position u (before the
        group) or u + n_i (after it).
        """
        k, n = self.candidates - 1, len(image_id)
        ids = image_id.cpu()
        order = ids.argsort(stable=True)  # (N,) rows grouped by id
        start = torch.searchsorted(ids[order], ids, side="left")  # (N,) where each row's group starts
        size = torch.searchsorted(ids[order], ids, side="right") - start  # (N,) n_i
        others = n - size  # (N,) M_i
        if int(others.min()) < k:
            i = int(others.argmin())
            raise ValueError(f"R-precision with {self.candidates} candidates needs {k} captions of other images for "
                             f"every generated image; got {n} captions in all, and image_id {int(ids[i])} has only "
                             f"{int(others[i])} of other images: evaluate on more images (or lower candidates)")
        generator = torch.Generator().manual_seed(self.seed)
        chosen = torch.empty(n, k, dtype=torch.long)
        for step in range(k):
            bound = others - k + step  # (N,) j
            t = (torch.rand(n, generator=generator, dtype=torch.float64) * (bound + 1)).long().minimum(bound)
            taken = (chosen[:, :step] == t[:, None]).any(dim=1)
            chosen[:, step] = torch.where(taken, bound, t)
        chosen = torch.where(chosen < start[:, None], chosen, chosen + size[:, None])  # (N, k) sorted positions
        return order[chosen]  # (N, k) rows

    def compute(self) -> Tensor:
        if not self.image_id or (isinstance(self.image_id, Tensor) and self.image_id.numel() == 0):
            raise ValueError("RPrecision.compute() before any update: no generated image was scored")
        images, texts, ids = self._cat(self.image_emb), self._cat(self.text_emb), self._cat(self.image_id)
        negatives = self.negatives(ids).to(texts.device)  # (N, k)
        own = (images * texts).sum(dim=1)  # (N,) cos(v_i, t_i)
        best = torch.empty_like(own)  # (N,) max_j cos(v_i, t_j)
        rows_per_chunk = max(1, 2**22 // (negatives.shape[1] * texts.shape[1]))  # bounds the (c, k, D) gather
        for rows in query_chunks(len(own), 1, rows_per_chunk):
            other = torch.einsum("cd,ckd->ck", images[rows], texts[negatives[rows]])  # (c, k)
            best[rows] = other.amax(dim=1)
        return (own > best).float().mean()


class Diversity(Metric):
    """Mean pairwise 1 − cosine distance of features of images generated from one text.

    ``update(features)``: (B, n, D) features of n ≥ 2 images generated from each of B texts with
    different noise. Per text, div = 2 / (n (n − 1)) Σ_{a<b} (1 − cos(f_a, f_b)); ``compute()``
    returns the mean of div over all texts seen (float32 scalar). States ``total`` (float64 sum
    of div) and ``texts`` (count) are summed across processes.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("texts", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, features: Tensor) -> None:
        if features.ndim != 3 or features.shape[1] < 2:
            raise ValueError(f"features must be (B, n, D) with n ≥ 2 images per text, got shape "
                             f"{tuple(features.shape)}")
        unit = F.normalize(features.detach().double().flatten(2), dim=2)  # (B, n, D)
        n = unit.shape[1]
        cos = unit @ unit.transpose(1, 2)  # (B, n, n)
        pairs = torch.triu_indices(n, n, offset=1, device=cos.device)  # (2, n(n−1)/2)
        per_text = (1.0 - cos[:, pairs[0], pairs[1]]).mean(dim=1)  # (B,)
        self.total += per_text.sum().to(self.total.device)
        self.texts += len(per_text)

    def compute(self) -> Tensor:
        if int(self.texts) == 0:
            raise ValueError("Diversity.compute() before any update: no generated image was scored")
        return (self.total / self.texts).float()
