"""``zoo export`` refuses before it writes: a name with a folder part, a class that breaks the task
contract, a run whose weights hold NaN or inf (or would overflow the storage dtype)."""
import pytest
import torch
import yaml

from crossmedia.core.cards import CardError
from crossmedia.core.checkpoint_io import WeightsError
from crossmedia.core.export import export_run
from crossmedia.core.zoo_cli import zoo_main

MODEL = {"class_path": "crossmedia.tasks.hashing.module.CSQModule",
         "init_args": {"num_classes": 10, "bits": 16, "backbone": "test_resnet", "hidden": 32}}
DATA = {"class_path": "crossmedia.tasks.hashing.data.HashingDataModule",
        "init_args": {"dataset": "digits", "batch_size": 64}}


def _run(tmp_path, state=None, model=MODEL, data=DATA):
    """A run folder (config.yaml + checkpoints/last.ckpt) without training: ``state`` edits the
    freshly built module's state dict."""
    from crossmedia.tasks.hashing.module import CSQModule

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"seed_everything": 0, "model": model, "data": data,
                                                     "trainer": {"max_steps": 1}}))
    weights = CSQModule(**MODEL["init_args"]).state_dict()
    if state:
        state(weights)
    hparams = dict(MODEL["init_args"])  # what a fit saves, fit hparams (num_classes) included
    torch.save({"state_dict": weights, "hyper_parameters": hparams}, run / "checkpoints" / "last.ckpt")
    return run


def _export(run, tmp_path, **kwargs):
    return export_run(run, zoo_dir=tmp_path / "zoo", checkpoints_dir=tmp_path / "ckpt", progress=False,
                      **{"name": "tiny", **kwargs})


def _nothing_written(tmp_path):
    return not (tmp_path / "zoo").exists() and not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", ".."])
def test_export_name_with_a_folder_part_is_refused(tmp_path, name, capsys):
    with pytest.raises(CardError, match=rf"^name \(--name\) '{name}' must be a file name inside the zoo and"):
        _export(tmp_path / "no-run", tmp_path, name=name)
    assert _nothing_written(tmp_path) and not (tmp_path / "x.safetensors").exists()
    assert zoo_main(["export", str(tmp_path / "no-run"), "--name", name]) == 1
    assert capsys.readouterr().err.startswith(f"crossmedia zoo export: name (--name) '{name}' must be a file name")


def test_export_refuses_non_finite_weights_naming_file_count_and_tensors(tmp_path):
    def poison(state):
        state["net.head.layers.0.weight"][0, 0] = float("nan")
        state["net.head.layers.0.bias"][1] = float("inf")
    run = _run(tmp_path, poison)
    with pytest.raises(WeightsError) as err:
        _export(run, tmp_path)
    message = str(err.value)
    total = len(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
    assert message.startswith(f"{run / 'checkpoints' / 'last.ckpt'}: 2 of {total} weight tensors hold NaN or inf "
                              "(net.head.layers.0.weight, net.head.layers.0.bias); the run diverged")
    assert _nothing_written(tmp_path)


def test_export_refuses_weights_that_overflow_the_storage_dtype(tmp_path):
    run = _run(tmp_path, lambda state: state["net.head.layers.0.bias"].fill_(1e6))  # float16 max is 65504
    with pytest.raises(WeightsError, match=r"1 of \d+ weight tensors hold NaN or inf \(net.head.layers.0.bias\); "
                                           "they overflow float16"):
        _export(run, tmp_path, dtype="float16")
    assert _nothing_written(tmp_path)


def test_export_names_the_class_and_what_it_lacks_of_the_task_contract(tmp_path):
    run = _run(tmp_path, model={"class_path": "crossmedia.core.task.TaskModule", "init_args": {}})
    with pytest.raises(CardError) as err:
        _export(run, tmp_path)
    message = str(err.value)
    assert message.startswith(f"{run / 'config.yaml'}: cannot export crossmedia.core.task.TaskModule: it breaks "
                              "the task contract")
    for lack in ("TaskModule.task must be a non-empty string", "card_metrics is empty", "inference names no"):
        assert lack in message
    assert "\n" not in message and _nothing_written(tmp_path)


def test_an_export_whose_measurement_fails_leaves_no_card_or_weights(tmp_path):
    data = {**DATA, "init_args": {**DATA["init_args"], "dataset": "no-such-dataset"}}
    with pytest.raises(Exception, match="no-such-dataset"):
        _export(_run(tmp_path, data=data), tmp_path)
    assert _nothing_written(tmp_path)  # no card with placeholder metrics left in the zoo
