"""ST-XlanV's network and pre-training corruptions: TAP replaces exactly the drawn rows (never with
their own tags), MLM masks in BERT's proportions, the cross-modal encoder's shapes and masks
(padding never changes the valid outputs), and XlanV has no tag stream."""
import pytest
import torch

from crossmedia.tasks.caption.video.models import CrossModalDecoder, STXlanVEncoder, text_tokens
from crossmedia.tasks.caption.video.pretrain import IGNORE_INDEX, mlm_mask, tap_replace


def test_tap_replaces_exactly_the_drawn_rows_never_with_their_own_tags():
    tags = torch.stack([torch.arange(400) % 8 + 1, torch.arange(400) % 9 + 9], 1)   # (400, 2), many distinct pairs
    new, labels = tap_replace(tags, 0.5, torch.Generator().manual_seed(0))
    replaced = labels.bool()
    # the drawn rows are exactly those of the first uniform draw below p (the function's documented order)
    drawn = torch.rand(400, generator=torch.Generator().manual_seed(0)) < 0.5
    assert torch.equal(replaced, drawn)
    assert torch.equal(new[~replaced], tags[~replaced])                      # untouched rows keep their tags
    assert (new[replaced] != tags[replaced]).any(1).all()                    # never their own tags ...
    pairs = {tuple(row) for row in tags.tolist()}
    assert all(tuple(row) in pairs for row in new[replaced].tolist())        # ... but another video's
    assert 0.4 < labels.float().mean() < 0.6
    assert labels.dtype == torch.long and new.dtype == tags.dtype


def test_tap_leaves_a_row_with_no_other_tags_alone():
    same = torch.tensor([[1, 2], [1, 2], [1, 2]])
    new, labels = tap_replace(same, 1.0)
    assert torch.equal(new, same) and labels.tolist() == [0, 0, 0]
    new, labels = tap_replace(torch.tensor([[1, 2], [3, 4]]), 1.0)
    assert new.tolist() == [[3, 4], [1, 2]] and labels.tolist() == [1, 1]
    with pytest.raises(ValueError, match="p must be in"):
        tap_replace(same, 1.5)


def test_mlm_proportions_on_a_large_batch():
    vocab, mask_id = 50, 50
    tokens = torch.randint(2, vocab, (400, 30), generator=torch.Generator().manual_seed(1))
    tokens[:, 25:] = 0                                                       # padding is never selected
    inputs, targets = mlm_mask(tokens, vocab, mask_id, 0, torch.Generator().manual_seed(2), random_from=2)
    selected = targets != IGNORE_INDEX
    real = tokens != 0
    assert not selected[~real].any() and torch.equal(inputs[~real], tokens[~real])
    assert torch.equal(targets[selected], tokens[selected])
    assert abs(selected.sum() / real.sum() - 0.15) < 0.01
    masked = (inputs == mask_id) & selected
    changed = (inputs != tokens) & (inputs != mask_id) & selected
    kept = (inputs == tokens) & selected
    n = selected.sum()
    assert abs(masked.sum() / n - 0.8) < 0.03
    # a random draw equal to the original token counts as kept: expected 0.1 * (1 - 1/48) changed
    assert abs(changed.sum() / n - 0.1 * 47 / 48) < 0.025
    assert abs(kept.sum() / n - (0.1 + 0.1 / 48)) < 0.025
    assert ((inputs[changed] >= 2) & (inputs[changed] < vocab)).all()
    assert torch.equal(inputs[~selected], tokens[~selected])                 # unselected tokens never change


def test_text_tokens_wrap_the_caption_in_cls_and_sep():
    captions = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0], [4, 4, 4, 0]])
    assert text_tokens(captions, 0, 10, 11).tolist() == [[10, 5, 6, 11, 0, 0], [10, 7, 11, 0, 0, 0],
                                                         [10, 4, 4, 4, 11, 0]]
    assert text_tokens(None, 2, 10, 11).tolist() == [[10, 11], [10, 11]]


