"""ST-XlanV's network (Huang et al., "Semantic Tag Augmented XlanV Model for Video Captioning", ACM MM
2021; layer order from the authors' code, RubickH/ST-XlanV, which builds on X-LAN).

Streams, each embedded to the common width ``dim`` and given learned position embeddings, then
refined by its own stack of X-Linear encoder blocks (:class:`~crossmedia.nn.xlinear.XLinearRefiner`,
4 blocks in the paper, ``stream_blocks`` here):

* appearance (B, Ta, Da), one row per frame: linear -> CELU -> dropout -> LayerNorm, + position;
* motion (B, Tm, Dm), one row per clip segment: the same;
* tags (B, 2) ids of the content and action tag words in the tag vocabulary (0 = none/padding):
  word embedding -> CELU -> dropout, + position (absent with ``tags=False``: XlanV);
* text: ``[CLS] w_1 .. w_n [SEP]`` over the caption vocabulary plus three special ids
  (:meth:`STXlanVEncoder.special_ids`). While captioning it is ``[CLS] [SEP]`` alone, as in the
  authors' code; pre-training (TAP, MLM) puts the masked caption there.

The encoded streams are concatenated in the code's order ``[text, tags, appearance, motion]`` with
their masks and refined by the cross-modal X-Linear encoder; the X-LAN LSTM decoder
(:class:`~crossmedia.tasks.caption.models.XLANDecoder`) attends over the result, with the
cross-modal encoder's global feature (the projected history of its mean-pooled features) added to
the context fed to the LSTM. :class:`CrossModalDecoder` is that decoder with the cross-modal
encoder as its refiner, so the caption task's decoding, cross-entropy and self-critical code run
on it unchanged. :class:`PretrainHeads` are the two pre-training heads on the cross-modal text
positions: TAP (2-way, on ``[CLS]``) and MLM (vocabulary logits per token).
"""
from __future__ import annotations

import torch
from torch import nn

from crossmedia.nn.masking import full_mask
from crossmedia.nn.xlinear import CELU_ALPHA, XLinearRefiner
from crossmedia.tasks.caption.models import XLANDecoder

__all__ = ["STREAMS", "STXlanVEncoder", "CrossModalDecoder", "PretrainHeads", "text_tokens"]

STREAMS = ("text", "tags", "appearance", "motion")
"""The order in which the encoded streams are concatenated (the authors' code's)."""


def text_tokens(captions: torch.Tensor | None, batch: int, cls_id: int, sep_id: int,
                device: torch.device | None = None) -> torch.Tensor:
    """The text stream's ids: ``[CLS] w_1 .. w_n [SEP]`` then 0-padding, (N, L + 2) long.

    ``captions`` (N, L) caption ids ending in ``<eos>`` = 0 and 0-padded (the batches' format), or
    None for the captioning input ``[CLS] [SEP]`` (``batch`` rows, (batch, 2)).
    """
    if captions is None:
        row = torch.tensor([cls_id, sep_id], dtype=torch.long, device=device)
        return row.expand(batch, 2).clone()
    rows, steps = captions.shape
    lengths = (captions != 0).long().cumprod(1).sum(1)                   # words before the first 0
    out = torch.zeros(rows, steps + 2, dtype=torch.long, device=captions.device)
    out[:, 0] = cls_id
    out[:, 1:steps + 1] = captions * (torch.arange(steps, device=captions.device)[None] < lengths[:, None])
    out[torch.arange(rows, device=captions.device), lengths + 1] = sep_id
    return out


