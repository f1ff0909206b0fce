"""Evaluating generated images by what is in them, with networks trained here (never Inception).

Every image generator of the task (text- or speech-conditioned) is measured the same way on a
split: one image per item (the item's first caption, a fixed noise seed per item, so the numbers
are reproducible), then

* semantic object accuracy: the zoo's ``scene-tagger`` (task caption, loaded through the
  registry) must find the shapes, colours and colour-shape pairs the caption's scene contains
  (:class:`~crossmedia.tasks.t2i.metrics.SemanticObjectAccuracy`);
* R-precision: the joint text-image encoder (``t2i-encoder``) ranks the true caption first among
  100 (:class:`~crossmedia.tasks.t2i.metrics.RPrecision`; chance 0.01);
* FID and KID between real and generated images of the split on the tagger's pooled region
  features (:mod:`crossmedia.metrics.image`; KID on subsets of 100, seeded, since a test split
  holds 500 images);
* diversity: mean distance between tagger features of ``diversity_samples`` images generated from
  one text with different noise, over the first ``diversity_texts`` items
  (:class:`~crossmedia.tasks.t2i.metrics.Diversity`).

The evaluation networks are held as plain attributes (not submodules): they add nothing to the
generator's state_dict, and are loaded on the first evaluation batch.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from crossmedia.core.modes import eval_mode
from crossmedia.metrics.image import FID, KID
from crossmedia.tasks.t2i.metrics import Diversity, RPrecision, SemanticObjectAccuracy

__all__ = ["GeneratedImageEvaluation", "GeneratorEvaluationHooks", "PooledTaggerFeatures", "item_noise"]


class PooledTaggerFeatures(nn.Module):
    """The tagger's region features averaged over regions: (B, 3, S, S) in [-1, 1] -> (B, D)."""

    def __init__(self, tagger: nn.Module) -> None:
        super().__init__()
        self.tagger = tagger

    def forward(self, images: Tensor) -> Tensor:
        return self.tagger.encoder(images).mean(dim=1)  # (B, N, D) -> (B, D)


class GeneratedImageEvaluation:
    """Metrics of one evaluation split; ``update(batch, generate)`` then ``compute() -> dict``.

    Args:
        tagger: the scene tagger (``forward`` gives tag logits, ``encoder`` region features), or None.
        scorer: the joint encoder (``embed_images``, ``embed_words``), or None.
        objects: ground-truth objects of every image of the split (None: no object accuracy).
        diversity_texts, diversity_samples: how many items, and images per item, for diversity.
    """

    def __init__(self, *, tagger: nn.Module | None, scorer: nn.Module | None, objects: list | None,
                 image_size: int = 64, diversity_texts: int = 100, diversity_samples: int = 4,
                 kid_subset: int = 100) -> None:
        self.tagger, self.scorer, self.objects = tagger, scorer, objects
        self.diversity_texts, self.diversity_samples = diversity_texts, diversity_samples
        self.soa = SemanticObjectAccuracy(list(tagger.tag_names)) if tagger is not None and objects else None
        self.rprec = RPrecision(candidates=100, seed=0) if scorer is not None else None
        if tagger is not None:
            features = PooledTaggerFeatures(tagger)
            self.features = features
            common = dict(feature_net=features, image_shape=(3, image_size, image_size), input_range=(-1, 1),
                          feature_range=(-1, 1))
            self.fid = FID(**common)
            self.kid = KID(subset_size=kid_subset, **common)
            self.diversity = Diversity()
        else:
            self.fid = self.kid = self.diversity = self.features = None
        self.count = 0

    def to(self, device) -> GeneratedImageEvaluation:
        for metric in (self.soa, self.rprec, self.fid, self.kid, self.diversity):
            if metric is not None:
                metric.to(device)
        return self

    @torch.no_grad()
    def update(self, batch: dict, generate: Callable[[dict, int], Tensor]) -> None:
        """``generate(batch, sample) -> (B, 3, S, S)`` in [-1, 1]; ``sample`` 0 is the scored image."""
        fake = generate(batch, 0).float().clamp(-1, 1)
        index = batch["index"]
        if self.soa is not None:
            with eval_mode(self.tagger):
                logits = self.tagger(fake)
            self.soa.update(logits, [self.objects[i] for i in index.tolist()])
        if self.rprec is not None:
            with eval_mode(self.scorer):
                self.rprec.update(self.scorer.embed_images(fake), self.scorer.embed_words(batch["words"]), index)
        if self.fid is not None:
            self.fid.update(batch["images"].float(), real=True)
            self.fid.update(fake, real=False)
            self.kid.update(batch["images"].float(), real=True)
            self.kid.update(fake, real=False)
            left = self.diversity_texts - self.count
            if left > 0:
                rows = slice(0, min(left, len(index)))
                samples = [fake[rows]] + [generate(batch, s).float().clamp(-1, 1)[rows]
                                          for s in range(1, self.diversity_samples)]
                with eval_mode(self.tagger):
                    stacked = torch.stack([self.features(x) for x in samples], dim=1)  # (b, n, D)
                self.diversity.update(stacked)
        self.count += len(index)

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.soa is not None:
            out.update({f"soa_{k}": float(v) for k, v in self.soa.compute().items()})
        if self.rprec is not None:
            out["r_precision"] = float(self.rprec.compute())
        if self.fid is not None:
            out["fid"] = float(self.fid.compute())
            with torch.random.fork_rng(devices=[]):  # KID's subsets: same draw every evaluation
                torch.manual_seed(0)
                self.kid.subset_size = min(self.kid.subset_size, self.count)  # tiny splits in tests
                kid = self.kid.compute()
            out["kid"] = float(kid[0] if isinstance(kid, tuple) else kid)
            out["diversity"] = float(self.diversity.compute())
        return out


