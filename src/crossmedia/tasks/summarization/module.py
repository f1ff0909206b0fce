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
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from crossmedia.tasks.summarization.metrics import SummaryFScore
from crossmedia.tasks.summarization.models import (CycleSUM, SumGDA, discriminator_losses, generator_losses,
                                                   sum_gda_supervised_loss, sum_gda_unsupervised_loss)

__all__ = ["SummarizationModule", "SumGDAModule", "CycleSUMModule"]

_EVAL_FIELDS = ("change_points", "n_frames", "n_frame_per_seg", "picks", "user_summary")


class SummarizationModule(pl.LightningModule):
    """Shared parts: per-split networks, the 5-split protocol, the inference API."""

    task = "summarization"
    summary = "video summarisation"
    paper: dict = {}
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
        was_training = self.training
        self.eval()
        scores = torch.stack([self.scores(net, features[None])[0] for net in self.nets]).mean(dim=0)
        self.train(was_training)
        return scores

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

        from crossmedia.tasks.summarization.video import select_keyshots, summarize_video

        if isinstance(video, (str, Path)):
            video = Path(video)
            out_dir = Path(out_dir) if out_dir else video.with_name(f"{video.stem}_summary")
            return summarize_video(video, scorer=self.summarize_scores, in_dim=self.hparams.in_dim,
                                   out_dir=out_dir, fps=fps, proportion=self.hparams.proportion, **kwargs)
        features = torch.as_tensor(np.asarray(video), dtype=torch.float32)
        step = max(1, round(native_fps / fps))  # frames between two steps
        return select_keyshots(features, self.summarize_scores(features), step=step, n_frames=len(features) * step,
                               native_fps=native_fps, proportion=self.hparams.proportion)

    # the protocol

    def _metric_set(self, stage: str) -> list[SummaryFScore]:
        if stage not in self._metrics:
            reduction = self.trainer.datamodule.reduction
            self._metrics[stage] = [
                SummaryFScore(reduction=reduction, proportion=self.hparams.proportion)
                for _ in range(3 * self.hparams.num_splits)  # model, uniform, random — per split
            ]
        return self._metrics[stage]

    def _eval_step(self, batch, stage: str) -> None:
        metrics = self._metric_set(stage)
        splits = batch["test_in"].nonzero().flatten().tolist()
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
        splits = batch["train_in"].nonzero().flatten().tolist()
        totals: dict[str, torch.Tensor] = {}
        for s in splits:
            for name, value in self.train_losses(self.nets[s], batch).items():
                totals[name] = totals.get(name, 0) + value / len(splits)
        self.log_dict({f"train/{k}": v for k, v in totals.items()}, batch_size=1)
        return totals["total"]

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
    (Yuan et al., AAAI 2019); unsupervised, trained with manual optimisation (two optimisers).

    ``representativeness_weight`` and ``repelling_weight`` add the per-frame terms (10) and (11)
    of :mod:`~crossmedia.tasks.summarization.models.cycle_sum` to the selector's loss — a
    deviation from the paper, without which the selector collapses to near-constant scores on
    the built-in data; 0 (the default) is the paper's objective."""

    summary = "Cycle-SUM: cycle-consistent adversarial LSTMs, unsupervised"
    paper = {"title": "Cycle-SUM: Cycle-consistent Adversarial LSTM Networks for Unsupervised Video Summarization",
             "arxiv": "1904.08265"}

    def __init__(self, *, in_dim: int = 1024, hidden: int = 128, latent: int = 64, discriminator_lr: float = 5e-5,
                 gradient_clip: float = 5.0, representativeness_weight: float = 0.0, repelling_weight: float = 0.0,
                 **kwargs):
        self._net_args = dict(in_dim=in_dim, hidden=hidden, latent=latent)
        super().__init__(in_dim=in_dim, **kwargs)
        self.save_hyperparameters()
        self.automatic_optimization = False

    def make_net(self) -> nn.Module:
        return CycleSUM(**self._net_args)

    def training_step(self, batch, batch_idx):
        opt_g, opt_d = self.optimizers()
        features = batch["features"]
        logs: dict[str, torch.Tensor] = {}
        for s in batch["train_in"].nonzero().flatten().tolist():
            net = self.nets[s]
            outputs = net.cycle(features)
            self.toggle_optimizer(opt_g)
            g_losses = generator_losses(net, features, outputs=outputs, budget=self.hparams.proportion,
                                        representativeness_weight=self.hparams.representativeness_weight,
                                        repelling_weight=self.hparams.repelling_weight)
            opt_g.zero_grad()
            self.manual_backward(g_losses["total"])
            self.clip_gradients(opt_g, gradient_clip_val=self.hparams.gradient_clip, gradient_clip_algorithm="norm")
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            self.toggle_optimizer(opt_d)
            d_losses = discriminator_losses(net, features, outputs=outputs)
            opt_d.zero_grad()
            self.manual_backward(d_losses["total"])
            opt_d.step()
            self.untoggle_optimizer(opt_d)
            logs = {**{f"train/g_{k}": v.detach() for k, v in g_losses.items()},
                    **{f"train/d_{k}": v.detach() for k, v in d_losses.items()}}
        self.log_dict(logs, batch_size=1)

    def configure_optimizers(self):
        generators = [p for net in self.nets for p in net.generator_parameters()]
        discriminators = [p for net in self.nets for p in net.discriminator_parameters()]
        return [torch.optim.Adam(generators, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay),
                torch.optim.Adam(discriminators, lr=self.hparams.discriminator_lr)]
