"""Text-to-image metrics against values computed by hand: SOA, R-precision, diversity."""
from __future__ import annotations

import math

import pytest
import torch

from crossmedia.tasks.t2i.metrics import Diversity, RPrecision, SemanticObjectAccuracy

TAGS = ["circle", "square", "blue", "red", "blue circle", "red circle", "red square"]
ON, OFF = 3.0, -3.0


def _logits(found: dict[str, float]) -> torch.Tensor:
    """A (T,) logit row: the named tags as given, every other tag OFF."""
    return torch.tensor([found.get(tag, OFF) for tag in TAGS])


# three generated images and the objects of their prompts
SCENES = [
    [{"shape": "circle", "colour": "red"}],
    [{"shape": "square", "colour": "red"}, {"shape": "circle", "colour": "blue"}],
    [{"shape": "circle", "colour": "red"}, {"shape": "circle", "colour": "red"}],  # "red circle" named once
]
LOGITS = torch.stack([
    _logits({"circle": ON, "red": ON, "red circle": 0.0}),  # σ(0) = 0.5 is not > 0.5: the pair is missed
    _logits({"square": ON, "circle": OFF, "red": ON, "blue": OFF, "red square": ON, "blue circle": ON}),
    _logits({"circle": ON, "red": -0.1, "red circle": ON}),
])


def test_soa_by_hand():
    soa = SemanticObjectAccuracy(TAGS)
    soa.update(LOGITS[:2], SCENES[:2])  # two updates accumulate
    soa.update(LOGITS[2:], SCENES[2:])
    out = soa.compute()
    # shapes: circle named in images 0, 1, 2, found in 0 and 2 -> 2/3; square named in 1, found -> 1
    assert out["shape"].item() == pytest.approx((2 / 3 + 1) / 2)
    # colours: red named in 0, 1, 2, found in 0, 1 -> 2/3; blue named in 1, missed -> 0
    assert out["colour"].item() == pytest.approx((2 / 3 + 0) / 2)
    # pairs: red circle named in 0 and 2, found in 2 -> 1/2; red square and blue circle (image 1) found -> 1, 1
    assert out["pair"].item() == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert out["mean"].item() == pytest.approx((5 / 6 + 1 / 3 + 5 / 6) / 3)
    # every named pair found: image 1 and image 2, not image 0
    assert out["image"].item() == pytest.approx(2 / 3)
    assert soa.per_attribute()["pair"] == {"red circle": 0.5, "red square": 1.0, "blue circle": 1.0}
    assert soa.named[0].tolist() == [3, 1, 0, 0, 0, 0, 0]  # shapes: circle 3 images, square 1


def test_soa_states_merge_as_under_ddp():
    """Two processes' states summed (what dist_reduce_fx='sum' does) give the one-process value."""
    whole, first, second = (SemanticObjectAccuracy(TAGS) for _ in range(3))
    whole.update(LOGITS, SCENES)
    first.update(LOGITS[:1], SCENES[:1])
    second.update(LOGITS[1:], SCENES[1:])
    first.merge_state(second)
    assert {k: v.item() for k, v in first.compute().items()} == {k: v.item() for k, v in whole.compute().items()}


def test_soa_threshold_and_bad_inputs():
    strict = SemanticObjectAccuracy(TAGS, threshold=0.99)  # σ(3) = 0.953: nothing counts as found
    strict.update(LOGITS, SCENES)
    assert strict.compute()["mean"].item() == 0.0
    soa = SemanticObjectAccuracy(TAGS)
    with pytest.raises(ValueError, match=r"objects\[0\] names the shape 'star'.*tag_names"):
        soa.update(LOGITS[:1], [[{"shape": "star", "colour": "red"}]])
    with pytest.raises(ValueError, match=r"\(B, 7\)"):
        soa.update(LOGITS[:, :3], SCENES)
    with pytest.raises(ValueError, match="3 rows"):
        soa.update(LOGITS, SCENES[:2])
    with pytest.raises(ValueError, match="before any update"):
        soa.compute()


# R-precision

def test_r_precision_identical_embeddings_is_one():
    emb = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    metric = RPrecision()
    metric.update(emb[:150], emb[:150], torch.arange(150))
    metric.update(emb[150:], emb[150:], torch.arange(150, 300))
    assert metric.compute().item() == 1.0


def test_r_precision_of_unrelated_embeddings_is_chance():
    g = torch.Generator().manual_seed(1)
    metric = RPrecision()
    metric.update(torch.randn(2000, 32, generator=g), torch.randn(2000, 32, generator=g), torch.arange(2000))
    value = metric.compute().item()
    assert abs(value - 0.01) < 0.008  # chance 1/100; binomial std over 2000 images is 0.0022


def test_r_precision_by_hand_with_three_candidates():
    """Three images, three candidates: each image's negatives are the two other captions."""
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    images = torch.tensor([[1.0, 0.1],    # nearest caption 0: hit
                           [1.0, 1.0],    # cos 0.707 to caption 1 and to caption 0: a tie is a miss
                           [-2.0, -0.2]])  # nearest caption 2 (the scale does not matter): hit
    metric = RPrecision(candidates=3)
    metric.update(images, texts, torch.tensor([7, 8, 9]))
    assert metric.compute().item() == pytest.approx(2 / 3)
    images[1] = torch.tensor([0.1, 1.0])  # now nearest caption 1
    metric.reset()
    metric.update(images, texts, torch.tensor([7, 8, 9]))
    assert metric.compute().item() == 1.0


def test_r_precision_negatives_are_distinct_captions_of_other_images_and_seeded():
    ids = torch.arange(120) // 3  # 40 images, 3 captions each
    metric = RPrecision(candidates=100, seed=3)
    negatives = metric.negatives(ids)
    assert negatives.shape == (120, 99)
    assert (ids[negatives] != ids[:, None]).all()  # never a caption of the same image
    assert all(len(set(row)) == 99 for row in negatives.tolist())  # without replacement
    assert torch.equal(negatives, RPrecision(seed=3).negatives(ids))  # deterministic given the seed
    assert not torch.equal(negatives, RPrecision(seed=4).negatives(ids))
    assert set(negatives[:3].flatten().tolist()) <= set(range(3, 120))  # rows 0-2 (image 0) draw from 117 rows
    assert set(negatives.flatten().tolist()) == set(range(120))  # every caption serves as a negative somewhere


def test_r_precision_needs_enough_captions_of_other_images():
    metric = RPrecision()
    metric.update(torch.randn(50, 4), torch.randn(50, 4), torch.arange(50))
    with pytest.raises(ValueError, match="got 50 captions in all"):
        metric.compute()
    same = RPrecision(candidates=3)
    same.update(torch.randn(4, 4), torch.randn(4, 4), torch.tensor([0, 0, 0, 1]))
    with pytest.raises(ValueError, match="has only 1 of other images"):
        same.compute()


# diversity

def test_diversity_by_hand():
    a, b, c = [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]
    features = torch.tensor([[a, b, c],                        # 1 − cos: a-b 1, a-c and b-c 1 − 1/√2
                             [[2.0, 3.0], [2.0, 3.0], [4.0, 6.0]]])  # one direction: 0
    metric = Diversity()
    metric.update(features[:1])
    assert metric.compute().item() == pytest.approx((1 + 2 * (1 - 1 / math.sqrt(2))) / 3)
    metric.update(5 * features[1:])  # the scale does not matter
    assert metric.compute().item() == pytest.approx((1 + 2 * (1 - 1 / math.sqrt(2))) / 6)
    with pytest.raises(ValueError, match="n ≥ 2"):
        metric.update(torch.randn(3, 1, 4))
