"""The zoo: every card loads and reproduces its metric; bad input is refused for people."""
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from crossmedia import zoo
from crossmedia.core import paths
from crossmedia.core.cards import CardError, read_card
from crossmedia.core.checkpoint_io import WeightsError, sha256_file
from crossmedia.core.evaluate import evaluate

NAMES = [entry.name for entry in zoo.list_models()]


def test_zoo_is_not_empty():
    assert {"csq", "csq-video", "dsh", "csq-shapes", "dsh-shapes"} <= set(NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_card_reproduces_its_metrics(name):
    checks = evaluate(name, progress=False)
    assert checks, f"{name} has no metrics on its card"
    for check in checks:
        assert check.ok, str(check)


@pytest.mark.parametrize("name", NAMES)
def test_card_is_complete_and_loads_in_eval_mode(name):
    card = zoo.card(name)
    assert card.paper["title"] and card.summary and card.commands["train"] and card.commands["eval"]
    assert len(card.weights["sha256"]) == 64
    model = zoo.load(name)
    assert not model.training and model.zoo_card.name == name


def test_unknown_name_suggests_closest():
    with pytest.raises(CardError, match="Did you mean: csq"):
        zoo.load("csqq")


@pytest.fixture
def csq_copy(tmp_path):
    """A private copy of the csq card and weights under tmp_path."""
    card = zoo.card("csq")
    weights = tmp_path / card.weights["file"]
    shutil.copy(zoo.resolve_weights(card), weights)
    return card, weights


def test_tampered_weights_are_refused(csq_copy):
    card, weights = csq_copy
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as err:
        zoo.load("csq", weights=weights)
    assert str(weights) in str(err.value) and card.weights["sha256"] in str(err.value)


def test_pickle_with_matching_hash_is_still_refused(tmp_path, csq_copy):
    card, _ = csq_copy
    evil = tmp_path / "csq.safetensors"
    torch.save(zoo.load("csq").state_dict(), evil)
    doctored = yaml.safe_load(card.path.read_text())
    doctored["weights"]["sha256"] = sha256_file(evil)
    (tmp_path / "hashing").mkdir()
    (tmp_path / "hashing" / "csq.yaml").write_text(yaml.safe_dump(doctored))
    with pytest.raises(WeightsError, match="never unpickles"):
        zoo.load(read_card(tmp_path / "hashing" / "csq.yaml"), weights=evil)


def test_class_path_outside_the_package_is_refused(tmp_path):
    doctored = yaml.safe_load(zoo.card("csq").path.read_text())
    doctored["config"]["model"]["class_path"] = "os.system"
    (tmp_path / "hashing").mkdir()
    path = tmp_path / "hashing" / "csq.yaml"
    path.write_text(yaml.safe_dump(doctored))
    with pytest.raises(CardError, match="only classes inside the crossmedia package"):
        read_card(path)
    with pytest.raises(CardError, match="refusing to build 'os.system'"):
        zoo.import_class("os.system")


def test_missing_field_names_file_and_field(tmp_path):
    doctored = yaml.safe_load(zoo.card("csq").path.read_text())
    del doctored["weights"]["sha256"]
    path = tmp_path / "csq.yaml"
    path.write_text(yaml.safe_dump(doctored))
    with pytest.raises(CardError, match=r"csq.yaml: weights.sha256 is missing"):
        read_card(path)


def test_missing_weights_lists_every_searched_path(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(paths, "checkpoint_dirs", lambda: [tmp_path / "home" / "checkpoints", tmp_path / "ckpts"])
    with pytest.raises(WeightsError) as err:
        zoo.load("csq")
    message = str(err.value)
    for searched in (tmp_path / "home" / "checkpoints", tmp_path / "ckpts", tmp_path / "home" / "cache"):
        assert str(searched / "csq.safetensors") in message


def test_weights_search_order_prefers_crossmedia_home(tmp_path, monkeypatch, csq_copy):
    card, weights = csq_copy
    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    shutil.move(weights, tmp_path / "checkpoints" / card.weights["file"])
    assert zoo.resolve_weights(card) == tmp_path / "checkpoints" / card.weights["file"]


def test_url_download_with_file_scheme_is_verified_and_cached(tmp_path, monkeypatch, csq_copy):
    card, weights = csq_copy
    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(paths, "checkpoint_dirs", lambda: [tmp_path / "nowhere"])
    doctored = yaml.safe_load(card.path.read_text())
    doctored["weights"]["url"] = weights.as_uri()
    (tmp_path / "hashing").mkdir()
    (tmp_path / "hashing" / "csq.yaml").write_text(yaml.safe_dump(doctored))
    c = read_card(tmp_path / "hashing" / "csq.yaml")
    model = zoo.load(c)
    assert (tmp_path / "home" / "cache" / "csq.safetensors").is_file()
    reference = zoo.load("csq")
    x = torch.zeros(2, 3, 32, 32)
    assert torch.equal(model(x), reference(x))
    # a url that serves other bytes is refused and leaves nothing in the cache
    (tmp_path / "home" / "cache" / "csq.safetensors").unlink()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    doctored["weights"]["url"] = bad.as_uri()
    (tmp_path / "hashing" / "csq.yaml").write_text(yaml.safe_dump(doctored))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        zoo.load(read_card(tmp_path / "hashing" / "csq.yaml"))
    assert not (tmp_path / "home" / "cache" / "csq.safetensors").exists()


def test_list_models_filters_and_reports_headline():
    entries = zoo.list_models(task="hashing")
    assert entries and all(e.task == "hashing" and "mAP" in e.headline for e in entries)
    assert [e.name for e in zoo.list_models(pattern="csq*")] == sorted(n for n in NAMES if n.startswith("csq"))
    assert zoo.list_models(task="no-such-task") == []
    assert zoo.default_model("hashing") == "csq"


def test_list_models_reads_yaml_only():
    """Listing the zoo stays cheap: no torch or Lightning until a model is built (or ``.inference`` asked)."""
    code = ("import sys; from crossmedia import zoo; entries = zoo.list_models(); "
            "print(len(entries), sorted(m for m in ('torch', 'pytorch_lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(NAMES)), "[]"]


def test_readme_zoo_table_is_generated_from_the_cards():
    from crossmedia.core.zoo_cli import markdown_table

    readme = (paths.checkout_root() / "README.md").read_text()
    assert markdown_table() in readme, "run `crossmedia zoo table --write README.md`"


def test_optional_metric_is_skipped_when_not_logged_and_a_required_one_is_not(tmp_path, csq_copy):
    card, weights = csq_copy
    raw = yaml.safe_load(card.path.read_text())
    raw["metrics"].append({"metric": "only on some data", "key": "test/not_logged", "split": "x", "dataset": "digits",
                           "value": 0.5, "optional": True})
    path = tmp_path / "csq.yaml"
    path.write_text(yaml.safe_dump(raw))
    checks = evaluate(read_card(path), weights=weights, progress=False)
    assert [c.key for c in checks] == ["test/mAP"]
    raw["metrics"][-1].pop("optional")
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(CardError, match=r"csq.yaml: metrics key 'test/not_logged' was not logged by the test loop"):
        evaluate(read_card(path), weights=weights, progress=False)


@pytest.mark.parametrize("field, value, kind", [("weights", "csq.safetensors", "mapping"),
                                                ("metrics", {"a": 1}, "list"), ("config", None, "mapping")])
def test_a_field_of_the_wrong_shape_names_file_and_field(tmp_path, field, value, kind):
    doctored = yaml.safe_load(zoo.card("csq").path.read_text())
    doctored[field] = value
    path = tmp_path / "csq.yaml"
    path.write_text(yaml.safe_dump(doctored))
    with pytest.raises(CardError, match=rf"csq.yaml: {field} must be a {kind}, got {type(value).__name__}"):
        read_card(path)
