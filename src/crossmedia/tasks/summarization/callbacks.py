"""Summaries for people: the first test videos' scores, shots and keyshots drawn as timelines."""
from __future__ import annotations

import numpy as np
import torch

from crossmedia.core.callbacks import MediaCallback
from crossmedia.data.keyshots import frame_scores, generate_summary

__all__ = ["SummarySamples", "timeline_figure"]


def timeline_figure(frame_scores: np.ndarray | torch.Tensor, change_points: np.ndarray | torch.Tensor,
                    frame_mask: np.ndarray | torch.Tensor | None, *, fps: float, title: str):
    """A timeline of a summary as a matplotlib ``Figure`` (Agg canvas, no pyplot state).

    ``frame_scores`` (n_frames,) importance over time (seconds on the x axis at ``fps``),
    ``change_points`` (n_seg, 2) inclusive shots drawn as thin boundaries, ``frame_mask``
    (n_frames,) the chosen keyshots, shaded (``None`` to shade nothing). Save it with
    ``fig.savefig(path)`` or log it as an image.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scores = np.asarray(torch.as_tensor(frame_scores).detach().cpu(), dtype=np.float64).reshape(-1)
    cps = np.asarray(torch.as_tensor(change_points).detach().cpu(), dtype=np.int64).reshape(-1, 2)
    n_frames = len(scores)
    seconds = np.arange(n_frames + 1) / fps  # (n_frames+1,) frame edges
    figure = Figure(figsize=(10, 2.8), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    if frame_mask is not None:
        mask = np.asarray(torch.as_tensor(frame_mask).detach().cpu()).reshape(-1).astype(bool)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))  # run starts, ends
        for i, (start, stop) in enumerate(zip(edges[0::2], edges[1::2])):
            axis.axvspan(start / fps, stop / fps, color="tab:orange", alpha=0.35, lw=0,
                         label="keyshots" if i == 0 else None)
    for start in cps[1:, 0]:
        axis.axvline(start / fps, color="0.45", lw=0.6, zorder=1)
    axis.plot([], [], color="0.45", lw=0.6, label="shot boundaries")  # legend entry for the boundaries
    axis.stairs(scores, seconds, baseline=None, color="tab:blue", lw=1.4, label="importance", zorder=3)
    axis.stairs(scores, seconds, fill=True, color="tab:blue", alpha=0.12, lw=0, zorder=2)
    low = min(0.0, float(scores.min())) if n_frames else 0.0
    high = max(1.0, float(scores.max())) if n_frames else 1.0
    axis.set(xlim=(0, n_frames / fps), ylim=(low, high + 0.05 * (high - low)), xlabel="time (s)", ylabel="score")
    axis.set_title(title, loc="left", fontsize="medium")
    axis.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=3, fontsize="small", frameon=False,
                borderaxespad=0.2)
    return figure



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
