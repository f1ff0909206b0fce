"""Deep hashing LightningModules: CSQ (hash centers) and the DSH pairwise baseline.

CSQ — Yuan et al., "Central Similarity Quantization for Efficient Image and Video Retrieval",
CVPR 2020, arXiv 1908.00347. Every class gets a hash center (Sec. 3.1); a sample's target is its
class center, or the per-bit majority vote of its labels' centers (Sec. 3.2); the loss is the
central similarity term (Eq. 6, binary cross-entropy between code and center) plus λ times the
quantisation term (Eq. 7, log cosh(|h| − 1)).

DSH — Liu et al., "Deep Supervised Hashing for Fast Image Retrieval", CVPR 2016: a pairwise
contrastive loss on real-valued outputs, the baseline CSQ is compared with.
"""
from __future__ import annotations

from typing import Literal

import torch
from pytorch_lightning.utilities import rank_zero_info

from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.tasks.hashing.centers import hash_centers, multilabel_centers
from crossmedia.tasks.hashing.losses import central_similarity_loss, dsh_loss, quantization_loss
from crossmedia.tasks.hashing.metrics import HammingMAP
from crossmedia.tasks.hashing.models import ImageHashNet, VideoHashNet

__all__ = ["HashingModule", "CSQModule", "DSHModule"]


# helpers

def _is_clip(item, image_type: type) -> bool:
    """A clip is a non-empty list or tuple of PIL frames."""
    return isinstance(item, (list, tuple)) and len(item) > 0 and all(isinstance(f, image_type) for f in item)


def _describe(item, image_type: type) -> str:
    """What a user passed, in words: "a PIL image", "a list of 8 PIL images", "a str"."""
    def one(x):
        return "PIL image" if isinstance(x, image_type) else type(x).__name__
    if isinstance(item, (list, tuple)):
        return f"a {type(item).__name__} of {len(item)} {one(item[0]) + 's' if item else 'items'}"
    return f"a {one(item)}"


# classes

