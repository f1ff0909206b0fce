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
position in the split); the targets come from its :meth:`scene_objects`. Test metrics
(:class:`TagMetric`): macro average precision over all tags, and the accuracy of the shape and
colour presence decisions (logit > 0), averaged over those tags. :meth:`SceneTagger.tags` names
what PIL images (or a normalised batch) show.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.metrics.gather import gather_by_index
from crossmedia.tasks.caption.data import image_tensor
from crossmedia.tasks.caption.models import GridEncoder

__all__ = ["SceneTagger", "TagMetric", "scene_tags", "tag_targets", "tag_scores"]


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


class TagMetric(Metric):
    """Tag logits of one evaluation loop, scored by :func:`tag_scores` when it ends.

    ``update(logits, index)``: (B, T) logits and (B,) positions in the split. ``compute()`` gathers
    every process's rows with ``gather`` (:func:`crossmedia.metrics.gather.gather_by_index` bound
    to the module; one row per position) and scores them against ``targets`` (N, T) of the split.
    """

    full_state_update = False

    def __init__(self, *, targets: torch.Tensor, tags: Sequence[str],
                 gather: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, list[int]]]):
        super().__init__(sync_on_compute=False)
        self.targets, self.tag_names, self.gather = targets, list(tags), gather
        self.add_state("logits", default=[], dist_reduce_fx="cat")
        self.add_state("index", default=[], dist_reduce_fx="cat")

    def update(self, logits: torch.Tensor, index: torch.Tensor) -> None:
        self.logits.append(logits.float())
        self.index.append(index.long())

    def compute(self) -> dict[str, float]:
        logits, order = self.gather(torch.cat(self.logits), torch.cat(self.index))  # (M, T), M positions
        return tag_scores(logits.cpu(), self.targets[order], self.tag_names)


class SceneTagger(TaskModule):
    """Grid encoder + per-region tag read-out, max over regions, trained with binary cross-entropy."""

    task = "caption"
    summary = "scene tagger (encoder pre-training for captioning)"
    paper = {"title": "Bottom-Up and Top-Down Attention for Image Captioning and Visual Question Answering",
             "arxiv": "1707.07998"}
    card_metrics = [{"metric": "tag mAP", "key": "test/mAP", "split": "test"},
                    {"metric": "shape accuracy", "key": "test/shape_accuracy", "split": "test"},
                    {"metric": "colour accuracy", "key": "test/colour_accuracy", "split": "test"}]
    fit_hparams = ("tags",)  # filled in from the training objects during fit
    inference = ("tags",)

    def __init__(self, *, tags: list[str] | None = None, backbone: str = "resnet18", pretrained: bool = False,
                 stage: int = 3, lr: float = 1e-3, weight_decay: float = 0.0, image_size: int = 64):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = GridEncoder(backbone, pretrained=pretrained, stage=stage)
        self.head: torch.nn.Linear | None = None
        self.tag_names: list[str] = []
        if tags is not None:
            self._build(tags)
        self._targets: dict[str, torch.Tensor] = {}
        self.val_metric: TagMetric | None = None
        self.test_metric: TagMetric | None = None

    def _build(self, tags: Sequence[str]) -> None:
        self.tag_names = list(tags)
        self.hparams.tags = self.tag_names
        self.head = torch.nn.Linear(self.encoder.dim, len(self.tag_names))

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
            self._targets["train"] = tag_targets(objects, self.tag_names)

    def _split_targets(self, split: str) -> torch.Tensor:
        if split not in self._targets:
            self._targets[split] = tag_targets(self._objects(split), self.tag_names)
        return self._targets[split]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Tag logits (B, T): the highest region score of each tag."""
        return self.head(self.encoder(images)).amax(dim=1)  # (B, N, T) -> (B, T)

    def tags(self, images, threshold: float = 0.5) -> list[list[str]]:
        """The tags (shapes, colours, "colour shape" pairs) whose probability exceeds ``threshold``,
        for PIL images or a (B, 3, H, W) tensor normalised to [-1, 1]: one list per image."""
        from PIL import Image

        if isinstance(images, torch.Tensor):
            batch = images[None] if images.dim() == 3 else images
        else:
            items = [images] if isinstance(images, Image.Image) else list(images)
            if not all(isinstance(image, Image.Image) for image in items):
                raise TypeError("tags() takes PIL images or a (B, 3, H, W) tensor normalised to [-1, 1]")
            batch = torch.stack([image_tensor(image, self.hparams.image_size) for image in items])
        with eval_mode(self), torch.no_grad():
            probs = torch.sigmoid(self(batch.to(self.device)))                 # (B, T)
        return [[t for t, p in zip(self.tag_names, row) if p > threshold] for row in probs.tolist()]

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        targets = self._split_targets("train").to(self.device)[batch["index"]]
        loss = F.binary_cross_entropy_with_logits(self(batch["images"]), targets)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(targets))
        return loss

    # evaluation

    def metric(self, split: str) -> TagMetric:
        """A :class:`TagMetric` of ``split`` for this tagger."""
        return TagMetric(targets=self._split_targets(split), tags=self.tag_names, gather=partial(gather_by_index, self))

    def on_validation_epoch_start(self) -> None:
        self.val_metric = self.metric("val")

    def on_test_epoch_start(self) -> None:
        self.test_metric = self.metric("test")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_metric.update(self(batch["images"]), batch["index"])

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.test_metric.update(self(batch["images"]), batch["index"])

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metric.compute()
        if self.trainer.sanity_checking:
            return
        for name, value in scores.items():
            self.log(f"val/{name}", value, prog_bar=name != "colour_accuracy", sync_dist=False)

    def on_test_epoch_end(self) -> None:
        for name, value in self.test_metric.compute().items():
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
