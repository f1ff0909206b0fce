"""Where a run's weights start: a zoo name, a ``.safetensors`` file, or a ``.ckpt`` of your own run.

Fine-tuning stages start from an earlier model (an RL captioner from its cross-entropy entry, an
encoder from a tagger). :func:`initial_weights` reads the state dict such an option names, knowing
no task:

* a zoo name: built and sha256-verified through :mod:`crossmedia.core.registry` (the model is
  returned too, so the caller can check its class and copy what it learned during fit);
* ``*.safetensors``: the weights only;
* ``*.ckpt``: a Lightning checkpoint you trained yourself, read by
  :func:`crossmedia.core.checkpoint_io.read_lightning_checkpoint` (``weights_only``), with its
  saved hyper-parameters.

``option`` names the setting (``"init_from"``, ``"encoder_from"`` ...) in every error message.

:class:`FitsDataLabels` is the fine-tuning half a module with an ``init_from`` argument and layers
sized by a label list of the data (class names, actions) mixes in: fit starts from ``init_from`` and
takes the data's labels, rebuilding what their number sizes; evaluation refuses other labels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from pytorch_lightning.utilities import rank_zero_info

__all__ = ["InitialWeights", "initial_weights", "labelled_weights", "with_prefix", "remap_rows", "FitsDataLabels"]


@dataclass
class InitialWeights:
    """What a start-from-weights option named: ``state`` always; ``model`` for a zoo name;
    ``hparams`` for a checkpoint (its saved hyper-parameters, e.g. a vocabulary learned in fit)."""

    state: dict
    model: object | None = None
    hparams: dict = field(default_factory=dict)


def initial_weights(source: str, option: str) -> InitialWeights:
    """The weights ``source`` names (module docstring); FileNotFoundError names the option and the path."""
    path = Path(source)
    if path.suffix == ".ckpt":
        from crossmedia.core.checkpoint_io import read_lightning_checkpoint

        if not path.is_file():
            raise FileNotFoundError(f"{option}: checkpoint {path} does not exist")
        checkpoint = read_lightning_checkpoint(path)
        return InitialWeights(checkpoint["state_dict"], hparams=dict(checkpoint.get("hyper_parameters") or {}))
    if path.suffix == ".safetensors":
        from crossmedia.core.checkpoint_io import load_weights

        if not path.is_file():
            raise FileNotFoundError(f"{option}: weights file {path} does not exist")
        return InitialWeights(load_weights(path))
    from crossmedia.core.registry import load

    model = load(source)
    return InitialWeights(model.state_dict(), model=model)


def labelled_weights(source: str, option: str, kind: type, labels: str) -> tuple[dict, list | None]:
    """(state dict, label list or None) that ``source`` names, for a module of class ``kind``: the labels
    (class names, actions) are the hyper-parameter ``labels`` of the zoo model or the checkpoint
    (None for a ``.safetensors`` file). ValueError, naming the option, for a zoo entry of another class."""
    start = initial_weights(source, option)
    if start.model is not None and not isinstance(start.model, kind):
        raise ValueError(f"{option}: zoo entry {source!r} is a {type(start.model).__name__}, not a {kind.__name__}")
    found = (start.model.hparams if start.model is not None else start.hparams).get(labels)
    return start.state, list(found) if found else None


def with_prefix(state: dict, prefix: str) -> dict:
    """The entries of ``state`` under ``prefix`` (``"encoder."``), with the prefix cut off."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def remap_rows(state: dict, old: list[str], new: list[str], target: dict) -> tuple[dict, int]:
    """``state`` re-indexed from the label list ``old`` to ``new`` (a vocabulary, class names).

    Every tensor of ``state`` whose first dimension is ``len(old)`` where ``target`` (the state dict
    of the model rebuilt for ``new``) has ``len(new)``, the other dimensions equal (word
    embeddings, output weights and biases), becomes ``target``'s fresh tensor with row ``new[j]``
    copied from row ``old[i]`` wherever the labels are the same; every other tensor is kept as it
    is. Returns (the new state, the number of shared labels).
    """
    position = {label: index for index, label in enumerate(old)}
    pairs = [(position[label], j) for j, label in enumerate(new) if label in position]
    src = torch.tensor([i for i, _ in pairs], dtype=torch.long)
    dst = torch.tensor([j for _, j in pairs], dtype=torch.long)
    out = dict(state)
    for key, value in state.items():
        fresh = target.get(key)
        if (fresh is not None and value.dim() >= 1 and value.shape[0] == len(old) and fresh.shape[0] == len(new)
                and value.shape[1:] == fresh.shape[1:] and value.shape != fresh.shape):
            rows = fresh.detach().clone()
            rows[dst] = value[src].to(rows.dtype)
            out[key] = rows
    return out, len(pairs)


