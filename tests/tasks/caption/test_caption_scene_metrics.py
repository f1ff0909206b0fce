"""Scene checks of captions (word precision, object errors and recall) against hand-counted captions,
the scenes' own references (all true: 0 errors), and CaptionMetric's collection of one caption per image."""
from collections import Counter

import pytest
import torch

from crossmedia.tasks.caption.metrics import CaptionMetric
from crossmedia.tasks.caption.scene_metrics import mentions, object_mentions, word_precision


def obj(colour, shape):
    return {"colour": colour, "shape": shape}


BLUE_DIAMOND_SCENE = [obj("blue", "diamond"), obj("yellow", "star")]


def test_mentions_read_counts_sizes_and_synonyms():
    assert mentions("there is a big blue diamond and a big blue diamond") == Counter({("blue", "diamond"): 2})
    assert mentions("two little violet discs above an orange plus sign") == Counter(
        {("purple", "circle"): 2, ("orange", "cross"): 1})
    assert mentions("a pair of red boxes on a dark background") == Counter({("red", "square"): 2})
    assert mentions("three big green stars") == Counter({("green", "star"): 3})
    # a colour without a shape right after it (size words between are fine) is no colour-shape mention
    assert mentions("two circles one red and one blue") == Counter()
    assert mentions("three red shapes") == Counter()
    assert mentions("") == Counter()


def test_object_mentions_by_hand():
    scenes = [BLUE_DIAMOND_SCENE,                                          # 2 objects
              [obj("red", "star"), obj("red", "star"), obj("green", "circle")],  # 3 objects
              [obj("orange", "diamond")]]                                  # 1 object
    captions = ["there is a big blue diamond and a big blue diamond",      # blue diamond twice, once held: 1 error; named 1
                "two red stars and a green square",                        # red stars 2 of 2; green square absent: 1 error; named 2
                "an orange diamond in the centre"]                         # right: 0 errors; named 1
    scores = object_mentions(captions, scenes)
    assert scores["object_errors"] == pytest.approx((1 + 1 + 0) / 3)
    assert scores["object_error_rate"] == pytest.approx(2 / 3)
    assert scores["object_recall"] == pytest.approx((1 + 2 + 1) / (2 + 3 + 1))
    # "three red stars" on a scene with two: one too many; naming a look more often than held is an error
    assert object_mentions(["three red stars"], [scenes[1]])["object_errors"] == 1
    assert object_mentions(["an image"], [scenes[0]]) == {"object_errors": 0.0, "object_error_rate": 0.0,
                                                          "object_recall": 0.0}
    with pytest.raises(ValueError, match="2 captions for 1 images"):
        object_mentions(captions[:2], scenes[:1])


def test_word_precision_counts_true_colour_and_shape_words():
    captions = ["a red circle and a blue square", "a green star"]
    objects = [[obj("red", "circle"), obj("blue", "circle")], [obj("green", "star")]]
    # colours red, blue, green all true (3/3) ... but the scene of image 0 has no square: shapes 2/3
    assert word_precision(captions, objects) == {"colour": 1.0, "shape": 2 / 3}
    assert word_precision(["an image"], [[obj("red", "star")]]) == {"colour": 0.0, "shape": 0.0}


def test_the_scenes_references_make_no_object_errors():
    """Every built-in caption is true of its image, so the metric must count no error on them."""
    import numpy as np

    from crossmedia.data.builtin.scenes import caption_scene, sample_scene

    captions, scenes = [], []
    for i in range(300):
        rng = np.random.default_rng([7, i])
        scene = sample_scene(rng)
        for caption in caption_scene(scene, rng):
            captions.append(" ".join(caption.lower().replace(",", " ").replace(".", " ").split()))
            scenes.append([{"colour": o.colour, "shape": o.shape} for o in scene.objects])
    scores = object_mentions(captions, scenes)
    assert scores["object_errors"] == 0.0
    assert 0.2 < scores["object_recall"] < 0.8  # some captions name every object, some only one or none


def test_caption_metric_keeps_one_caption_per_image_and_scores_it():
    words = ["<eos>", "a", "red", "star", "blue", "circle"]
    refs = [["a red star"], ["a blue circle"]]
    gathered = []

    def gather(values, index):  # what gather_by_index does on one process: first row per position
        gathered.append(index.tolist())
        first = {}
        for row, i in enumerate(index.tolist()):
            first.setdefault(i, row)
        order = sorted(first)
        return values[[first[i] for i in order]], order

    metric = CaptionMetric(decode=lambda row: " ".join(words[t] for t in row if t), references=refs, gather=gather,
                           protocol="cider", max_len=4)
    metric.update(torch.tensor([[4, 5, 0]]), torch.tensor([1]))                 # image 1: "blue circle"
    metric.update(torch.tensor([[1, 2, 3, 0, 0, 0, 0], [2, 3, 0, 0, 0, 0, 0]]), torch.tensor([0, 1]))  # padded to 5
    scores = metric.compute()
    assert gathered == [[1, 0, 1]]
    assert metric.samples == [(0, "a red star"), (1, "blue circle")]             # the repeat of image 1 dropped
    from crossmedia.tasks.caption.cider import corpus_cider

    assert scores == {"CIDEr": pytest.approx(corpus_cider(["a red star", "blue circle"], refs)[0])}
    metric.reset()
    assert metric.compute() == {} and metric.samples == []
