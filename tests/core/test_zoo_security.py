"""A card is untrusted input: it cannot write outside its folders, call functions, or make the
zoo load foreign weights; the user's own fine-tuned weights load only when the user says so."""
import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from crossmedia import zoo
from crossmedia.core import paths
from crossmedia.core.cards import CardError, read_card
from crossmedia.core.checkpoint_io import WeightsError, save_weights, sha256_file
from crossmedia.core.zoo_cli import zoo_main


def _doctored(tmp_path, change) -> Path:
    """A copy of the csq card under tmp_path/zoo/hashing, edited by ``change(raw)``."""
    raw = yaml.safe_load(zoo.card("csq").path.read_text())
    change(raw)
    path = tmp_path / "zoo" / "hashing" / "csq.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    """$CROSSMEDIA_HOME in tmp_path, and no checkpoint folder that holds the zoo's files."""
    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(paths, "checkpoint_dirs", lambda: [tmp_path / "home" / "checkpoints"])
    return tmp_path / "home"


# 1. weights.file is a plain file name inside its folder

def test_weights_file_leaving_the_cache_is_refused_and_nothing_is_written(tmp_path, home):
    payload = tmp_path / "served" / "payload.pth"
    payload.parent.mkdir()
    payload.write_text("import os  # a .pth file in site-packages runs at every Python start\n")
    escape = "../../evil.pth"  # from <home>/cache this lands in tmp_path
    path = _doctored(tmp_path, lambda raw: raw["weights"].update(file=escape, url=payload.as_uri(),
                                                                 sha256=sha256_file(payload)))
    with pytest.raises(CardError) as err:
        read_card(path)
    assert str(err.value).startswith(f"{path}: weights.file '../../evil.pth' must be a file name inside the "
                                     "checkpoints folder")
    # a Card built around read_card's check is refused again where the name is joined
    card = dataclasses.replace(read_card(_doctored(tmp_path, lambda raw: None)),
                               weights={"file": escape, "url": payload.as_uri(), "sha256": sha256_file(payload)})
    with pytest.raises(CardError, match=r"weights.file '../../evil.pth' must be a file name inside"):
        zoo.load(card)
    assert not (tmp_path / "evil.pth").exists() and not (home / "evil.pth").exists()
    assert not (home / "cache").exists() or not any((home / "cache").iterdir())


def test_absolute_weights_file_is_refused(tmp_path):
    target = tmp_path / "abs.safetensors"
    path = _doctored(tmp_path, lambda raw: raw["weights"].update(file=str(target)))
    with pytest.raises(CardError, match=rf"csq.yaml: weights.file '{target}' must be a file name .*path separator"):
        read_card(path)


@pytest.mark.parametrize("name", ["..", ".", "", "a/b.safetensors", "a\\b.safetensors"])
def test_names_with_a_folder_part_are_refused(tmp_path, name):
    path = _doctored(tmp_path, lambda raw: raw["weights"].update(file=name))
    with pytest.raises(CardError, match="weights.file"):
        read_card(path)


def test_a_link_in_the_cache_pointing_outside_is_refused(tmp_path, home):
    (home / "cache").mkdir(parents=True)
    outside = tmp_path / "outside.safetensors"
    (home / "cache" / "csq.safetensors").symlink_to(outside)
    link = "csq.safetensors \\(weights of 'csq'\\) is a link"
    with pytest.raises(WeightsError, match=f"{link}: it resolves to {outside}, outside"):
        zoo.load("csq")
    assert not outside.exists()


# 2. only LightningModule / LightningDataModule subclasses are built

@pytest.mark.parametrize("part, class_path, what", [
    ("model", "crossmedia.core.checkpoint_io.save_weights", "a function"),
    ("model", "crossmedia.core.cards.Card", "a class"),
    ("data", "crossmedia.tasks.hashing.module.CSQModule", "a class"),  # a LightningModule is no DataModule
])
def test_card_naming_anything_but_a_lightning_class_is_refused(tmp_path, part, class_path, what):
    written = tmp_path / "written.safetensors"

    def change(raw):
        raw["config"][part] = {"class_path": class_path,
                               "init_args": {"state_dict": {}, "path": str(written)}}
    path = _doctored(tmp_path, change)
    card = read_card(path)  # the prefix check passes: the class check happens where it is built
    base = {"model": "LightningModule", "data": "LightningDataModule"}[part]
    with pytest.raises(CardError) as err:
        zoo.build(card, part)
    assert str(err.value).startswith(f"{path}: config.{part}.class_path: refusing to build {class_path!r}: it is "
                                     f"{what}, not a subclass of pytorch_lightning.{base}")
    if part == "model":
        with pytest.raises(CardError, match="refusing to build"):
            zoo.load(card)
    assert not written.exists()


# 3. the user's own fine-tuned weights

@pytest.fixture
def own_weights(tmp_path):
    """csq's weights with the last layer's sign flipped, saved as safetensors."""
    state = zoo.load("csq").state_dict()
    state["net.head.layers.5.weight"] = -state["net.head.layers.5.weight"]
    path = tmp_path / "my-csq.safetensors"
    save_weights(state, path)
    return path


def test_own_weights_need_the_opt_in_and_the_message_says_which_case(own_weights):
    with pytest.raises(WeightsError) as err:
        zoo.load("csq", weights=own_weights)
    message = str(err.value)
    assert f"{own_weights} is not the zoo's csq file" in message and zoo.card("csq").weights["sha256"] in message
    assert "own_weights=True" in message and "--own-weights" in message and "delete" not in message
    mine, reference = zoo.load("csq", weights=own_weights, own_weights=True), zoo.load("csq")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert not mine.training
    delta = (mine(x) - reference(x)).abs().max().item()
    assert delta > 0.1, delta  # the flipped layer is what was loaded


def test_own_weights_are_still_never_unpickled_and_must_fit(tmp_path, own_weights):
    pickle = tmp_path / "my-csq.ckpt"
    torch.save(zoo.load("csq").state_dict(), pickle)
    with pytest.raises(WeightsError, match="never unpickles"):
        zoo.load("csq", weights=pickle, own_weights=True)
    partial = tmp_path / "partial.safetensors"
    save_weights({"net.head.layers.5.weight": torch.zeros(3)}, partial)
    with pytest.raises(WeightsError, match=f"{partial} does not fit the csq architecture"):
        zoo.load("csq", weights=partial, own_weights=True)


def test_zoo_eval_takes_the_same_opt_in(tmp_path, own_weights, capsys):
    assert zoo_main(["eval", "csq", "--weights", str(own_weights)]) == 1
    assert "--own-weights" in capsys.readouterr().err
    pickle = tmp_path / "my-csq.ckpt"
    torch.save({"w": torch.zeros(1)}, pickle)
    assert zoo_main(["eval", "csq", "--weights", str(pickle), "--own-weights"]) == 1
    assert "never unpickles" in capsys.readouterr().err  # the flag reached load: the hash check was passed