def item_noise(index: Tensor, sample: int, dim: int) -> Tensor:
    """(B, dim) noise, row i drawn from the seed ``index[i] * 1000 + sample``: an evaluation item gets
    the same image in every run and at every batch size."""
    return torch.stack([torch.randn(dim, generator=torch.Generator().manual_seed(int(i) * 1000 + sample))
                        for i in index.tolist()])


class GeneratorEvaluationHooks:
    """Validation/test of an image generator (mixed into its LightningModule): every batch goes to a
    :class:`GeneratedImageEvaluation` of the split, whose values are logged as ``<stage>/<metric>``.

    The module provides ``sample_images(batch, sample) -> (B, 3, S, S)`` in [-1, 1], the property
    ``image_size`` (S) and the init args ``evaluator`` / ``scorer`` (zoo names, or None).
    """

    def _networks(self) -> tuple:
        """The tagger and the scorer (loaded once through the registry; never submodules)."""
        if not hasattr(self, "_nets"):
            from crossmedia.core.registry import load

            hp = self.hparams
            object.__setattr__(self, "_nets", (load(hp.evaluator) if hp.evaluator else None,
                                               load(hp.scorer) if hp.scorer else None))
        for net in self._nets:
            if net is not None:
                net.to(self.device)
        return self._nets

    def _eval_start(self, stage: str) -> None:
        tagger, scorer = self._networks()
        dm = None if self._trainer is None else self.trainer.datamodule
        objects = dm.scene_objects(stage) if dm is not None and hasattr(dm, "scene_objects") else None
        self._eval[stage] = GeneratedImageEvaluation(tagger=tagger, scorer=scorer, objects=objects,
                                                     image_size=self.image_size).to(self.device)

    def _eval_end(self, stage: str) -> None:
        values = self._eval.pop(stage).compute()
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=stage == "val")

    def on_validation_epoch_start(self) -> None:
        self._eval_start("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start("test")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval["val"].update(batch, self.sample_images)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval["test"].update(batch, self.sample_images)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def configure_callbacks(self):
        from crossmedia.tasks.t2i.callbacks import GeneratedSamples

        return [GeneratedSamples()]
