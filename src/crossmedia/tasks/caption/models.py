"""Caption networks: an image encoder giving a set of region/grid features, and two decoders.

* :class:`GridEncoder` — any timm backbone (random init by default) cut after one stage, its
  feature map read as a grid of ``H*W`` regions. Precomputed features (bottom-up regions, grid
  features from disk) skip it: the decoders take ``(B, N, D)`` features plus a validity mask.
* :class:`UpDownDecoder` — Anderson et al., "Bottom-Up and Top-Down Attention for Image
  Captioning and VQA", CVPR 2018: an attention LSTM (input: previous language-LSTM output, mean
  feature, word) drives additive attention over the regions; a language LSTM reads the attended
  feature and the attention LSTM's output and predicts the word.
* :class:`XLANDecoder` — Pan et al., "X-Linear Attention Networks for Image Captioning", CVPR 2020:
  an X-Linear encoder (4 blocks) refines the regions and the mean-pooled global feature; the
  decoder LSTM reads the word and global feature + previous context, X-Linear attention attends
  from its output over the refined regions, and a linear + GLU fuses attention and LSTM output
  into the context that predicts the word.

Both decoders follow :mod:`crossmedia.nn.decoding`'s contract: ``prepare(feats, mask) -> ctx``,
``init_state(ctx) -> state``, ``step(words, state, ctx) -> (log_probs, state)``.
"""
from __future__ import annotations

import torch
from torch import nn

from crossmedia.core.backbones import create_backbone
from crossmedia.nn.masking import full_mask, masked_mean
from crossmedia.nn.xlinear import CELU_ALPHA, XLinearAttention, XLinearRefiner

__all__ = ["GridEncoder", "UpDownDecoder", "XLANDecoder", "build_decoder"]


