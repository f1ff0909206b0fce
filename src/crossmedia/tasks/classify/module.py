"""Image and clip classification LightningModule: one network, the loss chosen by ``distillation``.

Yuan et al., "Revisiting Knowledge Distillation via Label Smoothing Regularization", CVPR 2020
(arXiv 1909.11723). The student is any timm backbone with a linear head; its loss is one of
:data:`crossmedia.nn.distill.METHODS` (equations in :mod:`crossmedia.nn.distill`):

* ``ce``: cross-entropy (the baseline);
* ``ls``: label smoothing, ε = 0.1;
* ``kd``: Hinton's KD from ``teacher``, any zoo classifier of the same classes, by name;
* ``tfkd-self``: Tf-KD self, the teacher a pre-trained copy of the student (e.g. the
  ``classify-baseline`` entry: L = (1 − α) CE + α τ² KL(p^τ_t ‖ q^τ));
* ``tfkd-reg``: Tf-KD reg, the hand-designed virtual teacher (a = 0.99 on the label, softened
  at τ = 20; L = (1 − α) CE + α KL(p^τ_d ‖ q)).

The teacher is loaded through the zoo when fitting starts, frozen (eval mode, no gradients) and kept
outside the module's parameters and weights, so a Tf-KD self model exports and loads exactly like
the baseline. Evaluation: top-1 accuracy on the test split.

Fine-tuning on one's own data: ``init_from`` (a zoo name, ``.safetensors`` or ``.ckpt``;
:mod:`crossmedia.core.init_from`) starts fit from those weights, e.g. ``crossmedia fit -c
classify-baseline --model.init_args.init_from=classify-baseline --data.init_args.root=DIR`` (a card's
``-c`` alone gives its recipe and architecture, not its weights). Data with another class count than
the model's: fit rebuilds the linear head for it, keeps every other weight (and the head rows of the
class names both share) and says so in one line; evaluation refuses before any step.

Clips (B, T, 3, S, S) — the DataModule's ``kind="clips"``, e.g. the built-in puppets' 9 actions —
are classified by the same network, its per-frame features averaged over time
(:class:`~crossmedia.tasks.classify.models.ImageClassifierNet`), with every loss above unchanged.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from crossmedia.core.init_from import FitsDataLabels
from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.nn.distill import Distillation
from crossmedia.tasks.classify.models import ImageClassifierNet

__all__ = ["ClassifyModule"]

_MEAN, _STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _registry_load(name: str) -> nn.Module:
    from crossmedia.core.registry import load

    return load(name)


class ClassifyModule(FitsDataLabels, TaskModule):
    """A single-label image or clip classifier trained with CE, LS, KD or Tf-KD (module docstring).

    Args:
        num_classes: K.
        class_names: the names of the K classes; filled in at fit from the DataModule (saved in the card).
        backbone, pretrained, dropout: of :class:`ImageClassifierNet` (a timm model name).
        image_size: S, the side images are resized to by :meth:`classify`.
            Under ``bf16-mixed`` on CPU keep the backbone's last stage above 1x1 (S >= 24 for
            ``test_resnet``): torch 2.14's CPU bf16 convolution of a 1x1 map (stride 2, padding 1) gives
            its weight a NaN gradient now and then (measured: 2 in 200 bare convolutions, 15 in 20 runs of
            this module at S = 16; none in fp32 or at 2x2); ``crossmedia fit`` then stops, naming the weight.
        distillation: the loss, one of ``ce``, ``ls``, ``kd``, ``tfkd-self``, ``tfkd-reg``.
        distillation_args: overrides of the method's reference defaults (``alpha``, ``temperature``,
            ``epsilon``, ``a``, ``multiplier``: :data:`crossmedia.nn.distill.DEFAULTS`).
        teacher: zoo name of the teacher (``kd`` and ``tfkd-self`` only); it must classify the data's K classes.
        lr, weight_decay: AdamW's; the learning rate follows a cosine schedule to 0 over training.
        init_from: the weights fit starts from (a classify zoo name, ``.safetensors`` or ``.ckpt``); read
            only when fitting, so evaluating a trained model keeps its own weights.

    Raises:
        ValueError: at validate / test, data with another class count than ``num_classes`` (both named,
            and the flag); at fit, a teacher or ``init_from`` weights that do not fit (named).
    """

    task = "classify"
    summary = "image classifier (timm backbone) trained with CE, label smoothing, KD or Tf-KD"
    paper = {"title": "Revisiting Knowledge Distillation via Label Smoothing Regularization", "arxiv": "1909.11723"}
    card_metrics = [{"metric": "top-1 accuracy", "key": "test/top1", "split": "test"}]
    fit_hparams = ("num_classes", "class_names")  # both follow the data at fit (head rebuilt)
    data_labels = "class_names"
    inference = ("classify", "probabilities")

    def __init__(self, *, num_classes: int, class_names: list[str] | None = None, backbone: str = "test_resnet",
                 pretrained: bool = False, dropout: float = 0.0, image_size: int = 32, distillation: str = "ce",
                 distillation_args: dict | None = None, teacher: str | None = None, lr: float = 2e-3,
                 weight_decay: float = 5e-4, init_from: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.loss_fn = Distillation(distillation, distillation_args)
        self.loss_fn.check_teacher_name(teacher, example="classify-baseline")
        self.net = ImageClassifierNet(backbone=backbone, num_classes=num_classes, pretrained=pretrained,
                                      dropout=dropout)
        self._metrics_for(num_classes)

    def _metrics_for(self, num_classes: int) -> None:
        self.val_top1 = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_top1 = MulticlassAccuracy(num_classes=num_classes, average="micro")

    # inference API

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, K) of normalised images (B, 3, S, S) or clips (B, T, 3, S, S)."""
        return self.net(images)

    def preprocess(self, images) -> Tensor:
        """PIL images (one or a list) -> a normalised (N, 3, S, S) batch; clips (a list of lists of PIL
        frames, all of one length T) -> (N, T, 3, S, S); tensors of either shape pass as they are."""
        if isinstance(images, Tensor):
            if images.ndim not in (4, 5) or images.shape[-3] != 3:
                raise TypeError(f"classify takes PIL images, clips (lists of PIL frames) or a normalised "
                                f"(N, 3, H, W) / (N, T, 3, H, W) tensor; got a tensor of shape {tuple(images.shape)}")
            return images.to(self.device)
        from PIL import Image
        from torchvision.transforms import functional as F

        items = [images] if not isinstance(images, (list, tuple)) else list(images)
        frames = items
        if items and all(isinstance(item, (list, tuple)) for item in items):  # clips: lists of PIL frames
            lengths = sorted({len(clip) for clip in items})
            if len(lengths) != 1 or lengths[0] == 0:
                raise TypeError(f"classify's clips must all have the same number of frames (at least one); "
                                f"got clips of {lengths} frames")
            frames = [frame for clip in items for frame in clip]
        bad = next((frame for frame in frames if not isinstance(frame, Image.Image)), None)
        if bad is not None:
            raise TypeError(f"classify takes PIL images (one or a list), clips (a list of lists of PIL frames) "
                            f"or a tensor; got a {type(bad).__name__}")
        size = [self.hparams.image_size] * 2
        batch = torch.stack([F.normalize(F.to_tensor(F.resize(im.convert("RGB"), size)), _MEAN, _STD)
                             for im in frames])  # (N, 3, S, S), clips: (N T, 3, S, S)
        if frames is not items:
            batch = rearrange(batch, "(n t) c h w -> n t c h w", n=len(items))  # (N, T, 3, S, S)
        return batch.to(self.device)

    @torch.no_grad()
    def probabilities(self, images) -> Tensor:
        """Class probabilities (N, K) of PIL images, clips of PIL frames or a normalised tensor batch."""
        with eval_mode(self):
            return self(self.preprocess(images)).softmax(dim=1)

    def classify(self, images) -> list[str]:
        """The class name of each image or clip (PIL images, clips of PIL frames or a normalised tensor batch)."""
        names = self.hparams.class_names or [str(i) for i in range(self.hparams.num_classes)]
        return [names[i] for i in self.probabilities(images).argmax(dim=1).tolist()]

    # teacher

    def attach_teacher(self, teacher: nn.Module) -> nn.Module:
        """Use ``teacher`` (frozen, kept out of this module's weights) instead of loading the zoo entry."""
        return self.loss_fn.attach_teacher(teacher)

    def check_labels(self, names: list[str], where: object) -> None:
        """Evaluation (:class:`~crossmedia.core.init_from.FitsDataLabels`): refuse another class count."""
        if len(names) != self.hparams.num_classes:
            raise ValueError(f"the data in {where} has {len(names)} classes but the model was built for "
                             f"{self.hparams.num_classes} (model.init_args.num_classes): evaluate it on data of its "
                             f"{self.hparams.num_classes} classes; a model fine-tuned on this data is evaluated with its "
                             f"run's --ckpt_path (its hyper-parameters rebuild the head for {len(names)}) or with "
                             f"--model.init_args.num_classes={len(names)}; or fine-tune it on this data first (fit "
                             f"rebuilds the head)")

    def take_labels(self, names: list[str], start: tuple[dict, list[str] | None] | None = None,
                    where: object = "the data") -> None:
        """Fit: follow the data's class ``names`` (K' of them). A head of another size is rebuilt for K',
        every other weight kept; ``start`` (state dict, its class names) is loaded too, its head rows of
        the class names both share kept (:func:`~crossmedia.core.init_from.remap_rows`)."""
        configured = self.hparams.num_classes
        own = self.hparams.class_names or [str(i) for i in range(configured)]
        state, old = (self.state_dict(), own) if start is None else start
        head = state.get("net.head.1.weight")  # None: left to the strict load, which names it
        old = self.start_labels(old, len(old or []) if head is None else head.shape[0])
        self.hparams.class_names = list(names)
        if len(names) != configured:
            linear = self.net.head[1]
            self.net.head[1] = nn.Linear(linear.in_features, len(names)).to(linear.weight.device)
            self.hparams.num_classes = len(names)
            self._metrics_for(len(names))
        self.carry_over(state, old, names, started=start is not None, where=where, task="classify", what="classes",
                        part="the head (net.head) is", configured=configured, kept="head rows")

    def on_fit_start(self) -> None:
        """Load the teacher through the zoo (once); it must classify as many classes as the data has."""
        if self.loss_fn.needs_teacher and self.loss_fn.teacher is None:
            self.attach_teacher(_registry_load(self.hparams.teacher))
        teacher = self.loss_fn.teacher
        if teacher is None:
            return
        hparams = getattr(teacher, "hparams", None)
        hparams = hparams if isinstance(hparams, dict) else {}
        classes, names, own = hparams.get("num_classes"), hparams.get("class_names"), self.hparams.class_names
        if (classes is not None and classes != self.hparams.num_classes) or (names and own and list(names) != own):
            card = getattr(getattr(teacher, "zoo_card", None), "name", None) or self.hparams.teacher
            datamodule = getattr(self.trainer, "datamodule", None)
            shown = f" ({', '.join(map(str, names))})" if names else ""
            raise ValueError(f"the teacher {card!r} (model.init_args.teacher) classifies {classes} classes{shown} but "
                             f"the data in {getattr(datamodule, 'root', 'the datamodule')} has "
                             f"{self.hparams.num_classes} ({', '.join(map(str, own or []))}): give a teacher trained "
                             f"on this data, or a method without one (distillation ce, ls or tfkd-reg)")

    # training

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, y = batch
        loss = self.loss_fn(self(x), y, x)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        return loss

    def _eval_step(self, batch, metric: MulticlassAccuracy, stage: str) -> Tensor:
        x, y = batch
        logits = self(x)
        metric.update(logits, y)
        self.log(f"{stage}/top1", metric, on_epoch=True, prog_bar=stage == "val", batch_size=len(y))
        return logits

    def validation_step(self, batch, batch_idx: int) -> Tensor:
        return self._eval_step(batch, self.val_top1, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.test_top1, "test")

    def configure_callbacks(self):
        from crossmedia.tasks.classify.callbacks import ClassifySamples

        return [ClassifySamples()]

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