class HashingModule(TaskModule):
    """Shared parts: the network, evaluation by Hamming ranking, the ``hash()`` API."""

    task = "hashing"
    summary = "deep hashing"
    card_metrics = [{"metric": "mAP@all", "key": "test/mAP", "split": "query/database"}]
    fit_hparams = ("num_classes",)  # follows the data at fit (take_num_classes), so export writes the new count
    inference = ("hash",)

    def __init__(self, *, num_classes: int, bits: int = 64, backbone: str = "resnet10t",
                 pretrained: bool = False, video: bool = False, temporal: str = "c3d",
                 hidden: int = 512, dropout: float = 0.5, image_size: int = 32, lr: float = 1e-3,
                 weight_decay: float = 1e-4, map_top_k: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        net_args = dict(backbone=backbone, bits=bits, pretrained=pretrained, hidden=hidden, dropout=dropout)
        self.net = VideoHashNet(temporal=temporal, **net_args) if video else ImageHashNet(**net_args)
        self.val_map = HammingMAP(top_k=map_top_k)
        self.test_map = HammingMAP(top_k=map_top_k)

    # inference API

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous codes in (−1, 1): (B, 3, H, W) or (B, T, 3, H, W) -> (B, bits)."""
        return torch.tanh(self.net(x))

    def preprocess(self, images) -> torch.Tensor:
        """PIL images (image model) or clips, lists of PIL frames (video model) -> a normalised
        batch on the module's device: (N, 3, S, S) or (N, T, 3, S, S), S = ``image_size``.

        Tensors are taken as already-normalised batches, as the DataModule yields them.

        Raises:
            TypeError: naming what this model hashes, when given the other kind (an image to a
                video model, a clip to an image model) or a tensor of the wrong rank.
        """
        if isinstance(images, torch.Tensor):
            self._check_tensor(images)
            return images.to(self.device)
        from PIL import Image
        from torchvision.transforms import functional as F

        def one(image):
            image = F.resize(image.convert("RGB"), [self.hparams.image_size] * 2)
            return F.normalize(F.to_tensor(image), [0.5] * 3, [0.5] * 3)  # (3, S, S)

        items = [images] if not isinstance(images, (list, tuple)) else list(images)
        if self.hparams.video:
            bad = next((item for item in items if not _is_clip(item, Image.Image)), None)
            if bad is not None:
                raise TypeError(f"this hashing model hashes clips (video=True): pass a list of clips, each a "
                                f"list of PIL frames ([frames] for one clip), or a tensor (N, T, 3, H, W); "
                                f"got {_describe(bad, Image.Image)} among the inputs")
            batch = torch.stack([torch.stack([one(frame) for frame in clip]) for clip in items])  # (N, T, 3, S, S)
        else:
            bad = next((item for item in items if not isinstance(item, Image.Image)), None)
            if bad is not None:
                hint = " (a clip: hash it with a video model, video=True)" if _is_clip(bad, Image.Image) else ""
                raise TypeError(f"this hashing model hashes images: pass PIL images (one or a list) or a tensor "
                                f"(N, 3, H, W); got {_describe(bad, Image.Image)}{hint}")
            batch = torch.stack([one(image) for image in items])  # (N, 3, S, S)
        return batch.to(self.device)

    def _check_tensor(self, batch: torch.Tensor) -> None:
        rank, kind, shape = (5, "clips", "(N, T, 3, H, W)") if self.hparams.video else (4, "images", "(N, 3, H, W)")
        if batch.ndim != rank or batch.shape[-3] != 3:
            raise TypeError(f"this hashing model hashes {kind}: a tensor batch must be {shape}, normalised "
                            f"to [-1, 1]; got a tensor of shape {tuple(batch.shape)}")

    @torch.no_grad()
    def hash(self, images) -> torch.Tensor:
        """Binary codes (N, bits) as int8 ±1, sign(0) = +1.

        Image models take PIL images or an (N, 3, H, W) tensor; video models (``video=True``)
        take clips, each a list of PIL frames, or an (N, T, 3, H, W) tensor.
        """
        with eval_mode(self):
            return torch.where(self(self.preprocess(images)) >= 0, 1, -1).to(torch.int8)

    # training

    def setup(self, stage: str) -> None:
        """Data whose label width differs from ``num_classes``: ``fit`` takes the data's (the only
        sensible choice, e.g. a recipe run on one's own data; :meth:`take_num_classes`) and says so
        in one line; evaluation refuses before any step runs, naming both numbers."""
        datamodule = self.trainer.datamodule
        found = getattr(datamodule, "num_classes", None)
        if found is None or int(found) == self.hparams.num_classes:
            return
        where = getattr(datamodule, "root", "the datamodule")
        if stage == "fit":
            rank_zero_info(f"hashing: the data in {where} has {found} classes, the model was configured for "
                           f"{self.hparams.num_classes}: training for {found} (model.init_args.num_classes)")
            self.take_num_classes(int(found))
            return
        raise ValueError(f"the hashing data in {where} has {found} classes but the model was built for "
                         f"{self.hparams.num_classes} (model.init_args.num_classes): set "
                         f"--model.init_args.num_classes={found}, or give data with "
                         f"{self.hparams.num_classes} classes")

    def take_num_classes(self, num_classes: int) -> None:
        """Rebuild what depends on the class count for ``num_classes`` (here: only the hyper-parameter)."""
        self.hparams.num_classes = num_classes

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def codes(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.where(outputs >= 0, 1.0, -1.0)

    def training_step(self, batch, batch_idx):
        x, y = batch
        losses = self.loss(self.net(x), y)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=len(x))
        return losses["loss"]

    def _eval_step(self, metric: HammingMAP, batch, dataloader_idx: int) -> dict:
        x, y = batch
        codes = self.codes(self.net(x))
        metric.update(codes, y, database=dataloader_idx == 1)
        return {"codes": codes, "labels": y}

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        return self._eval_step(self.val_map, batch, dataloader_idx)

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        return self._eval_step(self.test_map, batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self.log("val/mAP", self.val_map.compute(), prog_bar=True, add_dataloader_idx=False, sync_dist=False)
        self.val_map.reset()

    def on_test_epoch_end(self) -> None:
        self.log("test/mAP", self.test_map.compute(), add_dataloader_idx=False, sync_dist=False)
        self.test_map.reset()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def configure_callbacks(self):
        from crossmedia.tasks.hashing.callbacks import HashingSamples

        return [HashingSamples()]


class CSQModule(HashingModule):
    """Central Similarity Quantization: hash centers + central similarity + quantisation loss."""

    summary = "CSQ: hash centers from Hadamard rows, central similarity + quantisation loss"
    paper = {"title": "Central Similarity Quantization for Efficient Image and Video Retrieval",
             "arxiv": "1908.00347"}

    def __init__(self, *, num_classes: int, bits: int = 64, lam: float = 1e-4,
                 quantization: Literal["logcosh", "l2"] = "logcosh", center_seed: int = 0, **kwargs):
        super().__init__(num_classes=num_classes, bits=bits, **kwargs)
        self.save_hyperparameters()
        self.register_buffer("centers", hash_centers(num_classes, bits, seed=center_seed))  # (C, bits)

    def take_num_classes(self, num_classes: int) -> None:
        """The hash centers are per class: new ones for ``num_classes`` (same seed, same rule)."""
        super().take_num_classes(num_classes)
        self.centers = hash_centers(num_classes, self.hparams.bits, seed=self.hparams.center_seed).to(self.centers)

    def loss(self, outputs, labels):
        targets = multilabel_centers(labels, self.centers, seed=self.hparams.center_seed)  # (B, bits)
        central = central_similarity_loss(outputs, targets)
        quant = quantization_loss(torch.tanh(outputs), kind=self.hparams.quantization)
        return {"loss": central + self.hparams.lam * quant, "central": central, "quantization": quant}


class DSHModule(HashingModule):
    """Deep Supervised Hashing: pairwise contrastive loss on real-valued outputs (baseline)."""

    summary = "DSH pairwise baseline: contrastive loss on in-batch pairs + binary regulariser"
    paper = {"title": "Deep Supervised Hashing for Fast Image Retrieval", "arxiv": ""}

    def __init__(self, *, num_classes: int, bits: int = 64, margin: float | None = None,
                 alpha: float = 0.01, **kwargs):
        super().__init__(num_classes=num_classes, bits=bits, **kwargs)
        self.save_hyperparameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """DSH has no tanh: real-valued outputs whose signs are the codes."""
        return self.net(x)

    def loss(self, outputs, labels):
        return {"loss": dsh_loss(outputs, labels, margin=self.hparams.margin, alpha=self.hparams.alpha)}
