"""The standard SumMe / TVSum evaluation splits: 5 random 80/20 splits in three settings.

Zhang et al. (ECCV 2016) defined, and the field has kept, three ways to train for a dataset ``X``
(SumMe or TVSum), each evaluated on 5 random splits:

- **canonical**: train on 80 % of ``X``'s videos, test on the other 20 %;
- **augmented**: the same test videos; the training set adds every video of the other datasets
  (for SumMe: TVSum, OVP, YouTube);
- **transfer**: train on the other datasets only, test on all of ``X``.

The F-score of a setting is the mean over test videos, then the mean over the 5 splits.

Split files are what pytorch-vsumm-reinforce and DSNet publish: a list of
``{"train_keys": [...], "test_keys": [...]}``, in JSON or YAML. A key names one video: ours are
``<h5 stem>/<video group>`` (``eccv16_dataset_summe_google_pool5/video_1``); the published files
use a bare ``video_1`` (one dataset) or an h5 path, ``../datasets/eccv16_dataset_summe_google_pool5.h5/video_1``.
:func:`crossmedia.data.eccv16.parse_key` reads all three. As in pytorch-vsumm-reinforce's ``create_split.py``, each
split draws ``ceil(0.8 n)`` training videos independently (test sets of different splits may
overlap) and keeps the keys in their given order; draws are seeded, so a seed gives one file.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from crossmedia.data.eccv16 import parse_key

__all__ = ["Setting", "Split", "SplitFileError", "SETTINGS", "make_splits", "write_splits", "read_splits"]

Setting = Literal["canonical", "augmented", "transfer"]
SETTINGS: tuple[str, ...] = ("canonical", "augmented", "transfer")


class SplitFileError(ValueError):
    """A split file is malformed; the message names the file, the split and the field."""


@dataclass(frozen=True)
class Split:
    """One train/test split: video keys, each ``<h5 stem>/<video group>`` or a bare group name."""

    train_keys: tuple[str, ...]
    test_keys: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        """The published form, ``{"train_keys": [...], "test_keys": [...]}``."""
        return {"train_keys": list(self.train_keys), "test_keys": list(self.test_keys)}


# helpers

def _draw(keys: Sequence[str], num_train: int, rng: np.random.Generator) -> tuple[tuple[str, ...], tuple[str, ...]]:
    chosen = set(rng.choice(len(keys), size=num_train, replace=False).tolist())
    train = tuple(k for i, k in enumerate(keys) if i in chosen)
    test = tuple(k for i, k in enumerate(keys) if i not in chosen)
    return train, test


# functions

def make_splits(keys: Sequence[str], *, setting: Setting = "canonical", other_keys: Iterable[str] = (),
                num_splits: int = 5, train_ratio: float = 0.8, seed: int = 0) -> list[Split]:
    """``num_splits`` splits of the videos ``keys`` in ``setting``, deterministic from ``seed``.

    ``other_keys`` are the other datasets' videos (augmented and transfer settings). Canonical
    and augmented splits share their test sets for the same seed.
    """
    keys, other = list(keys), list(other_keys)
    if setting not in SETTINGS:
        raise ValueError(f"unknown split setting {setting!r}; expected one of {', '.join(SETTINGS)}")
    if len(set(keys)) != len(keys) or set(keys) & set(other):
        raise ValueError("video keys must be unique, and other_keys must not repeat the dataset's own keys")
    if len(keys) < 2:
        raise ValueError(f"need at least 2 videos to split, got {len(keys)}")
    if setting != "canonical" and not other:
        raise ValueError(f"the {setting} setting trains on the other datasets: pass their keys as other_keys")
    if not 0 < train_ratio < 1:
        raise ValueError(f"train_ratio must be in (0, 1), got {train_ratio}")
    num_train = min(math.ceil(len(keys) * train_ratio), len(keys) - 1)
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(num_splits):
        train, test = _draw(keys, num_train, rng)
        if setting == "augmented":
            train = train + tuple(other)
        elif setting == "transfer":
            train, test = tuple(other), tuple(keys)
        splits.append(Split(train_keys=train, test_keys=test))
    return splits


def write_splits(path: str | Path, splits: Sequence[Split]) -> Path:
    """Write ``splits`` as JSON (``.json``) or YAML (``.yml`` / ``.yaml``) in the published form."""
    path = Path(path)
    data = [split.as_dict() for split in splits]
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    elif path.suffix.lower() in (".yml", ".yaml"):
        text = yaml.safe_dump(data, sort_keys=False)
    else:
        raise ValueError(f"{path}: split files are .json, .yml or .yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


def read_splits(path: str | Path, *, known_keys: Iterable[str] | None = None) -> list[Split]:
    """Read a JSON or YAML split file; every error names the file, the split and the field.

    With ``known_keys``, every key must be one of them, compared as
    :func:`~crossmedia.data.eccv16.parse_key` reads them:
    a bare ``video_1`` on either side matches ``<stem>/video_1`` when one dataset is involved.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"split file {path} does not exist") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise SplitFileError(f"{path}: not valid {kind} ({error})") from error
    if not isinstance(data, list) or not data:
        raise SplitFileError(f"{path}: expected a non-empty list of {{train_keys, test_keys}} splits, "
                             f"got {type(data).__name__}")
    splits = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise SplitFileError(f"{path}: split {index} is a {type(entry).__name__}, expected a mapping")
        fields = {}
        for field in ("train_keys", "test_keys"):
            value = entry.get(field)
            if not isinstance(value, list) or not all(isinstance(k, str) and k for k in value):
                raise SplitFileError(f"{path}: split {index} field {field!r} must be a list of video keys, "
                                     f"got {value!r:.80}")
            fields[field] = tuple(value)
        overlap = set(fields["train_keys"]) & set(fields["test_keys"])
        if overlap:
            raise SplitFileError(f"{path}: split {index} has keys in both train_keys and test_keys: "
                                 f"{sorted(overlap)[:5]}")
        if not fields["test_keys"]:
            raise SplitFileError(f"{path}: split {index} field 'test_keys' is empty")
        splits.append(Split(**fields))
    if known_keys is not None:
        _check_known(path, splits, list(known_keys))
    return splits


def _check_known(path: Path, splits: list[Split], known: list[str]) -> None:
    full = {parse_key(k) for k in known}
    videos = {video for _, video in full}
    single = len({stem for stem, _ in full}) == 1
    for index, split in enumerate(splits):
        for field, keys in (("train_keys", split.train_keys), ("test_keys", split.test_keys)):
            for key in keys:
                stem, video = parse_key(key)
                found = ((stem, video) in full or (None, video) in full  # a bare known key matches any file
                         or (stem is None and single and video in videos))
                if not found:
                    raise SplitFileError(f"{path}: split {index} field {field!r} names video {key!r}, which is not "
                                         f"in the dataset ({len(known)} videos, e.g. {known[:3]})")