class FitsDataLabels:
    """Mixin of a LightningModule whose ``hparams`` hold ``init_from`` and whose layers are sized by a
    label list of the data: ``data_labels`` names the DataModule attribute and the hyper-parameter
    (``"class_names"``, ``"actions"``).

    :meth:`setup` at fit loads ``init_from`` once (:func:`labelled_weights`, for the class that mixes
    this in) and hands the data's labels and those weights to ``take_labels(found, start, where)``;
    at validate / test / predict it calls ``check_labels(found, where)``, which raises where the data's
    labels do not fit the model. Both are the module's own. Without data labels the weights load as
    they are (:meth:`load_start`)."""

    data_labels: ClassVar[str] = ""

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        found = list(getattr(datamodule, self.data_labels, None) or []) or None
        where = getattr(datamodule, "root", "the datamodule")
        if stage != "fit":
            if found is not None:
                self.check_labels(found, where)
            return
        start = None
        if self.hparams.init_from and not getattr(self, "_initialised", False):
            kind = next(c for c in type(self).__mro__ if FitsDataLabels in c.__bases__)
            start = labelled_weights(self.hparams.init_from, "init_from", kind, self.data_labels)
        if found is not None:
            self.take_labels(found, start, where)
        elif start is not None:
            self.load_start(start[0])
        self._initialised = True  # a resumed run's checkpoint is restored after this, as usual

    def load_start(self, state: dict) -> None:
        """Load ``state`` strictly; ValueError naming ``init_from`` when it does not fit."""
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(f"init_from: {self.hparams.init_from!r} does not fit this {type(self).__name__}: give "
                             f"the architecture arguments of the model it comes from. {error}") from None

    @staticmethod
    def start_labels(names: list | None, count: int) -> list:
        """``names`` when they are ``count`` (the labels a starting state's layers are sized by), else
        placeholders that match no label: then no row or column is carried over by name."""
        if names is not None and len(names) == count:
            return list(names)
        return [f"<label {i} of init_from>" for i in range(count)]

    def carry_over(self, state: dict, old: list, new: list, *, started: bool, where: object, task: str,
                   what: str, part: str, configured: int, kept: str, remap=remap_rows) -> None:
        """The end every ``take_labels`` shares, once its layers are sized for the ``new`` labels: when
        ``state`` was sized for as many (``old``), it is loaded as it is (only when fit ``started`` from
        ``init_from``; otherwise the module keeps its own weights); else ``remap(state, old, new, target)``
        carries the rows or columns of the labels both share into the rebuilt ``part``, the result is
        loaded, and fit says so in one line (``what``: the labels' plural, ``kept``: what was carried)."""
        if len(old) == len(new):
            if started:
                self.load_start(state)
            return
        state, shared = remap(state, old, list(new), self.state_dict())
        self.load_start(state)
        start_count = len(old) if started else None
        counts = (f"{configured}" if start_count is None
                  else f"{configured} and {self.hparams.init_from} for {start_count}")
        source = "the model had" if start_count is None else f"of {self.hparams.init_from}"
        rank_zero_info(f"{task}: the data in {where} has {len(new)} {what}, the model was configured for {counts}: "
                       f"{part} rebuilt for {len(new)}; every other weight {source} is kept, and the {kept} of the "
                       f"{shared} {what} both share")
