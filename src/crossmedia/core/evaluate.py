"""Re-measure a zoo entry on its dataset and compare with the numbers on its card."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MetricCheck", "measure", "evaluate"]

DEFAULT_TOLERANCE = 0.005


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    key: str
    dataset: str
    split: str
    card: float
    measured: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return abs(self.measured - self.card) <= self.tolerance

    def __str__(self) -> str:
        status = "ok" if self.ok else "MISMATCH"
        return (f"{self.metric:<12} {self.dataset}/{self.split:<18} card {self.card:.4f}  "
                f"measured {self.measured:.4f}  (±{self.tolerance})  {status}")


def measure(model, datamodule, *, progress: bool = True) -> dict[str, float]:
    """Run the module's test loop on ``datamodule`` on CPU; returns every logged test metric."""
    import pytorch_lightning as pl

    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=progress, enable_model_summary=False)
    results = trainer.test(model, datamodule=datamodule, verbose=False)
    merged: dict[str, float] = {}
    for block in results:
        merged.update({k: float(v) for k, v in block.items()})
    return merged


def evaluate(name, *, weights=None, own_weights: bool = False, progress: bool = True) -> list[MetricCheck]:
    """Load ``name`` (a zoo name or a Card), measure it on the card's dataset, return one check
    per card metric. A metric marked ``optional: true`` (one a task logs only on some datasets)
    is skipped when the test loop did not log it. ``weights``/``own_weights`` as in ``zoo.load``."""
    from crossmedia.core import registry
    from crossmedia.core.cards import CardError, get_card

    card = get_card(name) if isinstance(name, str) else name
    model = registry.load(card, weights=weights, own_weights=own_weights)
    measured = measure(model, registry.build(card, "data"), progress=progress)
    checks = []
    for m in card.metrics:
        if m["key"] not in measured and m.get("optional"):
            continue
        if m["key"] not in measured:
            raise CardError(f"{card.path}: metrics key {m['key']!r} was not logged by the test loop; "
                            f"logged: {', '.join(sorted(measured))} (mark it `optional: true` if only some data "
                            "log it)")
        checks.append(MetricCheck(metric=m["metric"], key=m["key"], dataset=m["dataset"], split=m["split"],
                                  card=float(m["value"]), measured=measured[m["key"]],
                                  tolerance=float(m.get("tolerance", DEFAULT_TOLERANCE))))
    return checks