class _Stream(nn.Module):
    """One stream: embedding to ``dim`` + learned positions + its own X-Linear encoder blocks."""

    def __init__(self, embed: nn.Module, name: str, *, dim: int, heads: int, blocks: int, att_dropout: float,
                 max_positions: int):
        super().__init__()
        self.name, self.max_positions = name, max_positions
        self.embed = embed
        self.position = nn.Embedding(max_positions, dim)
        self.refine = XLinearRefiner(dim, blocks=blocks, heads=heads, dropout=att_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, T, D) features or (B, T) ids, ``mask`` (B, T) bool -> (encoded (B, T, dim), mask)."""
        steps = x.shape[1]
        if steps > self.max_positions:
            raise ValueError(f"the {self.name} stream has {steps} positions but the model has position embeddings "
                             f"for {self.max_positions}: build it with a larger max_positions or shorten the input")
        embedded = self.embed(x) + self.position.weight[:steps]           # (B, T, dim)
        mask = full_mask(embedded) if mask is None else mask
        _, encoded = self.refine(embedded, mask)
        return encoded, mask


def _feature_embed(in_dim: int, dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.CELU(CELU_ALPHA), nn.Dropout(dropout), nn.LayerNorm(dim))


def _word_embed(vocab: int, dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Embedding(vocab, dim), nn.CELU(CELU_ALPHA), nn.Dropout(dropout))


class STXlanVEncoder(nn.Module):
    """The per-stream encoders of ST-XlanV (module docstring); ``tag_vocab_size=None`` builds XlanV (no tags).

    ``vocab_size`` is the caption vocabulary's size V; the text stream embeds V + 3 ids, the last
    three being ``[CLS]``, ``[SEP]`` and ``[MASK]`` (:meth:`special_ids`).
    """

    def __init__(self, vocab_size: int, appearance_dim: int, motion_dim: int, *, tag_vocab_size: int | None = None,
                 dim: int = 256, heads: int = 8, blocks: int = 2, dropout: float = 0.3, word_dropout: float = 0.1,
                 att_dropout: float = 0.1, max_positions: int = 64):
        super().__init__()
        self.vocab_size, self.dim = vocab_size, dim
        common = dict(dim=dim, heads=heads, blocks=blocks, att_dropout=att_dropout, max_positions=max_positions)
        self.streams = nn.ModuleDict({
            "text": _Stream(_word_embed(vocab_size + 3, dim, word_dropout), "text", **common),
            "appearance": _Stream(_feature_embed(appearance_dim, dim, dropout), "appearance", **common),
            "motion": _Stream(_feature_embed(motion_dim, dim, dropout), "motion", **common),
        })
        if tag_vocab_size is not None:
            self.streams["tags"] = _Stream(_word_embed(tag_vocab_size, dim, word_dropout), "tags", **common)

    @property
    def has_tags(self) -> bool:
        return "tags" in self.streams

    def special_ids(self) -> tuple[int, int, int]:
        """``(cls, sep, mask)`` ids of the text stream: V, V + 1, V + 2."""
        v = self.vocab_size
        return v, v + 1, v + 2

    def encode_video(self, batch: dict, tags: torch.Tensor | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The video streams of ``batch`` encoded: ``{"appearance", "motion"[, "tags"]: (feats (B, T, dim), mask (B, T))}``.

        ``tags`` (B, N) replaces ``batch["tags"]`` (TAP's replaced tags).
        """
        missing = [key for key in ("appearance", "motion") + (("tags",) if self.has_tags else ()) if key not in batch]
        if missing:
            raise KeyError(f"the batch lacks {missing}: ST-XlanV reads 'appearance', 'motion' (+ masks) and 'tags' "
                           "(build the model with tags=False for XlanV, which reads no tags)")
        out = {name: self.streams[name](batch[name], batch.get(f"{name}_mask")) for name in ("appearance", "motion")}
        if self.has_tags:
            ids = batch["tags"] if tags is None else tags
            out["tags"] = self.streams["tags"](ids, ids != 0)
        return out

    def encode_text(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Text ids (N, L) (0 = padding) -> (encoded (N, L, dim), mask (N, L))."""
        return self.streams["text"](tokens, tokens != 0)

    @staticmethod
    def join(parts: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenate the encoded streams in :data:`STREAMS` order: (B, sum T, dim) and (B, sum T) bool."""
        present = [parts[name] for name in STREAMS if name in parts]
        return torch.cat([f for f, _ in present], 1), torch.cat([m for _, m in present], 1)


class CrossModalDecoder(XLANDecoder):
    """X-LAN's decoder over the joined streams: its refiner is the cross-modal X-Linear encoder.

    ``prepare(joined (B, N, dim), mask (B, N))`` refines the joined streams (no further embedding),
    so :meth:`refine` exposes the cross-modal encoder to the pre-training heads.
    """

    def __init__(self, vocab_size: int, *, dim: int = 256, heads: int = 8, blocks: int = 2, dropout: float = 0.3,
                 att_dropout: float = 0.1):
        super().__init__(vocab_size, dim, dim=dim, heads=heads, blocks=blocks, dropout=dropout,
                         att_dropout=att_dropout)
        self.feat = nn.Identity()  # the streams are embedded already


class PretrainHeads(nn.Module):
    """TAP: ``Linear(dim, 2)`` on the cross-modal ``[CLS]`` output; MLM: ``Linear(dim, V)`` per text token."""

    def __init__(self, vocab_size: int, dim: int, *, tap: bool = True):
        super().__init__()
        self.tap = nn.Linear(dim, 2) if tap else None
        self.mlm = nn.Linear(dim, vocab_size)
