"""A GRU sentence encoder over word embeddings, shared by the tasks that embed captions.

Word ids come as a padded (B, L) long tensor (id 0 pads, as the ``<eos>`` of
:class:`crossmedia.data.karpathy.Vocabulary`) with the number of real words of each row in
``lengths`` (B,). The GRU runs over the packed sequence, so padding never enters it and a padded
batch gives each sentence the vector it has alone. The sentence vector is either

* ``pooling="last"``: the top layer's final state — after the last word for the forward direction,
  after the first word for the backward one — both directions concatenated (VSE++'s text encoder,
  one direction, and AttnGAN's sentence vector, two); or
* ``pooling="mean"``: the masked mean over the real words of the top layer's outputs
  [h→_t; h←_t].

Its width is ``hidden · (2 if bidirectional else 1)`` (``output_dim``); no projection here, the
model that uses it adds its own.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from crossmedia.nn.masking import length_mask, masked_mean

__all__ = ["PAD", "GRUSentenceEncoder", "token_lengths"]

PAD = 0  # the padding id (the vocabulary's <eos>)


def token_lengths(tokens: Tensor) -> Tensor:
    """Words before the first padding id of each row: (B, L) long -> (B,) long (L when there is none)."""
    pad = tokens == PAD  # (B, L)
    first = torch.where(pad.any(dim=1), pad.int().argmax(dim=1), torch.full_like(pad[:, 0], tokens.shape[1],
                                                                                 dtype=torch.long))  # (B,)
    return first.long()


class GRUSentenceEncoder(nn.Module):
    """Word embedding + GRU: tokens (B, L) long, lengths (B,) long -> sentences (B, output_dim).

    Args:
        vocab_size: number of word ids, padding (0) included.
        embed_dim: word-embedding width (VSE++: 300).
        hidden: GRU state width per direction.
        layers: stacked GRU layers.
        bidirectional: add a backward GRU; the output then concatenates both directions.
        pooling: ``"last"`` final states or ``"mean"`` masked mean of the outputs (module docstring).
        dropout: on the word embeddings, and between GRU layers when ``layers > 1``.

    Raises:
        ValueError: on tokens that are not (B, L), lengths of another shape, or a length outside
            [1, L] (an empty caption: drop it from the data).
    """

    def __init__(self, *, vocab_size: int, embed_dim: int = 300, hidden: int = 1024, layers: int = 1,
                 bidirectional: bool = False, pooling: Literal["last", "mean"] = "last", dropout: float = 0.0):
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        self.pooling, self.directions = pooling, 2 if bidirectional else 1
        self.output_dim = hidden * self.directions
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(embed_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                          dropout=dropout if layers > 1 else 0.0)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        if tokens.ndim != 2 or lengths.shape != tokens.shape[:1]:
            raise ValueError(f"GRUSentenceEncoder expects tokens (B, L) and lengths (B,), got {tuple(tokens.shape)} "
                             f"and {tuple(lengths.shape)}")
        cpu_lengths = lengths.detach().to("cpu", torch.long)
        if cpu_lengths.numel() and (cpu_lengths.min() < 1 or cpu_lengths.max() > tokens.shape[1]):
            raise ValueError(f"GRUSentenceEncoder: lengths must lie in [1, {tokens.shape[1]}] (the padded length), "
                             f"got min {int(cpu_lengths.min())}, max {int(cpu_lengths.max())}; drop empty captions")
        words = self.dropout(self.embed(tokens))  # (B, L, E)
        packed = pack_padded_sequence(words, cpu_lengths, batch_first=True, enforce_sorted=False)
        outputs, last = self.rnn(packed)  # last: (layers·dirs, B, H)
        if self.pooling == "last":
            top = last[-self.directions:]  # (dirs, B, H) the top layer, forward first
            return top.permute(1, 0, 2).reshape(len(tokens), self.output_dim)  # (B, dirs·H)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=tokens.shape[1])  # (B, L, dirs·H)
        mask = length_mask(lengths.to(outputs.device), tokens.shape[1])  # (B, L)
        return masked_mean(outputs, mask[..., None], dim=1)  # (B, dirs·H)
