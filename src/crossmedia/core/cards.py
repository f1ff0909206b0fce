"""Zoo cards: one YAML file per pretrained entry, read and checked here.

A card holds everything about an entry: ``name``, ``task``, ``summary``, ``paper`` (title, arxiv),
``config`` (the LightningCLI config it was trained with), ``weights`` (file, sha256, optional url),
``metrics`` (dataset, split, metric, key, value, tolerance) and ``commands`` (train, eval).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from crossmedia.core import paths

__all__ = ["CardError", "Card", "find_cards", "read_card", "get_card", "check_file_name", "ALLOWED_PREFIX"]

ALLOWED_PREFIX = "crossmedia."
_REQUIRED = ("name", "task", "summary", "paper", "config", "weights", "metrics", "commands")


class CardError(ValueError):
    """A card that is missing, unknown or malformed."""


@dataclass(frozen=True)
class Card:
    path: Path
    name: str
    task: str
    summary: str
    paper: dict
    config: dict
    weights: dict
    metrics: list = field(default_factory=list)
    commands: dict = field(default_factory=dict)
    default: bool = False
    notes: str = ""

    @property
    def headline(self) -> str:
        """The first metric as ``metric=value`` for one-line listings."""
        if not self.metrics:
            return ""
        m = self.metrics[0]
        return f"{m['metric']}={m['value']:.4f} ({m['dataset']})"

    def class_path(self, part: str = "model") -> str:
        return self.config[part]["class_path"]

    def init_args(self, part: str = "model") -> dict:
        return dict(self.config[part].get("init_args") or {})


def _check_class_path(path: Path, part: str, class_path: object) -> None:
    if not isinstance(class_path, str) or not class_path.startswith(ALLOWED_PREFIX):
        raise CardError(
            f"{path}: config.{part}.class_path is {class_path!r}; only classes inside the "
            f"crossmedia package ('{ALLOWED_PREFIX}…') may be built from a card."
        )


def check_file_name(source: object, field: str, name: object, folder: str = "the checkpoints folder") -> None:
    """Refuse a ``name`` (from a card, or from a command line when ``source`` is None) that is not a
    plain file name inside ``folder``."""
    problem = paths.file_name_problem(name)
    if problem:
        where = f"{source}: " if source is not None else ""
        raise CardError(f"{where}{field} {name!r} must be a file name inside {folder} ({problem})")


def read_card(path: str | Path) -> Card:
    """Parse and validate one card file; errors name the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise CardError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise CardError(f"{path}: a card must be a YAML mapping with fields {', '.join(_REQUIRED)}")
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise CardError(f"{path}: missing field(s) {', '.join(missing)}")
    for key, kind in (("config", dict), ("weights", dict), ("paper", dict), ("metrics", list), ("commands", dict)):
        if not isinstance(raw[key], kind):
            raise CardError(f"{path}: {key} must be a {'mapping' if kind is dict else 'list'}, "
                            f"got {type(raw[key]).__name__}")
    config = raw["config"]
    for part in ("model", "data"):
        if not isinstance(config.get(part), dict) or "class_path" not in config[part]:
            raise CardError(f"{path}: config.{part}.class_path is missing")
        _check_class_path(path, part, config[part]["class_path"])
    weights = raw["weights"]
    for key in ("file", "sha256"):
        if not weights.get(key):
            raise CardError(f"{path}: weights.{key} is missing")
    check_file_name(path, "weights.file", weights["file"])
    for i, metric in enumerate(raw["metrics"]):
        for key in ("dataset", "split", "metric", "key", "value"):
            if not isinstance(metric, dict) or key not in metric:
                raise CardError(f"{path}: metrics[{i}].{key} is missing")
    if path.stem != raw["name"]:
        raise CardError(f"{path}: the file name must be <name>.yaml, but name is {raw['name']!r}")
    return Card(path=path, default=bool(raw.get("default", False)), notes=str(raw.get("notes") or ""),
                **{key: raw[key] for key in _REQUIRED})


def find_cards() -> dict[str, Path]:
    """Every card name mapped to its file (the checkout's zoo/ first, then the installed one)."""
    found: dict[str, Path] = {}
    for root in paths.zoo_dirs():
        for card_path in sorted(root.glob("*/*.yaml")) if root.is_dir() else []:
            found.setdefault(card_path.stem, card_path)
    return found


def get_card(name: str) -> Card:
    """The card called ``name``; an unknown name lists the closest ones."""
    cards = find_cards()
    if name not in cards:
        close = difflib.get_close_matches(name, list(cards), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise CardError(
            f"unknown zoo model {name!r}.{hint} Known models: {', '.join(sorted(cards)) or 'none'} "
            "(`crossmedia zoo list`)."
        )
    return read_card(cards[name])
