"""The GRU sentence encoder: padding never changes a sentence's vector, shapes per option."""
import pytest
import torch

from crossmedia.nn.text import GRUSentenceEncoder, token_lengths


@pytest.mark.parametrize("bidirectional,layers,pooling", [(False, 1, "last"), (True, 2, "last"), (True, 1, "mean")])
def test_padded_batch_gives_each_sentence_its_own_vector(bidirectional, layers, pooling):
    torch.manual_seed(0)
    encoder = GRUSentenceEncoder(vocab_size=12, embed_dim=8, hidden=6, layers=layers, bidirectional=bidirectional,
                                 pooling=pooling).eval()
    tokens = torch.tensor([[3, 4, 5, 0, 0], [7, 2, 9, 10, 11], [6, 0, 0, 0, 0]])  # (3, 5)
    lengths = token_lengths(tokens)
    assert lengths.tolist() == [3, 5, 1]
    out = encoder(tokens, lengths)
    assert out.shape == (3, encoder.output_dim) == (3, 6 * (2 if bidirectional else 1))
    for b in range(3):
        alone = encoder(tokens[b:b + 1, :lengths[b]], lengths[b:b + 1])  # (1, dim) no padding at all
        torch.testing.assert_close(out[b:b + 1], alone, rtol=1e-5, atol=1e-6)


def test_bad_lengths_are_refused_with_the_rule():
    encoder = GRUSentenceEncoder(vocab_size=5, embed_dim=4, hidden=4)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 3\]"):
        encoder(torch.tensor([[1, 2, 0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="tokens \\(B, L\\) and lengths \\(B,\\)"):
        encoder(torch.tensor([1, 2, 0]), torch.tensor([2]))
