"""The task contract: what core (zoo, export, evaluate, CLI) may read from a task's modules.

Every LightningModule a zoo card can name subclasses :class:`TaskModule` and sets its class
attributes; every LightningDataModule subclasses :class:`TaskDataModule` and documents its batch
dict in its docstring. Core reads these attributes directly (no ``getattr`` defaults), and
``tests/core/test_task_contract.py`` checks them over every card of the registry, so a new task
is held to the contract the day its first card lands.

    class CSQ(TaskModule):
        task = "hashing"
        summary = "CSQ: hash centers ..."
        paper = {"title": "Central Similarity Quantization ...", "arxiv": "1908.00347"}
        card_metrics = [{"metric": "mAP@1000", "key": "test/mAP@1000", "split": "test"}]
        inference = ("hash",)          # plain methods: ordinary objects in, ordinary objects out
"""
from __future__ import annotations

from typing import ClassVar

import pytorch_lightning as pl

__all__ = ["TaskModule", "TaskDataModule", "SplitLoaders", "contract_errors"]


class TaskModule(pl.LightningModule):
    """Base of every task's LightningModule.

    Class attributes (read by core):

    * ``task``: the task folder name (``"caption"``, ``"hashing"`` ...); places exported cards.
    * ``summary``: one line for ``zoo list`` and exported cards.
    * ``paper``: ``{"title": ..., "arxiv": ...}`` of the method.
    * ``card_metrics``: the metrics ``zoo export`` measures, each ``{"metric", "key", "split"}``
      (``key`` is what the test loop logs; ``optional: True`` for one logged on some datasets only).
    * ``fit_hparams``: init args the module learns during fit (e.g. a vocabulary built from the
      data) that export copies from the checkpoint into the card.
    * ``inference``: names of the plain inference methods (PIL images / tensors / strings in and
      out) that ``zoo list`` shows and users call, e.g. ``("caption",)``.
    * ``ddp_find_unused_parameters``: True for a module whose backward passes leave some of its
      parameters without a gradient by design (a GAN under manual optimisation: the generator's step
      gives the discriminator none, and the other way round). The CLI then runs plain ``ddp`` as
      ``ddp_find_unused_parameters_true``, which DDP needs for such a module.
    """

    task: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    paper: ClassVar[dict] = {"title": "", "arxiv": ""}
    card_metrics: ClassVar[list] = []
    fit_hparams: ClassVar[tuple] = ()
    inference: ClassVar[tuple] = ()
    ddp_find_unused_parameters: ClassVar[bool] = False


class TaskDataModule(pl.LightningDataModule):
    """Base of every task's LightningDataModule; its docstring documents the batch dict.

    * ``dataset``: the dataset name (init arg), used as the card metrics' ``dataset``.
    """


class SplitLoaders:
    """Train / val / test loaders of a DataModule that holds one Dataset per split in ``self.datasets``.

    Mixed into a :class:`TaskDataModule` whose hparams have ``batch_size`` (training),
    ``eval_batch_size`` (val and test) and ``num_workers``; the class sets ``collate =
    staticmethod(its_collate_function)``. The training loader shuffles, none drops a last partial batch.
    """

    collate = None

    def split_loader(self, split: str, shuffle: bool):
        from torch.utils.data import DataLoader

        hp = self.hparams
        return DataLoader(self.datasets[split], batch_size=hp.batch_size if split == "train" else hp.eval_batch_size,
                          shuffle=shuffle, collate_fn=self.collate, num_workers=hp.num_workers,
                          persistent_workers=hp.num_workers > 0, drop_last=False)

    def train_dataloader(self):
        return self.split_loader("train", True)

    def val_dataloader(self):
        return self.split_loader("val", False)

    def test_dataloader(self):
        return self.split_loader("test", False)


def contract_errors(cls: type) -> list[str]:
    """What ``cls`` (a LightningModule class named by a card) lacks of the contract; [] if none."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    if not (isinstance(cls, type) and issubclass(cls, TaskModule)):
        return [f"{name} does not subclass crossmedia.core.task.TaskModule"]
    errors = []
    for attr in ("task", "summary"):
        if not isinstance(getattr(cls, attr), str) or not getattr(cls, attr):
            errors.append(f"{name}.{attr} must be a non-empty string")
    if not cls.paper.get("title"):
        errors.append(f"{name}.paper needs a title")
    for i, spec in enumerate(cls.card_metrics):
        missing = {"metric", "key", "split"} - set(spec)
        if missing:
            errors.append(f"{name}.card_metrics[{i}] lacks {', '.join(sorted(missing))}")
    if not cls.card_metrics:
        errors.append(f"{name}.card_metrics is empty: export could measure nothing")
    if not cls.inference:
        errors.append(f"{name}.inference names no plain inference method")
    for method in cls.inference:
        if not callable(getattr(cls, method, None)):
            errors.append(f"{name}.inference names {method!r}, which is not a method of the class")
    return errors
