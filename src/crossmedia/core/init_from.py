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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["InitialWeights", "initial_weights", "with_prefix", "remap_rows"]


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
