"""The model zoo: list, inspect and load pretrained entries (the public front door).

    >>> from crossmedia import zoo
    >>> zoo.list_models(task="hashing")
    >>> model = zoo.load("csq")          # LightningModule in eval mode, weights verified
    >>> zoo.list_models(task="caption")[0].inference    # its plain inference methods, e.g. ('caption',)

Weights are looked up in this order: ``weights=``, ``$CROSSMEDIA_HOME/checkpoints``, the checkout's
``checkpoints/`` (or the installed copy), then the card's ``url`` downloaded into
``$CROSSMEDIA_HOME/cache`` (``file://`` works). The sha256 is checked before anything is parsed,
only safetensors are read, and only LightningModule / LightningDataModule classes inside
``crossmedia`` are built from a card. A card's ``weights.file`` must be a plain file name.

Your own fine-tuned weights for a zoo architecture (safetensors, e.g. written by ``crossmedia zoo
export``) load with ``own_weights=True``; without it a ``weights=`` file must be the zoo's own
(its sha256 must match the card's)::

    >>> model = zoo.load("csq", weights="my-csq.safetensors", own_weights=True)

They are still read as safetensors only (never unpickled) and loaded with ``strict=True``;
``crossmedia zoo eval csq --weights my-csq.safetensors --own-weights`` measures them.

The machinery lives in :mod:`crossmedia.core.registry`; this module is what users import.
"""
from __future__ import annotations

from crossmedia.core.cards import Card, CardError, read_card
from crossmedia.core.checkpoint_io import WeightsError
from crossmedia.core.registry import (ZooEntry, build, card, default_model, import_class, list_models, load,
                                      resolve_weights)

__all__ = [
    "ZooEntry", "list_models", "card", "load", "build", "import_class", "resolve_weights",
    "default_model", "Card", "CardError", "WeightsError", "read_card",
]
