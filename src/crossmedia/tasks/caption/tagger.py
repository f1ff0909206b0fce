"""An image encoder pre-trained to say what a built-in scene contains, for captioners to start from.

A captioner's encoder trained from scratch on the caption loss alone learns colours but not
shapes (see the caption cards): the caption loss is too weak a signal for it. Real captioners
start from an ImageNet or bottom-up (Visual Genome) encoder; offline, the analogue here is
:class:`SceneTagger`, trained on the ground truth the built-in ``scenes`` keeps for each image
(``objects``: shape and colour of each object). Its tags are every shape, every colour and every
"colour shape" pair seen in training; a tag's logit is the maximum over the grid regions of a
linear read-out, so each region learns to recognise what it shows. A
:class:`~crossmedia.tasks.caption.module.CaptionModule` starts from it with
``encoder_from: scene-tagger``.

Data is the same :class:`~crossmedia.tasks.caption.data.CaptionDataModule` (images and their
position in the split); the targets come from its :meth:`scene_objects`. Test metrics: macro
average precision over all tags, and the accuracy of the shape and colour presence decisions
(logit > 0), averaged over those tags.
"""
from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from crossmedia.tasks.caption.data import gather_by_index
from crossmedia.tasks.caption.models import GridEncoder

__all__ = ["SceneTagger", "scene_tags", "tag_targets"]


def scene_tags(objects: Sequence[Sequence[dict]]) -> list[str]:
    """Shapes, then colours, then "colour shape" pairs seen in ``objects`` (each sorted)."""
    shapes = sorted({o["shape"] for scene in objects for o in scene})
    colours = sorted({o["colour"] for scene in objects for o in scene})
    pairs = sorted({f"{o['colour']} {o['shape']}" for scene in objects for o in scene})
    return shapes + colours + pairs


def tag_targets(objects: Sequence[Sequence[dict]], tags: Sequence[str]) -> torch.Tensor:
    """(N, T) float 0/1: which tags hold for each image."""
    column = {tag: j for j, tag in enumerate(tags)}
    targets = torch.zeros(len(objects), len(tags))
    for i, scene in enumerate(objects):
        for o in scene:
            for tag in (o["shape"], o["colour"], f"{o['colour']} {o['shape']}"):
                if tag in column:  # a tag never seen in training has no column
                    targets[i, column[tag]] = 1.0
    return targets


class SceneTagger(pl.LightningModule):
    """Grid encoder + per-region tag read-out, max over regions, trained with binary cross-entropy."""

    task = "caption"
    summary = "scene tagger (encoder pre-training for captioning)"
    paper = {"title": "Bottom-Up and Top-Down Attention for Image Captioning and Visual Question Answering",
             "arxiv": "1707.07998"}
    card_metrics = [{"metric": "tag mAP", "key": "test/mAP", "split": "test"},
                    {"metric": "shape accuracy", "key": "test/shape_accuracy", "split": "test"},
                    {"metric": "colour accuracy", "key": "test/colour_accuracy", "split": "test"}]
    fit_hparams = ("tags",)  # filled in from the training objects during fit

    def __init__(self, *, tags: list[str] | None = None, backbone: str = "resnet18", pretrained: bool = False,
                 stage: int = 3, lr: float = 1e-3, weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = GridEncoder(backbone, pretrained=pretrained, stage=stage)
        self.head: torch.nn.Linear | None = None
        if tags is not None:
            self._build(tags)
        self._targets: dict[str, torch.Tensor] = {}
        self._reset_outputs()

    def _build(self, tags: Sequence[str]) -> None:
        self.tags = list(tags)
        self.hparams.tags = self.tags
        self.head = torch.nn.Linear(self.encoder.dim, len(self.tags))

    def _objects(self, split: str) -> list[list[dict]]:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        objects = datamodule.scene_objects(split) if datamodule is not None else None
        if objects is None:
            raise ValueError(f"SceneTagger needs the ground-truth `objects` of every {split} image in the caption "
                             "file (the built-in `scenes` dataset has them); this dataset has none — start a "
                             "captioner from an ImageNet backbone (`pretrained: true`) instead")
        return objects

    def configure_model(self) -> None:
        if self.head is None:
            objects = self._objects("train")
            self._build(scene_tags(objects))
            self._targets["train"] = tag_targets(objects, self.tags)

    def _split_targets(self, split: str) -> torch.Tensor:
        if split not in self._targets:
            self._targets[split] = tag_targets(self._objects(split), self.tags)
        return self._targets[split]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Tag logits (B, T): the highest region score of each tag."""
        return self.head(self.encoder(images)).amax(dim=1)

    def tag(self, images: torch.Tensor, threshold: float = 0.5) -> list[list[str]]:
        """The tags whose probability exceeds ``threshold``, for a normalised image batch."""
        with torch.no_grad():
            probs = torch.sigmoid(self(images.to(self.device)))
        return [[t for t, p in zip(self.tags, row) if p > threshold] for row in probs.tolist()]

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        targets = self._split_targets("train").to(self.device)[batch["index"]]
        loss = F.binary_cross_entropy_with_logits(self(batch["images"]), targets)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(targets))
        return loss

    # evaluation

    def _reset_outputs(self) -> None:
        self._outputs: dict[str, list[torch.Tensor]] = {"logits": [], "index": []}

    on_validation_epoch_start = on_test_epoch_start = _reset_outputs

    def _collect(self, batch: dict) -> None:
        self._outputs["logits"].append(self(batch["images"]).float())
        self._outputs["index"].append(batch["index"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch)

    test_step = validation_step

    def _scores(self, split: str) -> dict[str, float]:
        logits, index = torch.cat(self._outputs["logits"]), torch.cat(self._outputs["index"])
        self._reset_outputs()
        logits, order = gather_by_index(self, logits, index)
        return tag_scores(logits.cpu(), self._split_targets(split)[order], self.tags)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._reset_outputs()
            return
        for name, value in self._scores("val").items():
            self.log(f"val/{name}", value, prog_bar=name != "colour_accuracy", sync_dist=False)

    def on_test_epoch_end(self) -> None:
        for name, value in self._scores("test").items():
            self.log(f"test/{name}", value, sync_dist=False)


def tag_scores(logits: torch.Tensor, targets: torch.Tensor, tags: Sequence[str]) -> dict[str, float]:
    """``mAP``: mean over the tags with a positive image of their average precision (torchmetrics'
    multilabel AP, the area under the step precision-recall curve, as scikit-learn's);
    ``shape_accuracy`` / ``colour_accuracy``: the accuracy of logit > 0, averaged over the single-word
    tags that are shapes / colours (a single word is a shape when some pair ends with it)."""
    from torchmetrics.functional.classification import multilabel_average_precision

    present = targets.sum(dim=0) > 0
    ap = multilabel_average_precision(logits[:, present], targets[:, present].long(),
                                      num_labels=int(present.sum()), average="macro") if present.any() else 0.0
    singles = [j for j, t in enumerate(tags) if " " not in t]
    shape_words = {t.split(" ", 1)[1] for t in tags if " " in t}
    correct = ((logits > 0).float() == targets).float().mean(dim=0)  # (T,) accuracy per tag
    shapes = [j for j in singles if tags[j] in shape_words]
    colours = [j for j in singles if tags[j] not in shape_words]
    return {"mAP": float(ap),
            "shape_accuracy": float(correct[shapes].mean()) if shapes else 0.0,
            "colour_accuracy": float(correct[colours].mean()) if colours else 0.0}
