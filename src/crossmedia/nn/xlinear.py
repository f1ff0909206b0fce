"""X-Linear attention (Pan et al., "X-Linear Attention Networks for Image Captioning", CVPR 2020).

One X-Linear block attends from a query vector to a set of keys/values with *bilinear* pooling:
the query and each key are projected (linear -> CELU(alpha=1.3) -> GroupNorm over the heads, as in
the authors' code) and multiplied elementwise, giving a second-order query-key representation
per position. That representation drives two attentions at once:

* spatial: an embedding (linear -> ReLU -> dropout) then a linear to one logit per position,
  softmax over the positions (masked positions excluded);
* channel (squeeze-excitation): the embedding averaged over the valid positions (masked mean),
  a linear back to the head width and a sigmoid.

The output is ``v1 * (sum_i alpha_i v2_i) * beta``: the query-side value ``v1`` (projected from the
query, again as in the code), times the spatially attended key-side values ``v2``, times the
channel gates ``beta``. Heads split the width as in multi-head attention.

Captioning (X-LAN) and video captioning use the block; :meth:`XLinearAttention.precompute` lets a
decoder project keys and values once per image instead of once per word.
"""
from __future__ import annotations

import torch
from torch import nn

from crossmedia.nn.masking import masked_mean

__all__ = ["XLinearAttention", "XLinearRefiner"]

CELU_ALPHA = 1.3


def _projection(in_dim: int, out_dim: int, heads: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.CELU(CELU_ALPHA), nn.GroupNorm(heads, out_dim))


class _GroupNormLast(nn.Module):
    """GroupNorm applied to the last dimension of a (..., C) tensor."""

    def __init__(self, proj: nn.Sequential):
        super().__init__()
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return self.proj(x.reshape(-1, shape[-1])).reshape(*shape[:-1], -1)


class XLinearAttention(nn.Module):
    """X-Linear attention from a query (B, Dq) over keys/values (B, N, Dk) -> (B, dim)."""

    def __init__(self, query_dim: int, key_dim: int, dim: int, *, heads: int = 8, mid_dim: int | None = None,
                 dropout: float = 0.1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads, self.head_dim = heads, dim // heads
        mid_dim = mid_dim or max(self.head_dim // 2, 1)
        self.q = _GroupNormLast(_projection(query_dim, dim, heads))
        self.v1 = _GroupNormLast(_projection(query_dim, dim, heads))
        self.k = _GroupNormLast(_projection(key_dim, dim, heads))
        self.v2 = _GroupNormLast(_projection(key_dim, dim, heads))
        self.embed = nn.Sequential(nn.Linear(self.head_dim, mid_dim), nn.ReLU(), nn.Dropout(dropout))
        self.spatial = nn.Linear(mid_dim, 1)
        self.channel = nn.Linear(mid_dim, self.head_dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (..., dim) -> (..., heads, head_dim)
        return x.reshape(*x.shape[:-1], self.heads, self.head_dim)

    def precompute(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected keys and values, (B, N, heads, head_dim) each: reusable across queries."""
        return self._split(self.k(keys)), self._split(self.v2(values))

    def forward(self, query: torch.Tensor, keys: torch.Tensor | None = None, values: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, *, value1: torch.Tensor | None = None,
                projected: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``query`` (B, Dq); ``keys``/``values`` (B, N, Dk) or ``projected`` from :meth:`precompute`;
        ``mask`` (B, N) bool, True = valid; ``value1`` defaults to the query."""
        k, v2 = projected if projected is not None else self.precompute(keys, values if values is not None else keys)
        q = self._split(self.q(query)).unsqueeze(1)                     # (B, 1, h, d)
        v1 = self._split(self.v1(query if value1 is None else value1))  # (B, h, d)
        joint = self.embed(q * k)                                       # (B, N, h, mid) bilinear pooling
        logits = self.spatial(joint).squeeze(-1)                        # (B, N, h)
        m = None if mask is None else mask[:, :, None]
        if m is not None:
            logits = logits.masked_fill(~m, torch.finfo(logits.dtype).min)
        alpha = logits.softmax(dim=1)                                   # spatial attention over N
        beta = torch.sigmoid(self.channel(masked_mean(joint, None if m is None else m[..., None], 1)))  # (B, h, d)
        attended = (alpha.unsqueeze(-1) * v2).sum(1)                    # (B, h, d)
        return (v1 * attended * beta).flatten(1)


class XLinearRefiner(nn.Module):
    """X-LAN's encoder: ``blocks`` X-Linear blocks refine the mean-pooled global feature.

    Each block attends from the global feature to the regions; the regions are then updated from
    their concatenation with the new global feature (linear -> CELU -> dropout, residual,
    LayerNorm). The global features of every block (and the input's) are concatenated and projected
    back to ``dim``.
    """

    def __init__(self, dim: int, *, blocks: int = 4, heads: int = 8, dropout: float = 0.1):
        super().__init__()
        self.attend = nn.ModuleList(XLinearAttention(dim, dim, dim, heads=heads, dropout=dropout) for _ in range(blocks))
        self.fuse = nn.ModuleList(nn.Sequential(nn.Linear(2 * dim, dim), nn.CELU(CELU_ALPHA), nn.Dropout(dropout))
                                  for _ in range(blocks))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(blocks))
        self.project = nn.Sequential(nn.Linear(dim * (blocks + 1), dim), nn.LayerNorm(dim))

    def forward(self, regions: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, dim) regions -> (global (B, dim), refined regions (B, N, dim))."""
        pooled = masked_mean(regions, None if mask is None else mask[..., None], 1)
        history = [pooled]
        for attend, fuse, norm in zip(self.attend, self.fuse, self.norms):
            pooled = attend(pooled, regions, regions, mask)
            regions = norm(regions + fuse(torch.cat([pooled.unsqueeze(1).expand_as(regions), regions], -1)))
            history.append(pooled)
        return self.project(torch.cat(history, -1)), regions
