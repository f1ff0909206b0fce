"""SceneTagger (encoder pre-training on the scenes' ground truth) and CaptionModule(encoder_from=...)."""
import types

import pytest
import torch
from PIL import Image

from crossmedia.core.checkpoint_io import save_weights
from crossmedia.tasks.caption.module import CaptionModule
from crossmedia.tasks.caption.tagger import SceneTagger, scene_tags, tag_scores, tag_targets

SCENES = [[{"shape": "circle", "colour": "red"}],
          [{"shape": "square", "colour": "blue"}, {"shape": "circle", "colour": "blue"}],
          [{"shape": "square", "colour": "red"}]]
VOCAB = ["<eos>", "<unk>", "a", "red", "circle"]


def test_tags_and_targets():
    tags = scene_tags(SCENES)
    assert tags == ["circle", "square", "blue", "red", "blue circle", "blue square", "red circle", "red square"]
    targets = tag_targets(SCENES + [[{"shape": "star", "colour": "red"}]], tags)  # star: no column
    assert targets.tolist() == [[1, 0, 0, 1, 0, 0, 1, 0],
                                [1, 1, 1, 0, 1, 1, 0, 0],
                                [0, 1, 0, 1, 0, 0, 0, 1],
                                [0, 0, 0, 1, 0, 0, 0, 0]]


def test_tag_scores_by_hand():
    tags = ["circle", "square", "red", "red circle", "red square"]
    targets = torch.tensor([[1., 0, 1, 1, 0], [0, 1, 1, 0, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    logits = torch.tensor([[2., -1, 1, 3, -1],
                           [1., 2, -1, -2, 2],  # circle wrongly present, red wrongly absent
                           [3., 1, -2, 1, -1],  # red circle wrongly present
                           [-1., -3, -1, 0.5, -1]])  # red circle wrongly present
    scores = tag_scores(logits, targets, tags)
    # circle: logits 3,2,1,-1 put both positives first -> AP 1; square: 2,1 first -> 1;
    # red circle, red square: their one positive has the top logit -> 1
    # shape tags (circle, square): circle acc 3/4, square acc 4/4; colour tag (red): acc 3/4
    assert scores["shape_accuracy"] == pytest.approx((0.75 + 1.0) / 2)
    assert scores["colour_accuracy"] == pytest.approx(0.75)
    # red's AP with a tie at -1 between a positive and a negative: torchmetrics treats the tied pair as one
    # threshold -> precision at that threshold 2/3, recall 1 -> AP = 0.5·1 + 0.5·(2/3)
    assert scores["mAP"] == pytest.approx((1 + 1 + (0.5 + 0.5 * 2 / 3) + 1 + 1) / 5)


def _with_objects(objects):
    """A data module stand-in that only knows each image's ground-truth objects (or has none)."""
    return types.SimpleNamespace(scene_objects=lambda split: objects)


def test_tagger_learns_which_shapes_are_present(one_thread, descend, stub_trainer):
    """Tiny images with one bright object: a square or a plus in some cell; the tagger must tell them apart."""
    g = torch.Generator().manual_seed(0)
    images, objects = [], []
    for i in range(64):
        image = torch.zeros(3, 32, 32)
        r, c = (int(x) * 16 for x in torch.randint(0, 2, (2,), generator=g))
        shape = "square" if i % 2 else "cross"
        if shape == "square":
            image[:, r + 4:r + 12, c + 4:c + 12] = 1
        else:
            image[:, r + 7:r + 9, c + 2:c + 14] = 1
            image[:, r + 2:r + 14, c + 7:c + 9] = 1
        images.append(image)
        objects.append([{"shape": shape, "colour": "white"}])
    images = torch.stack(images)
    torch.manual_seed(0)
    tagger = SceneTagger(backbone="resnet18", stage=2, lr=3e-3)
    tagger._trainer = stub_trainer("fit", _with_objects(objects))
    tagger.configure_model()
    assert tagger.tag_names == ["cross", "square", "white", "white cross", "white square"]
    tagger.log = lambda *a, **k: None
    batch = {"images": images, "index": torch.arange(64)}
    losses = descend(lambda step: tagger.training_step(batch, step), tagger.configure_optimizers(), 30)
    assert losses[-1] < 0.3 * losses[0]
    tagger.eval()
    metric = tagger.metric("train")
    with torch.no_grad():
        metric.update(tagger(images[:40]), batch["index"][:40])
        metric.update(tagger(images[30:]), batch["index"][30:])  # positions 30..39 twice, as DDP padding repeats
    scores = metric.compute()
    assert scores["shape_accuracy"] == 1.0 and scores["mAP"] == pytest.approx(1.0)
    tagger.train()
    assert tagger.tags(images[:2]) == [["cross", "white", "white cross"], ["square", "white", "white square"]]
    assert tagger.training  # tags() decides in eval mode and gives the mode back
    pil = Image.fromarray(((images[1] + 1) * 127.5).clamp(0, 255).byte().permute(1, 2, 0).numpy())
    assert tagger.tags(pil) == tagger.tags(images[1])
    with pytest.raises(TypeError, match="PIL images"):
        tagger.tags(["not an image"])


def test_tagger_without_ground_truth_says_what_to_do(stub_trainer):
    tagger = SceneTagger(backbone="resnet18")
    tagger._trainer = stub_trainer("fit", _with_objects(None))
    with pytest.raises(ValueError, match="objects.*pretrained: true"):
        tagger.configure_model()


def test_captioner_starts_its_encoder_from_a_tagger(tmp_path, stub_trainer):
    torch.manual_seed(0)
    tagger = SceneTagger(tags=["circle", "red", "red circle"], backbone="resnet18", stage=2)
    save_weights({k: v.clone() for k, v in tagger.state_dict().items()}, tmp_path / "tagger.safetensors")
    torch.manual_seed(1)
    model = CaptionModule(vocab=VOCAB, backbone="resnet18", stage=2, dim=16, encoder_from=str(tmp_path / "tagger.safetensors"))
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    assert not torch.equal(model.encoder.net.conv1.weight, tagger.encoder.net.conv1.weight)
    model._trainer = stub_trainer("test", _with_objects(None))
    model.configure_model()  # evaluating a trained model keeps its weights
    assert not torch.equal(model.encoder.net.conv1.weight, tagger.encoder.net.conv1.weight)
    model._trainer = stub_trainer("fit", _with_objects(None))
    model.configure_model()
    for key, value in tagger.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
    assert all(torch.equal(model.decoder.state_dict()[k], v) for k, v in decoder_before.items())

    other_stage = CaptionModule(vocab=VOCAB, backbone="resnet18", stage=3, dim=16,
                                encoder_from=str(tmp_path / "tagger.safetensors"))
    with pytest.raises(ValueError, match="encoder_from.*stage 3"):
        other_stage.configure_model()
    features = CaptionModule(vocab=VOCAB, feature_dim=8, encoder_from=str(tmp_path / "tagger.safetensors"))
    with pytest.raises(ValueError, match="precomputed features"):
        features.configure_model()
    with pytest.raises(ValueError, match="not both"):
        CaptionModule(vocab=VOCAB, init_from="caption-xe", encoder_from="scene-tagger")
