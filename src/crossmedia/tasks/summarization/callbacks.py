"""Summaries for people: the first test videos' scores, shots and keyshots drawn as timelines."""
from __future__ import annotations

import torch

from crossmedia.core.callbacks import MediaCallback

__all__ = ["SummarySamples"]


class SummarySamples(MediaCallback):
    """After each validation epoch, a timeline of the model's summary of ``num_videos`` test videos
    (importance over time, shot boundaries, selected keyshots shaded) next to the annotators' mean."""

    def __init__(self, *, num_videos: int = 2):
        self.num_videos = num_videos
        self._videos: list[dict] = []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._videos = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or len(self._videos) >= self.num_videos:
            return
        keep = ("change_points", "n_frames", "n_frame_per_seg", "picks", "key")
        video = {k: batch[k] for k in keep}
        video["features"], video["gtscore"] = batch["features"][0].cpu(), batch["gtscore"][0].cpu()
        self._videos.append(video)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        from crossmedia.data.keyshots import frame_scores, generate_summary
        from crossmedia.tasks.summarization.video import timeline_figure

        for i, video in enumerate(self._videos):
            scores = pl_module.summarize_scores(video["features"]).cpu().numpy()
            n_frames = int(video["n_frames"])
            mask = generate_summary(scores, video["change_points"].numpy(), n_frames,
                                    video["n_frame_per_seg"].numpy(), video["picks"].numpy(),
                                    proportion=pl_module.hparams.proportion)
            figure = timeline_figure(frame_scores(scores, video["picks"].numpy(), n_frames),
                                     video["change_points"].numpy(), mask.astype(bool), fps=30.0,
                                     title=f"{video['key']} — epoch {trainer.current_epoch}")
            axis = figure.axes[0]
            truth = frame_scores(video["gtscore"].numpy(), video["picks"].numpy(), n_frames)
            axis.plot(torch.arange(n_frames).numpy() / 30.0, truth, color="gray", lw=1, alpha=0.8,
                      label="annotators' mean")
            axis.legend(loc="upper right", fontsize=7)
            self.save_image(trainer, f"samples/summary_{i}", figure)