class GridEncoder(nn.Module):
    """A timm backbone's feature map at stage ``stage`` as (B, H*W, C) region features."""

    def __init__(self, backbone: str = "resnet18", *, pretrained: bool = False, stage: int = 2):
        super().__init__()
        self.net = create_backbone(backbone, pretrained=pretrained, features_only=True, out_indices=(stage,))
        self.dim = int(self.net.feature_info.channels()[-1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grid = self.net(images)[-1]               # (B, C, H, W)
        return grid.flatten(2).transpose(1, 2)    # (B, H*W, C)


def _embed(in_dim: int, dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU(), nn.Dropout(dropout))


def _embedded_regions(embed: nn.Module, feats: torch.Tensor,
                      mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``embed(feats)`` (B, N, dim) and the validity mask (B, N) (all regions valid when none is given)."""
    regions = embed(feats)                                          # (B, N, dim)
    return regions, full_mask(regions) if mask is None else mask


class UpDownDecoder(nn.Module):
    """Attention LSTM + language LSTM with additive attention (Up-Down)."""

    def __init__(self, vocab_size: int, feat_dim: int, *, dim: int = 256, att_dim: int = 256, dropout: float = 0.3):
        super().__init__()
        self.dim = dim
        self.feat = _embed(feat_dim, dim, dropout)
        self.word = nn.Sequential(nn.Embedding(vocab_size, dim), nn.ReLU(), nn.Dropout(dropout))
        self.att_lstm = nn.LSTMCell(3 * dim, dim)
        self.lang_lstm = nn.LSTMCell(2 * dim, dim)
        self.att_key = nn.Linear(dim, att_dim)
        self.att_query = nn.Linear(dim, att_dim)
        self.att_score = nn.Linear(att_dim, 1)
        self.drop = nn.Dropout(dropout)
        self.logit = nn.Linear(dim, vocab_size)

    def prepare(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> tuple:
        """Context of (B, N, feat_dim) features: regions (B, N, dim), keys (B, N, att_dim), pooled (B, dim), mask (B, N)."""
        regions, mask = _embedded_regions(self.feat, feats, mask)
        pooled = masked_mean(regions, mask[..., None], 1)           # (B, dim)
        return regions, self.att_key(regions), pooled, mask

    def init_state(self, ctx: tuple) -> tuple:
        zeros = ctx[0].new_zeros(ctx[0].shape[0], self.dim)         # (B, dim)
        return zeros, zeros, zeros, zeros                           # h_att, c_att, h_lang, c_lang

    def step(self, words: torch.Tensor, state: tuple, ctx: tuple) -> tuple[torch.Tensor, tuple]:
        """One word: ``words`` (B,) -> log-probabilities of the next word (B, V) and the new state."""
        regions, keys, pooled, mask = ctx                           # (B, N, dim), (B, N, att), (B, dim), (B, N)
        h_att, c_att, h_lang, c_lang = state                        # each (B, dim)
        h_att, c_att = self.att_lstm(torch.cat([h_lang, pooled, self.word(words)], 1), (h_att, c_att))  # (B, dim)
        scores = self.att_score(torch.tanh(keys + self.att_query(h_att)[:, None])).squeeze(-1)  # (B, N)
        alpha = scores.masked_fill(~mask, torch.finfo(scores.dtype).min).softmax(-1)          # (B, N)
        attended = torch.bmm(alpha[:, None], regions).squeeze(1)    # (B, 1, N) @ (B, N, dim) -> (B, dim)
        h_lang, c_lang = self.lang_lstm(torch.cat([attended, h_att], 1), (h_lang, c_lang))   # (B, dim)
        return torch.log_softmax(self.logit(self.drop(h_lang)), -1), (h_att, c_att, h_lang, c_lang)  # (B, V)


class XLANDecoder(nn.Module):
    """X-LAN: X-Linear refining encoder + LSTM / X-Linear attention / GLU decoder."""

    def __init__(self, vocab_size: int, feat_dim: int, *, dim: int = 256, heads: int = 8, blocks: int = 4,
                 dropout: float = 0.3, att_dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.feat = nn.Sequential(nn.Linear(feat_dim, dim), nn.CELU(CELU_ALPHA), nn.LayerNorm(dim), nn.Dropout(dropout))
        self.refine = XLinearRefiner(dim, blocks=blocks, heads=heads, dropout=att_dropout)
        self.word = nn.Sequential(nn.Embedding(vocab_size, dim), nn.CELU(CELU_ALPHA), nn.Dropout(dropout))
        self.lstm = nn.LSTMCell(2 * dim, dim)
        self.attend = XLinearAttention(dim, dim, dim, heads=heads, dropout=att_dropout)
        self.fuse = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.GLU())
        self.drop = nn.Dropout(dropout)
        self.logit = nn.Linear(dim, vocab_size)

    def prepare(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> tuple:
        """Context of (B, N, feat_dim) features: attention keys and values, pooled (B, dim), mask (B, N)."""
        regions, mask = _embedded_regions(self.feat, feats, mask)
        pooled, regions = self.refine(regions, mask)                # (B, dim), (B, N, dim)
        keys, values = self.attend.precompute(regions, regions)
        return keys, values, pooled, mask

    def init_state(self, ctx: tuple) -> tuple:
        zeros = ctx[2].new_zeros(ctx[2].shape[0], self.dim)         # (B, dim)
        return zeros, zeros, zeros                                  # h, c, context

    def step(self, words: torch.Tensor, state: tuple, ctx: tuple) -> tuple[torch.Tensor, tuple]:
        """One word: ``words`` (B,) -> log-probabilities of the next word (B, V) and the new state."""
        keys, values, pooled, mask = ctx
        h, c, context = state                                       # each (B, dim)
        h, c = self.lstm(torch.cat([self.word(words), pooled + context], 1), (h, c))  # (B, 2 dim) -> (B, dim)
        attended = self.attend(h, mask=mask, projected=(keys, values))              # (B, dim)
        context = self.fuse(torch.cat([attended, h], 1))            # (B, 2 dim) -> GLU -> (B, dim)
        return torch.log_softmax(self.logit(self.drop(context)), -1), (h, c, context)  # (B, V)


def build_decoder(kind: str, vocab_size: int, feat_dim: int, **kwargs) -> nn.Module:
    kinds = {"updown": UpDownDecoder, "xlan": XLANDecoder}
    if kind not in kinds:
        raise ValueError(f"unknown decoder {kind!r}; choose one of: {', '.join(kinds)}")
    return kinds[kind](vocab_size, feat_dim, **kwargs)