def _encoder(tags=True, seed=0):
    torch.manual_seed(seed)
    return STXlanVEncoder(9, 6, 5, tag_vocab_size=7 if tags else None, dim=16, heads=2, blocks=1, dropout=0.0,
                          word_dropout=0.0, att_dropout=0.0).eval()


def _streams(rows=3, frames=4, segments=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"appearance": torch.randn(rows, frames, 6, generator=g),
            "appearance_mask": torch.ones(rows, frames, dtype=torch.bool),
            "motion": torch.randn(rows, segments, 5, generator=g), "motion_mask": torch.ones(rows, segments, dtype=torch.bool),
            "tags": torch.tensor([[1, 4], [2, 5], [3, 6]])[:rows]}


def _joined(encoder, batch):
    parts = encoder.encode_video(batch)
    parts["text"] = encoder.encode_text(text_tokens(None, batch["appearance"].shape[0], *encoder.special_ids()[:2]))
    return STXlanVEncoder.join(parts)


def test_cross_modal_encoder_shapes_and_padding_invariance(one_thread):
    encoder, batch = _encoder(), _streams()
    torch.manual_seed(1)
    cross = CrossModalDecoder(9, dim=16, heads=2, blocks=1, dropout=0.0, att_dropout=0.0).eval()
    with torch.no_grad():
        feats, mask = _joined(encoder, batch)
        assert feats.shape == (3, 2 + 2 + 4 + 2, 16) and mask.shape == (3, 10) and mask.all()
        pooled, refined = cross.refine(feats, mask)
        assert pooled.shape == (3, 16) and refined.shape == (3, 10, 16)
        # pad every stream with garbage rows marked invalid: the valid outputs stay the same
        padded = dict(batch)
        padded["appearance"] = torch.cat([batch["appearance"], 100 * torch.randn(3, 3, 6)], 1)
        padded["appearance_mask"] = torch.cat([batch["appearance_mask"], torch.zeros(3, 3, dtype=torch.bool)], 1)
        padded["motion"] = torch.cat([batch["motion"], -50 * torch.ones(3, 1, 5)], 1)
        padded["motion_mask"] = torch.cat([batch["motion_mask"], torch.zeros(3, 1, dtype=torch.bool)], 1)
        feats_p, mask_p = _joined(encoder, padded)
        assert feats_p.shape[1] == 14 and mask_p.sum() == mask.sum()
        pooled_p, refined_p = cross.refine(feats_p, mask_p)
        torch.testing.assert_close(pooled_p, pooled, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(refined_p[mask_p].view(3, 10, 16), refined, atol=1e-5, rtol=1e-5)
        # the decoder's first step reads the same context
        ctx, ctx_p = cross.prepare(feats, mask), cross.prepare(feats_p, mask_p)
        words = torch.zeros(3, dtype=torch.long)
        torch.testing.assert_close(cross.step(words, cross.init_state(ctx_p), ctx_p)[0],
                                   cross.step(words, cross.init_state(ctx), ctx)[0], atol=1e-5, rtol=1e-5)


def test_tags_change_the_output_and_xlanv_has_no_tag_stream(one_thread):
    encoder, batch = _encoder(), _streams()
    with torch.no_grad():
        feats, _ = _joined(encoder, batch)
        other = dict(batch, tags=batch["tags"].flip(0))
        assert not torch.allclose(_joined(encoder, other)[0], feats)
    xlanv = _encoder(tags=False)
    assert not xlanv.has_tags and not any(".tags." in name for name, _ in xlanv.named_parameters())
    without = {k: v for k, v in batch.items() if k != "tags"}
    with torch.no_grad():
        feats_x, mask_x = _joined(xlanv, without)
    assert feats_x.shape[1] == 2 + 4 + 2 and mask_x.shape == (3, 8)
    with pytest.raises(KeyError, match="tags=False"):
        encoder.encode_video(without)


def test_too_many_positions_name_the_stream():
    encoder = STXlanVEncoder(9, 6, 5, dim=16, heads=2, blocks=1, max_positions=3)
    with pytest.raises(ValueError, match="appearance stream has 4 positions"):
        encoder.encode_video({k: v for k, v in _streams().items() if k != "tags"})
