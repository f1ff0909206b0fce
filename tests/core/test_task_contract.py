"""The task contract (:mod:`crossmedia.core.task`) holds for every card of the registry, so a new
task is held to it the day its first card lands."""
import pytest
import pytorch_lightning as pl

from crossmedia import zoo
from crossmedia.core.registry import import_class
from crossmedia.core.task import TaskDataModule, TaskModule, contract_errors
from crossmedia.core.zoo_cli import zoo_main

ENTRIES = zoo.list_models()
NAMES = [entry.name for entry in ENTRIES]


@pytest.mark.parametrize("name", NAMES)
def test_model_class_keeps_the_contract_and_matches_its_card(name):
    card = zoo.card(name)
    cls = import_class(card.class_path("model"), part="model", source=card.path)
    assert contract_errors(cls) == []
    assert cls.task == card.task, f"{card.path}: task {card.task!r}, but {cls.__qualname__}.task is {cls.task!r}"
    keys = {spec["key"] for spec in cls.card_metrics}
    assert {m["key"] for m in card.metrics} <= keys, f"{card.path}: metric keys the class does not declare"


@pytest.mark.parametrize("name", NAMES)
def test_data_class_subclasses_task_datamodule_and_documents_its_batch(name):
    card = zoo.card(name)
    cls = import_class(card.class_path("data"), part="data", source=card.path)
    assert issubclass(cls, TaskDataModule), f"{cls.__qualname__} does not subclass TaskDataModule"
    own_doc = cls.__dict__.get("__doc__") or ""  # not TaskDataModule's own docstring, which says "batch" too
    assert "batch" in own_doc.lower(), f"{cls.__qualname__}'s docstring does not document its batch"


@pytest.mark.parametrize("entry", ENTRIES, ids=NAMES)
def test_zoo_entry_shows_the_plain_inference_methods(entry, capsys):
    cls = import_class(zoo.card(entry.name).class_path(), source=entry.name)
    assert entry.inference == tuple(cls.inference) and entry.inference
    assert all(callable(getattr(cls, method)) for method in entry.inference)
    assert zoo_main(["list", "--pattern", entry.name, "--methods"]) == 0
    listed = capsys.readouterr().out.strip()
    assert listed.startswith(entry.name) and listed.endswith(f"[{', '.join(f'{m}()' for m in cls.inference)}]")


# the checker itself

class _Complete(TaskModule):
    task = "toy"
    summary = "a toy task"
    paper = {"title": "A toy paper", "arxiv": "0000.00000"}
    card_metrics = [{"metric": "acc", "key": "test/acc", "split": "test"}]
    inference = ("predict_labels",)

    def predict_labels(self, images):
        return []


def test_contract_errors_name_the_class_and_what_it_lacks():
    assert contract_errors(_Complete) == []

    class Bare(TaskModule):
        pass

    name = f"{__name__}.{Bare.__qualname__}"
    assert contract_errors(Bare) == [
        f"{name}.task must be a non-empty string",
        f"{name}.summary must be a non-empty string",
        f"{name}.paper needs a title",
        f"{name}.card_metrics is empty: export could measure nothing",
        f"{name}.inference names no plain inference method",
    ]

    class Broken(_Complete):
        card_metrics = [{"metric": "acc", "key": "test/acc"}]
        inference = ("caption",)

    name = f"{__name__}.{Broken.__qualname__}"
    assert contract_errors(Broken) == [f"{name}.card_metrics[0] lacks split",
                                       f"{name}.inference names 'caption', which is not a method of the class"]

    class Plain(pl.LightningModule):
        pass

    assert contract_errors(Plain) == [f"{__name__}.{Plain.__qualname__} does not subclass "
                                      "crossmedia.core.task.TaskModule"]
