"""Image–text retrieval LightningModules: VSE0, VSE++ and order embeddings on one joint-embedding model.

VSE++ — Faghri et al., "VSE++: Improving Visual-Semantic Embeddings with Hard Negatives", BMVC
2018, arXiv 1707.05612. An image i and a caption c are mapped into one D-dimensional space,

    f(i) = W_f φ(i) / ‖·‖        (φ: a CNN's pooled features; Sec. 3 "image encoder")
    g(c) = GRU(W_e c) / ‖·‖      (the GRU's final state over word embeddings; "caption encoder")

scored by s(i, c) = f(i)ᵀ g(c), and trained with the hinge triplet loss of
:mod:`crossmedia.nn.contrastive` over the batch: VSE0 sums the hinges of all negatives (Eq. 2,
the baseline), VSE++ keeps only the hardest negative of each positive pair (Eq. 4), margin
α = 0.2 for both. Reference schedule (the default here): Adam, learning rate 2e-4 divided by 10
halfway through training; the reference also clips the gradient norm at 2 (set
``trainer.gradient_clip_val: 2.0``).

Order embeddings — Vendrov et al., "Order-Embeddings of Images and Language", ICLR 2016, arXiv
1511.06361: the same encoders with absolute values of the normalised embeddings (non-negative
coordinates), the score s(i, c) = −E(f(i), g(c)), E(x, y) = ‖max(0, y − x)‖² (Eq. 2), and the
sum of hinges over all negatives with margin α = 0.05 (Eq. 3).

Negatives under DDP: the embeddings of the whole global batch are gathered on every process
(``all_gather(sync_grads=True)``), so each positive pair meets the negatives of all processes and
the loss is that of one process with the global batch; its gradient flows back to the process
that computed each embedding (DDP then averages the identical losses' gradients). Set
``gather_negatives=False`` for in-batch negatives per process (cheaper, weaker negatives).

Precomputed image features (VSE++'s ``*_precomp`` data, ``image_features=D_f``): φ(i) is the
given (D_f,) row, so f(i) = W_f φ(i) / ‖·‖ is VSE++'s ``EncoderImagePrecomp`` (a linear layer, then
L2 normalisation) and no CNN is built. Fitting a CNN model on such a folder replaces its CNN by
that encoder and says so in one line (the data's ``feature_dim`` sizes ``W_f``).

Evaluation: every image of the split with its 5 captions
(:class:`crossmedia.tasks.retrieval.data.RetrievalDataModule`) into
:class:`crossmedia.metrics.retrieval.RetrievalRecall` (VSE++'s ``i2t`` / ``t2i``, gathered over
DDP): R@1/5/10, medr, meanr both ways and rsum, logged as ``val/*`` and ``test/*`` (``val/rsum``
is the number to monitor).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor, nn

from crossmedia.core.backbones import create_backbone
from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.data.karpathy import Vocabulary, tokenize
from crossmedia.metrics.retrieval import RetrievalRecall
from crossmedia.nn.contrastive import ORDER_MARGIN, VSE_MARGIN, order_similarity, vse0_loss, vsepp_loss
from crossmedia.nn.text import GRUSentenceEncoder
from crossmedia.tasks.retrieval.data import CAPTIONS_PER_IMAGE, image_tensor

__all__ = ["RetrievalModule", "VSE0", "VSEPP", "OrderEmbedding", "dot_similarity", "order_scores"]

_METRIC_KEYS = ("rsum", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "i2t_medr", "t2i_medr")


def dot_similarity(images: Tensor, captions: Tensor) -> Tensor:
    """s(i, c) = f(i)ᵀ g(c), the cosine for L2-normalised embeddings: (N, D), (M, D) -> (N, M)."""
    return images @ captions.T


def order_scores(images: Tensor, captions: Tensor, *, budget: int = 1 << 24) -> Tensor:
    """s(i, c) = −‖max(0, g(c) − f(i))‖² (:func:`order_similarity`): (N, D), (M, D) -> (N, M), computed
    over rows of images so that no (rows, M, D) difference tensor exceeds ``budget`` elements (the
    metric asks for ~1M scores at once: unchunked that is 4 GB at D = 1024). Differentiable."""
    rows = max(1, budget // max(1, len(captions) * images.shape[1]))
    return torch.cat([order_similarity(images[start:start + rows], captions)  # (rows, M)
                      for start in range(0, len(images), rows)])  # (N, M)


class RetrievalModule(TaskModule):
    """Shared parts: the two encoders, the batch hinge loss over (gathered) negatives, evaluation by
    R@K, and the ``encode_image`` / ``encode_text`` / ``search`` API. Subclasses set :meth:`loss`
    (and, for order embeddings, ``similarity`` and ``nonnegative``).

    Args:
        vocab: the words by id (``Vocabulary.words``); ``None`` takes the data's at fit.
        backbone, pretrained: the image CNN by timm name (:func:`create_backbone`; the default
            EfficientNet-Lite0's ImageNet weights need no download).
        image_features: D_f of precomputed image features: the image encoder is then W_f alone
            (no CNN; ``backbone`` and ``pretrained`` are not used). ``None`` takes the data's at
            fit when it gives features (a :class:`RetrievalDataModule` on VSE++'s precomputed layout).
        train_backbone: fine-tune the CNN (False: frozen, in eval mode, only the projection learns).
        dim: joint embedding width D (VSE++: 1024).
        word_dim, text_layers, bidirectional, pooling: the GRU text encoder
            (:class:`crossmedia.nn.text.GRUSentenceEncoder`, hidden = ``dim`` per direction; a
            linear layer maps it to ``dim`` when bidirectional).
        margin: α of the hinges. image_size: side S of the images it reads.
        lr: Adam's learning rate; ``lr_decay_epoch``: the epoch from which it is divided by 10
            (``None``: half of ``trainer.max_epochs``).
        gather_negatives: under DDP, negatives from all processes (module docstring).
    """

    task = "retrieval"
    summary = "image-text retrieval by a joint embedding"
    card_metrics = [{"metric": key, "key": f"test/{key}", "split": "test"} for key in _METRIC_KEYS]
    fit_hparams = ("vocab", "image_features")  # from the data at fit; export copies them into the card
    inference = ("search", "encode_image", "encode_text")
    similarity = staticmethod(dot_similarity)
    nonnegative = False  # order embeddings take absolute values

    def __init__(self, *, vocab: list[str] | None = None, backbone: str = "tf_efficientnet_lite0",
                 pretrained: bool = True, train_backbone: bool = True, dim: int = 1024, word_dim: int = 300,
                 text_layers: int = 1, bidirectional: bool = False, pooling: Literal["last", "mean"] = "last",
                 margin: float = VSE_MARGIN, image_size: int = 64, max_len: int = 32, lr: float = 2e-4,
                 lr_decay_epoch: int | None = None, gather_negatives: bool = True,
                 image_features: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.image_backbone: nn.Module | None = None
        if image_features is None:
            self.image_backbone = create_backbone(backbone, pretrained=pretrained, num_classes=0)
            self.image_backbone.requires_grad_(train_backbone)
        self.image_fc = nn.Linear(image_features or self.image_backbone.num_features, dim)
        self.vocabulary: Vocabulary | None = None
        self.text_encoder: GRUSentenceEncoder | None = None
        self.text_fc: nn.Module = nn.Identity()
        if vocab is not None:
            self._build_text(Vocabulary(vocab))
        self.val_recall = RetrievalRecall(similarity=self.similarity)
        self.test_recall = RetrievalRecall(similarity=self.similarity)

    def _build_text(self, vocabulary: Vocabulary) -> None:
        hp = self.hparams
        self.vocabulary = vocabulary
        self.hparams.vocab = list(vocabulary.words)
        self.text_encoder = GRUSentenceEncoder(vocab_size=len(vocabulary), embed_dim=hp.word_dim, hidden=hp.dim,
                                               layers=hp.text_layers, bidirectional=hp.bidirectional,
                                               pooling=hp.pooling)
        width = self.text_encoder.output_dim
        self.text_fc = nn.Linear(width, hp.dim) if width != hp.dim else nn.Identity()

    def configure_model(self) -> None:
        """Match the encoders to the data: build the text encoder from the data's vocabulary when the
        module was made without one, and the image encoder for its images or precomputed features.
        ``fit`` (which starts from the card's recipe, not its weights) rebuilds a text encoder of other
        words or an image encoder of another input and says so in one line; validate / test refuse
        such data (the trained weights would read other words or other features)."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        fitting = self._trainer is None or self._trainer.state.fn == "fit"
        self._take_feature_dim(getattr(datamodule, "feature_dim", None), datamodule, fitting)
        data_vocabulary = getattr(datamodule, "vocabulary", None)
        if self.text_encoder is None:
            if data_vocabulary is None:
                raise RuntimeError(f"{type(self).__name__} has no vocabulary: pass vocab=[...] or train with a "
                                   f"RetrievalDataModule, whose training captions give one")
            self._build_text(data_vocabulary)
        elif data_vocabulary is not None and list(data_vocabulary.words) != list(self.vocabulary.words):
            if fitting:
                rank_zero_info(f"retrieval: the data's vocabulary ({len(data_vocabulary)} words) differs from the "
                               f"model's ({len(self.vocabulary)}): the text encoder is built anew for it")
                return self._build_text(data_vocabulary)
            raise ValueError(f"the model's vocabulary ({len(self.vocabulary)} words) differs from the one the data "
                             f"builds from its training captions ({len(data_vocabulary)} words, min_count "
                             f"{data_vocabulary.min_count}): use the data (and min_count) it was trained on, or "
                             f"train a new model (model.init_args.vocab: null)")

    def _take_feature_dim(self, feature_dim: int | None, datamodule, fitting: bool) -> None:
        """Match the image encoder to the data: precomputed features of width ``feature_dim`` (None:
        images). ``fit`` rebuilds it and says so; validate / test refuse (the weights read other input)."""
        hp = self.hparams
        have = hp.image_features
        if feature_dim == have:
            return
        where = getattr(datamodule, "root", "the data")
        if not fitting:
            reads = f"precomputed image features of width {have}" if have is not None else f"images (CNN {hp.backbone})"
            gives = f"image features of width {feature_dim}" if feature_dim is not None else "images"
            raise ValueError(f"{type(self).__name__} was trained on {reads}, but {where} gives {gives}: evaluate it "
                             f"on data like its training data, or fit it on this data first (fit rebuilds the image "
                             f"encoder)")
        if feature_dim is None:
            rank_zero_info(f"{where} gives images: the model's precomputed-feature encoder ({have}-d) is replaced by "
                           f"the image CNN {hp.backbone} (pretrained: {hp.pretrained}) and a new linear layer")
            self.image_backbone = create_backbone(hp.backbone, pretrained=hp.pretrained, num_classes=0)
            self.image_backbone.requires_grad_(hp.train_backbone)
        elif have is not None:
            rank_zero_info(f"{where} gives image features of width {feature_dim}, the model's encoder takes {have}: "
                           f"a new linear layer {feature_dim} -> {hp.dim} replaces it")
        else:
            rank_zero_info(f"{where} gives precomputed image features ({feature_dim}-d): the image CNN "
                           f"({hp.backbone}) is replaced by VSE++'s precomputed-feature encoder, a new "
                           f"linear layer {feature_dim} -> {hp.dim}")
            self.image_backbone = None
        hp.image_features = feature_dim
        self.image_fc = nn.Linear(feature_dim or self.image_backbone.num_features, hp.dim)

    def train(self, mode: bool = True):
        """As ``nn.Module.train``, but a frozen backbone (``train_backbone=False``) stays in eval mode."""
        super().train(mode)
        if not self.hparams.train_backbone and self.image_backbone is not None:
            self.image_backbone.eval()
        return self

    # embeddings (differentiable)

    def _finish(self, x: Tensor) -> Tensor:
        x = F.normalize(x, dim=-1)  # (B, D) unit length
        return x.abs() if self.nonnegative else x

    def embed_images(self, images: Tensor) -> Tensor:
        """f(i): (B, 3, S, S) in [−1, 1] (or (B, D_f) features for an ``image_features`` model) ->
        (B, D), unit length (non-negative for order embeddings)."""
        if self.image_backbone is None:
            if images.ndim != 2 or images.shape[1] != self.hparams.image_features:
                raise ValueError(f"{type(self).__name__} takes precomputed image features (N, "
                                 f"{self.hparams.image_features}), got shape {tuple(images.shape)}")
            return self._finish(self.image_fc(images))
        return self._finish(self.image_fc(self.image_backbone(images)))

    @staticmethod
    def _visual(batch: dict) -> Tensor:
        """A batch's images (B, 3, S, S) or precomputed features (B, D_f)."""
        return batch["images"] if "images" in batch else batch["feats"]

    def embed_texts(self, captions: Tensor, lengths: Tensor) -> Tensor:
        """g(c): ids (B, L) long + lengths (B,) long -> (B, D), unit length (non-negative for order)."""
        if self.text_encoder is None:
            raise RuntimeError(f"{type(self).__name__} has no text encoder yet: pass vocab=[...] or fit it first")
        return self._finish(self.text_fc(self.text_encoder(captions, lengths)))

    # inference API

    def _image_batch(self, images) -> Tensor:
        """PIL images (one or a list) or a (N, 3, H, W) tensor in [−1, 1] -> a batch on the module's device
        ((N, D_f) features for an ``image_features`` model)."""
        if self.image_backbone is None:
            if not isinstance(images, Tensor):
                raise TypeError(f"{type(self).__name__} was trained on precomputed image features: pass them as a "
                                f"(N, {self.hparams.image_features}) tensor, not {type(images).__name__}")
            return images.to(self.device, torch.float32)
        if isinstance(images, Tensor):
            if images.ndim != 4 or images.shape[1] != 3:
                raise TypeError(f"images as a tensor must be (N, 3, H, W) in [-1, 1], got shape {tuple(images.shape)}")
            return images.to(self.device)
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        from PIL import Image

        bad = next((item for item in items if not isinstance(item, Image.Image)), None)
        if bad is not None or not items:
            raise TypeError(f"pass PIL images (one or a list) or a tensor (N, 3, H, W); got "
                            f"{type(bad).__name__ if items else 'an empty list'}")
        return torch.stack([image_tensor(image.convert("RGB"), self.hparams.image_size) for image in items]).to(self.device)

    @torch.no_grad()
    def encode_image(self, images) -> Tensor:
        """Image embeddings (N, D): PIL images (one or a list) or a (N, 3, H, W) tensor in [−1, 1]; a
        model on precomputed features takes them, (N, D_f)."""
        with eval_mode(self):
            return self.embed_images(self._image_batch(images))

    @torch.no_grad()
    def encode_text(self, captions: str | list[str]) -> Tensor:
        """Caption embeddings (N, D) of sentences (one string or a list); words outside the vocabulary are ``<unk>``.

        Raises:
            ValueError: for a caption with no word (after lowercasing and removing punctuation).
        """
        texts = [captions] if isinstance(captions, str) else list(captions)
        tokens = [tokenize(text) for text in texts]
        empty = next((text for text, words in zip(texts, tokens) if not words), None)
        if empty is not None or not texts:
            raise ValueError(f"encode_text needs captions with words, got {empty!r}" if texts
                             else "encode_text needs at least one caption")
        if self.vocabulary is None:
            raise RuntimeError(f"{type(self).__name__} has no vocabulary: pass vocab=[...] or fit it first")
        max_len = self.hparams.max_len
        ids = torch.tensor([self.vocabulary.encode(t, max_len, pad=True) for t in tokens], device=self.device)  # (N, L)
        lengths = torch.tensor([min(len(t), max_len) for t in tokens], device=self.device)  # (N,)
        with eval_mode(self):
            return self.embed_texts(ids, lengths)

    @torch.no_grad()
    def search(self, text: str, images, k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` images that best match ``text``: [(index, score)], best first.

        ``images``: PIL images, a (N, 3, H, W) tensor in [−1, 1], or their (N, D) embeddings from
        :meth:`encode_image` (to search one gallery many times; a model on precomputed features
        takes its (N, D_f) features too; where D_f = D a 2-D tensor is read as embeddings). The score is the model's
        similarity (cosine; minus the order violation for order embeddings).
        """
        if isinstance(images, Tensor) and images.ndim == 2 and images.shape[1] == self.hparams.dim:
            gallery = images.to(self.device)  # (N, D)
        else:
            gallery = self.encode_image(images)  # (N, D)
        scores = self.similarity(gallery, self.encode_text(text))[:, 0]  # (N,)
        top = scores.topk(min(k, len(scores)))
        return [(int(i), float(s)) for i, s in zip(top.indices, top.values)]

    # training

    def loss(self, sims: Tensor) -> Tensor:
        """The hinge loss on the (B, B) similarity matrix of a batch (positives on the diagonal)."""
        raise NotImplementedError

    def _gather(self, x: Tensor) -> Tensor:
        if not self.hparams.gather_negatives or self._trainer is None or self.trainer.world_size == 1:
            return x
        return self.all_gather(x, sync_grads=True).flatten(0, 1)  # (W·B, D)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        images = self._gather(self.embed_images(self._visual(batch)))  # (B, D)
        captions = self._gather(self.embed_texts(batch["captions"], batch["lengths"]))  # (B, D)
        loss = self.loss(self.similarity(images, captions))  # (B, B) -> ()
        if self._trainer is not None:  # also called by hand (tests, notebooks)
            self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["index"]))
        return loss

    def _eval_step(self, metric: RetrievalRecall, batch: dict) -> Tensor:
        images = self.embed_images(self._visual(batch))  # (B, D)
        captions = rearrange(batch["captions"], "b k l -> (b k) l")  # (5B, L)
        lengths = rearrange(batch["lengths"], "b k -> (b k)")  # (5B,)
        texts = rearrange(self.embed_texts(captions, lengths), "(b k) d -> b k d", k=CAPTIONS_PER_IMAGE)  # (B, 5, D)
        metric.update(images.float(), texts.float(), batch["index"])
        return images

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, Tensor]:
        """Updates R@K; returns the image embeddings ``{"images": (B, D)}`` for :class:`RetrievalSamples`."""
        return {"images": self._eval_step(self.val_recall, batch)}

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(self.test_recall, batch)

    def _log_recall(self, metric: RetrievalRecall, stage: str) -> None:
        results = metric.compute()  # gathered over processes: the same on every rank
        self.log_dict({f"{stage}/{key}": float(value) for key, value in results.items() if key != "rsum"},
                      sync_dist=False)
        self.log(f"{stage}/rsum", float(results["rsum"]), prog_bar=True, sync_dist=False)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_recall(self.val_recall, "val")

    def on_test_epoch_end(self) -> None:
        self._log_recall(self.test_recall, "test")

    def configure_callbacks(self):
        from crossmedia.tasks.retrieval.callbacks import RetrievalSamples

        return [RetrievalSamples()]

    def configure_optimizers(self):
        """Adam at ``lr``, divided by 10 from ``lr_decay_epoch`` (default: half of max_epochs; none
        when training is bounded by steps only)."""
        optimizer = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)
        decay = self.hparams.lr_decay_epoch
        if decay is None:
            epochs = getattr(self._trainer, "max_epochs", None) if self._trainer is not None else None
            if not epochs or epochs < 2:
                return optimizer
            decay = epochs // 2
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=decay, gamma=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


class VSE0(RetrievalModule):
    """VSE0: the sum of hinges over all negatives of the batch (VSE++'s baseline, Eq. 2), margin 0.2."""

    summary = "VSE0: joint image-text embedding, sum-of-hinges triplet loss (the VSE++ baseline)"
    paper = {"title": "VSE++: Improving Visual-Semantic Embeddings with Hard Negatives", "arxiv": "1707.05612"}

    def loss(self, sims: Tensor) -> Tensor:
        return vse0_loss(sims, margin=self.hparams.margin)


class VSEPP(RetrievalModule):
    """VSE++: the hinge of the hardest negative per positive pair, both directions (Eq. 4), margin 0.2."""

    summary = "VSE++: joint image-text embedding, hardest-negative triplet loss"
    paper = {"title": "VSE++: Improving Visual-Semantic Embeddings with Hard Negatives", "arxiv": "1707.05612"}

    def loss(self, sims: Tensor) -> Tensor:
        return vsepp_loss(sims, margin=self.hparams.margin)


class OrderEmbedding(RetrievalModule):
    """Order embeddings: non-negative embeddings, s = −‖max(0, g(c) − f(i))‖², sum of hinges, margin 0.05.

    ``max_violation=True`` takes VSE++'s hardest negative instead of the sum (not Vendrov et al.'s).
    """

    summary = "order embeddings: caption above its image in the reversed product order"
    paper = {"title": "Order-Embeddings of Images and Language", "arxiv": "1511.06361"}
    similarity = staticmethod(order_scores)
    nonnegative = True

    def __init__(self, *, margin: float = ORDER_MARGIN, max_violation: bool = False, **kwargs):
        super().__init__(margin=margin, **kwargs)
        self.save_hyperparameters()

    def loss(self, sims: Tensor) -> Tensor:
        if self.hparams.max_violation:
            return vsepp_loss(sims, margin=self.hparams.margin)
        return vse0_loss(sims, margin=self.hparams.margin)
