"""Video summarisation LightningModules: SUM-GDA (supervised / unsupervised) and Cycle-SUM.

Every module holds one network per evaluation split (``num_splits``, 5 by the standard
protocol): network ``s`` trains only on split ``s``'s training videos and is scored only on its
test videos (see :mod:`crossmedia.tasks.summarization.data`). The test loop logs, per the
SumMe/TVSum protocol, the F-score averaged over each split's test videos, then its mean and
standard deviation over the splits — next to two baselines scored by the same code: uniform
sampling (equal scores; the knapsack then prefers short segments as it does for any tie) and
seeded random scores.

For inference, :meth:`summarize_scores` averages the split networks' scores (an ensemble of the
five); :meth:`summarize` turns features or a video file into keyshots.

The F-score reduction of the test protocol (``max`` for SumMe, ``avg`` for TVSum) is the
DataModule's declared ``reduction`` (:class:`~crossmedia.tasks.summarization.data.SummarizationDataModule`).
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from crossmedia.core.manual import manual_step
from crossmedia.core.modes import eval_mode
from crossmedia.core.task import TaskModule
from crossmedia.tasks.summarization.metrics import SummaryFScore
from crossmedia.tasks.summarization.models import (CycleSUM, SumGDA, discriminator_losses, generator_losses,
                                                   sum_gda_supervised_loss, sum_gda_unsupervised_loss)

__all__ = ["SummarizationModule", "SumGDAModule", "CycleSUMModule"]

_EVAL_FIELDS = ("change_points", "n_frames", "n_frame_per_seg", "picks", "user_summary")


def _splits(mask: torch.Tensor) -> list[int]:
    """Indices of the splits a (S,) bool membership mask holds."""
    return mask.nonzero().flatten().tolist()


class SummarizationModule(TaskModule):
    """Shared parts: per-split networks, the 5-split protocol, the inference API."""

    task = "summarization"
    summary = "video summarisation"
    inference = ("summarize",)
    card_metrics = [
        {"metric": "F-score", "key": "test/F", "split": "5 splits, mean"},
        {"metric": "F-score std", "key": "test/F_std", "split": "5 splits, std"},
        {"metric": "F-score (uniform baseline)", "key": "test/F_uniform", "split": "5 splits, mean"},
        {"metric": "F-score (random baseline)", "key": "test/F_random", "split": "5 splits, mean"},
    ]

    def __init__(self, *, in_dim: int = 1024, num_splits: int = 5, proportion: float = 0.15, lr: float = 3e-4,
                 weight_decay: float = 1e-5, baseline_seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.nets = nn.ModuleList([self.make_net() for _ in range(num_splits)])
        self._metrics: dict[str, list[SummaryFScore]] = {}

    def make_net(self) -> nn.Module:
        raise NotImplementedError

    def scores(self, net: nn.Module, features: torch.Tensor) -> torch.Tensor:
        """(1, T, D) -> (1, T) importance in [0, 1]."""
        return net(features)

    # inference API

    @torch.no_grad()
    def summarize_scores(self, features: torch.Tensor) -> torch.Tensor:
        """Step importance (T,) for features (T, D): the mean of the split networks' scores."""
        features = torch.as_tensor(features, dtype=torch.float32, device=self.device)
        if features.dim() != 2 or features.shape[1] != self.hparams.in_dim:
            raise ValueError(f"features must be (T, {self.hparams.in_dim}), got {tuple(features.shape)}")
        with eval_mode(self):
            return torch.stack([self.scores(net, features[None])[0] for net in self.nets]).mean(dim=0)  # (T,)

    def summarize(self, video, *, out_dir=None, fps: float = 2.0, native_fps: float = 30.0, **kwargs):
        """Keyshots of a video file or of its 2 fps step features.

        - A path: decoded, encoded, KTS-segmented, scored and summarised by knapsack at
          ``proportion``; a summary GIF and a timeline picture are written to ``out_dir``
          (default ``<video>_summary/``). Options: see
          :func:`crossmedia.tasks.summarization.video.summarize_video`.
        - Features (T, D) sampled at ``fps`` from a ``native_fps`` video: KTS shots on the
          features, then the same scoring and knapsack; nothing is written.
        """
        from pathlib import Path

        import numpy as np

        from crossmedia.data.video import sampling_step
        from crossmedia.tasks.summarization.video import select_keyshots, summarize_video

        if isinstance(video, (str, Path)):
            video = Path(video)
            out_dir = Path(out_dir) if out_dir else video.with_name(f"{video.stem}_summary")
            return summarize_video(video, scorer=self.summarize_scores, in_dim=self.hparams.in_dim,
                                   out_dir=out_dir, fps=fps, proportion=self.hparams.proportion, **kwargs)
        features = torch.as_tensor(np.asarray(video), dtype=torch.float32)
        step = sampling_step(native_fps, fps)  # frames between two steps
        return select_keyshots(features, self.summarize_scores(features), step=step, n_frames=len(features) * step,
                               native_fps=native_fps, proportion=self.hparams.proportion)

    # the protocol

    def _reduction(self) -> str:
        """The F-score reduction the DataModule declares (``max`` SumMe, ``avg`` TVSum)."""
        reduction = getattr(self.trainer.datamodule, "reduction", None)
        if reduction not in ("max", "avg"):
            raise TypeError(f"{type(self).__name__} is scored by the SumMe/TVSum protocol: its DataModule must declare "
                            f"reduction = 'max' or 'avg' (as SummarizationDataModule does), got "
                            f"{type(self.trainer.datamodule).__name__} with reduction={reduction!r}")
        return reduction

    def _metric_set(self, stage: str) -> list[SummaryFScore]:
        if stage not in self._metrics:
            reduction = self._reduction()
            self._metrics[stage] = [
                SummaryFScore(reduction=reduction, proportion=self.hparams.proportion)
                for _ in range(3 * self.hparams.num_splits)  # model, uniform, random — per split
            ]
        return self._metrics[stage]

    def _eval_step(self, batch, stage: str) -> None:
        metrics = self._metric_set(stage)
        splits = _splits(batch["test_in"])
        fields = {name: batch[name].cpu() if torch.is_tensor(batch[name]) else batch[name] for name in _EVAL_FIELDS}
        features = batch["features"]  # (1, T, D)
        n_steps = features.shape[1]
        uniform = torch.ones(n_steps)
        g = torch.Generator().manual_seed(self.hparams.baseline_seed * 100_003 + int(fields["n_frames"]))
        random = torch.rand(n_steps, generator=g)
        for s in splits:
            scores = self.scores(self.nets[s], features)[0].float().cpu()
            for offset, step_scores in enumerate((scores, uniform, random)):
                metrics[offset * self.hparams.num_splits + s].update(step_scores, **fields)

    def _eval_epoch_end(self, stage: str) -> None:
        metrics = self._metrics.pop(stage, None)
        if not metrics or self.trainer.sanity_checking:  # a sanity check sees too few videos per split
            return
        n = self.hparams.num_splits
        per_split = torch.stack([m.compute().float() for m in metrics]).view(3, n)  # (method, split)
        log = {f"{stage}/F": per_split[0].mean(), f"{stage}/F_std": per_split[0].std(unbiased=False),
               f"{stage}/F_uniform": per_split[1].mean(), f"{stage}/F_random": per_split[2].mean()}
        log.update({f"{stage}/F_split{s}": per_split[0, s] for s in range(n)})
        self.log(f"{stage}/F", log.pop(f"{stage}/F"), prog_bar=True)
        self.log_dict(log)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def train_losses(self, net: nn.Module, batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        splits = _splits(batch["train_in"])
        totals: dict[str, torch.Tensor] = {}
        for s in splits:
            for name, value in self.train_losses(self.nets[s], batch).items():
                totals[name] = totals.get(name, 0) + value / len(splits)
        self.log_dict({f"train/{k}": v for k, v in totals.items()}, batch_size=1)
        if self._distributed():
            # DDP all-reduces every parameter's gradient, in the same buckets on every rank; a rank
            # whose video trains other splits would wait forever for these. 0 * sum(p): every
            # parameter gets a gradient (0 where the rank did not train it), so a split trained on
            # one rank is averaged with zeros as DDP averages any per-rank batch
            totals["total"] = totals["total"] + 0 * sum(p.sum() for p in self.nets.parameters())
        return totals["total"]

    def _distributed(self) -> bool:
        """Whether a trainer runs this module in more than one process (DDP)."""
        return self._trainer is not None and self.trainer.world_size > 1

    def on_before_optimizer_step(self, optimizer) -> None:
        """Under DDP, drop the (all-zero) gradients of splits no rank trained on this step, so that
        Adam skips them as it does in one process (no moment decay, no weight decay)."""
        if not (self.automatic_optimization and self._distributed()):
            return
        for net in self.nets:
            grads = [p.grad for p in net.parameters() if p.grad is not None]
            if grads and not any(g.any() for g in grads):
                for p in net.parameters():
                    p.grad = None

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def configure_callbacks(self):
        from crossmedia.tasks.summarization.callbacks import SummarySamples

        return [SummarySamples()]


class SumGDAModule(SummarizationModule):
    """SUM-GDA: global diverse attention over pairwise temporal relations (Li et al., 2020).

    ``supervised=True`` regresses the annotators' ``gtscore`` (MSE); ``False`` trains without
    labels on diversity, representativeness and a length term tied to the 15 % budget.
    """

    summary = "SUM-GDA: global diverse attention from pairwise frame relations"
    paper = {"title": "Exploring Global Diverse Attention via Pairwise Temporal Relation for Video Summarization",
             "arxiv": "2009.10942"}

    def __init__(self, *, in_dim: int = 1024, hidden: int = 256, heads: int = 1, dropout: float = 0.5,
                 supervised: bool = True, **kwargs):
        self._net_args = dict(in_dim=in_dim, hidden=hidden, heads=heads, dropout=dropout)
        super().__init__(in_dim=in_dim, **kwargs)
        self.save_hyperparameters()

    def make_net(self) -> nn.Module:
        return SumGDA(**self._net_args)

    def scores(self, net, features):
        return net(features)[0]  # SumGDA returns (scores, attention)

    def train_losses(self, net, batch):
        features = batch["features"]
        scores = self.scores(net, features)
        if self.hparams.supervised:
            return sum_gda_supervised_loss(scores, batch["gtscore"])
        return sum_gda_unsupervised_loss(scores, features, budget=self.hparams.proportion)


class CycleSUMModule(SummarizationModule):
    """Cycle-SUM: bi-LSTM selector with forward/backward VAE-LSTM GANs and cycle consistency
    (Yuan et al., AAAI 2019); unsupervised, trained with manual optimisation.

    Each split's network has two optimisers, one for its selector and generators (clipped at
    ``gradient_clip``, by norm), one for its discriminators; per video, every split that trains on
    it takes a generator step then a discriminator step (:func:`crossmedia.core.manual.manual_step`).
    Lightning refuses ``--trainer.accumulate_grad_batches`` under manual optimisation: gradient
    accumulation is this module's ``accumulate_grad_batches`` (1: a step per video). The logged
    ``train/g_*`` and ``train/d_*`` losses are the means over the splits that trained on the video.

    ``representativeness_weight`` and ``repelling_weight`` add the per-frame terms (10) and (11)
    of :mod:`~crossmedia.tasks.summarization.models.cycle_sum` to the selector's loss — a
    deviation from the paper, without which the selector collapses to near-constant scores on
    the built-in data; 0 (the default) is the paper's objective."""

    summary = "Cycle-SUM: cycle-consistent adversarial LSTMs, unsupervised"
    paper = {"title": "Cycle-SUM: Cycle-consistent Adversarial LSTM Networks for Unsupervised Video Summarization",
             "arxiv": "1904.08265"}

    def __init__(self, *, in_dim: int = 1024, hidden: int = 128, latent: int = 64, discriminator_lr: float = 5e-5,
                 gradient_clip: float = 5.0, representativeness_weight: float = 0.0, repelling_weight: float = 0.0,
                 accumulate_grad_batches: int = 1, **kwargs):
        self._net_args = dict(in_dim=in_dim, hidden=hidden, latent=latent)
        super().__init__(in_dim=in_dim, **kwargs)
        self.save_hyperparameters()
        self.automatic_optimization = False

    def make_net(self) -> nn.Module:
        return CycleSUM(**self._net_args)

    def training_step(self, batch, batch_idx):
        optimizers = self.optimizers()
        generators, discriminators = optimizers[:len(self.nets)], optimizers[len(self.nets):]
        features, trained = batch["features"], _splits(batch["train_in"])
        step = dict(batch_idx=batch_idx, accumulate=self.hparams.accumulate_grad_batches)
        totals: dict[str, torch.Tensor] = {}
        for s, net in enumerate(self.nets):
            if s not in trained:  # still applies what this split accumulated, on a step batch
                manual_step(self, generators[s], None, clip_val=self.hparams.gradient_clip, **step)
                manual_step(self, discriminators[s], None, **step)
                continue
            outputs = net.cycle(features)
            g_losses = manual_step(self, generators[s], partial(
                generator_losses, net, features, outputs=outputs, budget=self.hparams.proportion,
                representativeness_weight=self.hparams.representativeness_weight,
                repelling_weight=self.hparams.repelling_weight), clip_val=self.hparams.gradient_clip, **step)
            d_losses = manual_step(self, discriminators[s], partial(discriminator_losses, net, features,
                                                                    outputs=outputs), **step)
            for prefix, losses in (("g", g_losses), ("d", d_losses)):
                for name, value in losses.items():
                    key = f"train/{prefix}_{name}"
                    totals[key] = totals.get(key, 0) + value.detach() / len(trained)
        self.log_dict(totals, batch_size=1)

    def configure_optimizers(self):
        """One generator and one discriminator optimiser per split: [G_0 .. G_{S-1}, D_0 .. D_{S-1}]."""
        generators = [torch.optim.Adam(net.generator_parameters(), lr=self.hparams.lr,
                                       weight_decay=self.hparams.weight_decay) for net in self.nets]
        discriminators = [torch.optim.Adam(net.discriminator_parameters(), lr=self.hparams.discriminator_lr)
                          for net in self.nets]
        return generators + discriminators
