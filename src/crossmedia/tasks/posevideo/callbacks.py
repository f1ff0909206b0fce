"""Generated clips for people: after each validation epoch, pose sequences drawn as skeletons and the
generated frames, as animated GIFs and a PNG sheet in ``<run>/samples/`` and as W&B media.

The module under training provides ``sample_clips(batch) -> dict`` and the callback hands it the
first validation batch (its first ``clips`` items). The dict holds

    keypoints    (B, T, 17, 3)     generated pose sequences, (x, y, v) in the pixels of an S x S frame (S:
                                   the frames' side, else the DataModule's or the module's ``image_size``, else 64)
    frames       (B, T, 3, S, S)   optional: generated frames in [-1, 1]
    real_frames  (B, T, 3, S, S)   optional: the real frames (or (B, 3, S, S), one frame per clip)

Files of epoch E (``EEE`` = E with three digits), all in ``<run>/samples/``:

    epochEEE_poses.gif            the sequences side by side, one GIF frame per time step
    epochEEE_frames.gif           (with ``frames``) rows: skeletons, generated frames, real frames
    samples_clips_epochEEE.png    one row per clip and kind, its time steps side by side

With a WandbLogger the GIFs are logged as ``wandb.Video`` (``samples/poses``, ``samples/frames``) and
the sheet as an image (``samples/clips``); the captions name each clip's action when the batch has
``action`` and the module (or the DataModule) has ``actions``.
"""
from __future__ import annotations

import numpy as np
import torch

from crossmedia.core.callbacks import MediaCallback, run_dir
from crossmedia.tasks.posevideo.drawing import clip_strip, draw_skeleton, save_video, video_frames

__all__ = ["GeneratedClips"]


# helpers

def _frames_uint8(frames: torch.Tensor, scale: int) -> np.ndarray:
    """(B, T, 3, S, S) in [-1, 1] -> (B, T, S*scale, S*scale, 3) uint8, nearest-neighbour upscaled."""
    clips = np.stack([video_frames((clip.float().cpu() + 1) / 2) for clip in frames])  # (B, T, S, S, 3)
    return clips.repeat(scale, axis=2).repeat(scale, axis=3) if scale > 1 else clips


def _side_by_side(clips: list[np.ndarray], gap: int) -> np.ndarray:
    """Clips (T, H, W, 3) of one length -> (T, H, n W + gaps, 3): at each time step, the clips' frames in a row."""
    return np.stack([clip_strip([np.stack([c[t] for c in clips])], gap=gap) for t in range(len(clips[0]))])


class GeneratedClips(MediaCallback):
    """Draws ``pl_module.sample_clips`` on the first validation batch after each validation epoch (rank zero).

    Args:
        clips: how many sequences of the batch to draw (its first ``clips`` items).
        scale: integer upscaling of the drawn frames (64 px frames become 128 px at 2).
        fps: frame rate of the GIFs.
        strip_frames: at most this many evenly spaced time steps per row of the PNG sheet.
    """

    def __init__(self, *, clips: int = 4, scale: int = 2, fps: float = 8.0, strip_frames: int | None = 8):
        if clips < 1 or scale < 1 or not fps > 0:
            raise ValueError(f"GeneratedClips: clips and scale must be >= 1 and fps > 0, got {clips}, {scale}, {fps}")
        self.clips, self.scale, self.fps, self.strip_frames = clips, int(scale), fps, strip_frames
        self._batch: dict | None = None

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._batch = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._batch is None and not trainer.sanity_checking and trainer.is_global_zero:
            n = self.clips
            self._batch = {k: (v[:n] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()}

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._batch is None:
            return
        batch, self._batch = self._batch, None
        with torch.no_grad():
            out = pl_module.sample_clips(batch)
        n = min(self.clips, len(out["keypoints"]))
        size = self._frame_size(trainer, pl_module, out)
        kinds = [[draw_skeleton(seq, size=size, scale=self.scale) for seq in out["keypoints"][:n].float().cpu()]]
        steps = len(kinds[0][0])
        if out.get("frames") is not None:
            kinds.append(list(_frames_uint8(out["frames"][:n], self.scale)))  # n x (T, H, W, 3)
            if out.get("real_frames") is not None:
                real = out["real_frames"][:n]
                kinds.append(list(_frames_uint8(real[:, None] if real.dim() == 4 else real, self.scale)))
        captions = self._captions(trainer, pl_module, batch, n)
        caption = " | ".join(captions) if captions else None

        folder = run_dir(trainer) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        epoch = f"epoch{trainer.current_epoch:03d}"
        gap = self.scale
        poses = _side_by_side(kinds[0], gap)  # (T, H, n W + gaps, 3)
        videos = {"samples/poses": save_video(poses, folder / f"{epoch}_poses.gif", fps=self.fps)}
        if len(kinds) > 1:  # one GIF row per kind (skeletons, generated, real), the clips side by side
            rows = [_side_by_side([np.resize(c, (steps, *c.shape[1:])) for c in kind], gap) for kind in kinds]
            grid = np.stack([clip_strip([row[t][None] for row in rows], gap=gap) for t in range(steps)])
            videos["samples/frames"] = save_video(grid, folder / f"{epoch}_frames.gif", fps=self.fps)
        from PIL import Image

        sheet = clip_strip([kind[i] for i in range(n) for kind in kinds], gap=gap, max_frames=self.strip_frames)
        self.save_image(trainer, "samples/clips", Image.fromarray(sheet), caption=caption)
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                logger.experiment.log({key: wandb.Video(str(path), caption=caption) for key, path in videos.items()},
                                      step=trainer.global_step)

    @staticmethod
    def _frame_size(trainer, pl_module, out: dict) -> int:
        """The side of the frame the keypoints are in: the frames', the DataModule's or the module's ``image_size``."""
        if out.get("frames") is not None:
            return int(out["frames"].shape[-1])
        for owner in (getattr(trainer, "datamodule", None), getattr(pl_module, "hparams", None)):
            size = getattr(owner, "image_size", None)
            if size:
                return int(size)
        return 64

    @staticmethod
    def _captions(trainer, pl_module, batch: dict, n: int) -> list[str]:
        """Each drawn clip's action name, when the batch has ``action`` and the module or DataModule ``actions``."""
        actions = (getattr(pl_module, "actions", None) or getattr(getattr(pl_module, "hparams", None), "actions", None)
                   or getattr(getattr(trainer, "datamodule", None), "actions", None))
        ids = batch.get("action")
        if not actions or ids is None:
            return []
        return [str(actions[int(i)]) if 0 <= int(i) < len(actions) else f"action {int(i)}" for i in ids[:n]]
