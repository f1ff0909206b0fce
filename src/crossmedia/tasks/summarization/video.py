"""From a real video file to a keyshot summary: decode, sample, encode, segment, score, select.

The pipeline follows how the eccv16 SumMe/TVSum files were built, so a model trained on them (or
on the built-in data written in their format) can summarise any video:

1. :func:`~crossmedia.data.video.read_video` decodes the file with PyAV and keeps every
   ``round(native_fps / fps)``-th frame (2 fps by default); ``picks`` are the frame indices of the
   kept frames (0, 15, 30, ... for a 30 fps video), exactly the eccv16 ``picks`` field. A still
   image, or any file of fewer than 2 frames, is refused.
2. :class:`FrameEncoder` turns the sampled frames into features (T, D) with a timm backbone.
3. Kernel temporal segmentation (:func:`~crossmedia.tasks.summarization.kts.segment_features`)
   cuts the video into shots on those features; the shots tile ``[0, n_frames)``.
4. A scorer (a trained model's ``summarize_scores``) gives each step an importance in [0, 1];
   :func:`~crossmedia.data.keyshots.generate_summary` spreads the scores over the
   frames, averages them per shot and picks shots by a 0/1 knapsack within 15 % of the frames.
5. :func:`summarize_video` writes the chosen shots as a GIF (:func:`crossmedia.core.media.write_gif`)
   and the scores, shots and choice as a timeline plot
   (:func:`~crossmedia.tasks.summarization.callbacks.timeline_figure`, also drawn during training).

One departure from the evaluation protocol, for people rather than benchmarks: a shot longer than
the whole budget can never be chosen, so :func:`summarize_video` cuts such shots into equal parts
that fit before the knapsack runs (a video of a few long static shots would otherwise give an
empty summary). Benchmarks use ``data.keyshots.generate_summary`` on the dataset's own change points.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossmedia.core.backbones import create_backbone
from crossmedia.core.media import write_gif
from crossmedia.core.modes import eval_mode
from crossmedia.data.keyshots import frame_scores as spread_scores
from crossmedia.data.keyshots import generate_summary
from crossmedia.data.video import read_video
from crossmedia.tasks.summarization.callbacks import timeline_figure
from crossmedia.tasks.summarization.kts import segment_features

__all__ = ["FrameEncoder", "Keyshots", "select_keyshots", "summarize_video", "split_long_segments"]


# encoding

def _orthogonal(rows: int, cols: int, *, seed: int) -> torch.Tensor:
    """A fixed (rows, cols) matrix with orthonormal columns (rows >= cols) or rows (rows < cols)."""
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)  # (max, min) orthonormal columns
    q = q * torch.sign(torch.diagonal(r))[None, :]  # unique: Haar-distributed
    return (q if rows >= cols else q.T).float()  # (rows, cols)


class FrameEncoder(nn.Module):
    """Per-frame features (N, out_dim) from RGB frames, with a timm backbone.

    The backbone is ``create_backbone(backbone, pretrained=pretrained, num_classes=0)`` (a timm model,
    see :mod:`crossmedia.core.backbones`; pooled features of width ``num_features``). When that width
    differs from ``out_dim`` (the ``in_dim`` a summariser was trained on), a fixed random orthogonal
    projection seeded by ``seed`` maps it there; it is a buffer, never trained, and preserves distances up to the dimension change.

    The eccv16 SumMe/TVSum features are GoogLeNet pool5 (1024-d, ImageNet weights), and the
    built-in datasets have their own synthetic features: a model trained on either expects those
    statistics. With ``pretrained=False`` (the default, nothing is downloaded) the backbone is
    randomly initialised (reproducibly, from ``seed``), so the features only carry structure
    (colour, layout, motion) — enough for KTS to find shot changes, not for semantic importance.
    Pass ``pretrained=True`` for ImageNet weights: ``tf_efficientnet_lite0`` reads them offline from a pip
    package, other names from timm's hub. Frames are normalised with the backbone's own mean and std.
    """

    def __init__(self, *, backbone: str = "resnet18", out_dim: int, image_size: int = 224, pretrained: bool = False,
                 seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # a random-init backbone is the same every time
            self.backbone = create_backbone(backbone, pretrained=pretrained, num_classes=0)
        self.backbone.eval()
        self.image_size = int(image_size)
        self.out_dim = int(out_dim)
        cfg = getattr(self.backbone, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        width = int(self.backbone.num_features)
        projection = None if width == self.out_dim else _orthogonal(width, self.out_dim, seed=seed)
        self.register_buffer("projection", projection, persistent=False)  # (width, out_dim) or None

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> normalised images (B, 3, S, S): short side resized to S, centre crop."""
        x = frames.to(self.mean.device).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        h, w = x.shape[-2:]
        scale = self.image_size / min(h, w)
        size = (max(self.image_size, round(h * scale)), max(self.image_size, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
        top, left = (size[0] - self.image_size) // 2, (size[1] - self.image_size) // 2
        x = x[..., top:top + self.image_size, left:left + self.image_size]  # (B, 3, S, S)
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, S, S) -> features (B, out_dim)."""
        features = self.backbone(images)  # (B, width)
        return features if self.projection is None else features @ self.projection  # (B, out_dim)

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor, batch_size: int = 32, *, progress: bool = True) -> torch.Tensor:
        """uint8 RGB frames (N, H, W, 3) -> float32 features (N, out_dim) on CPU, with a progress bar."""
        from tqdm.auto import tqdm

        frames = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3) RGB, got shape {tuple(frames.shape)}")
        out = []
        bar = tqdm(total=len(frames), desc="encoding frames", unit="frame", disable=not progress)
        with eval_mode(self), bar:
            for start in range(0, len(frames), batch_size):
                batch = frames[start:start + batch_size]
                out.append(self(self.preprocess(batch)).float().cpu())
                bar.update(len(batch))
        return torch.cat(out) if out else torch.zeros(0, self.out_dim)  # (N, out_dim)


# summarising

@dataclass
class Keyshots:
    """A video's keyshot summary.

    ``segments`` the chosen shots as inclusive ``(start_frame, end_frame)``; ``frame_mask``
    (n_frames,) bool; ``step_scores`` (T,) the scorer's output; ``change_points`` (n_seg, 2) the
    shots the knapsack chose from; ``picks`` (T,); ``gif_path`` / ``timeline_path`` the files
    written (``None`` when not written); ``summary_fraction`` the share of frames chosen.
    """

    segments: list[tuple[int, int]]
    frame_mask: np.ndarray
    step_scores: np.ndarray
    change_points: np.ndarray
    picks: np.ndarray
    gif_path: Path | None
    timeline_path: Path | None
    summary_fraction: float
    n_frames: int
    native_fps: float

    @property
    def segments_seconds(self) -> list[tuple[float, float]]:
        """The chosen shots as ``(start, end)`` times in seconds, ``end`` exclusive."""
        return [(start / self.native_fps, (end + 1) / self.native_fps) for start, end in self.segments]


def split_long_segments(change_points: np.ndarray, max_len: int) -> np.ndarray:
    """Cut every inclusive segment longer than ``max_len`` frames into equal parts of at most ``max_len``."""
    rows = []
    for start, end in change_points.tolist():
        length = end - start + 1
        parts = max(1, math.ceil(length / max(1, max_len)))
        bounds = start + np.round(np.arange(parts + 1) * length / parts).astype(np.int64)  # (parts+1,)
        rows += [(int(a), int(b) - 1) for a, b in zip(bounds[:-1], bounds[1:])]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)  # (n_seg', 2)


def select_keyshots(features: torch.Tensor, scores: torch.Tensor, *, step: int, n_frames: int,
                    native_fps: float, proportion: float = 0.15) -> Keyshots:
    """Keyshots from step features (T, D) and step scores (T,) of a video of ``n_frames`` frames.

    KTS shots on the mean-centred features (the component every step shares says nothing about
    where shots change), shots longer than the whole budget cut so the knapsack can take them,
    then the protocol's :func:`generate_summary` at ``proportion``. Nothing is written.
    """
    features = torch.as_tensor(features, dtype=torch.float32)
    step_scores = torch.as_tensor(scores).detach().float().cpu().reshape(-1).numpy()  # (T,)
    if len(step_scores) != len(features):
        raise ValueError(f"the scorer returned {len(step_scores)} scores for {len(features)} steps; (T,) expected")
    picks = np.arange(len(features)) * step  # (T,)
    centred = (features - features.mean(dim=0, keepdim=True)).numpy()  # (T, D)
    change_points, _ = segment_features(centred, sample_rate=step, n_frames=n_frames, fps=native_fps)
    change_points = split_long_segments(change_points, math.floor(proportion * n_frames))  # (n_seg, 2)
    n_frame_per_seg = change_points[:, 1] - change_points[:, 0] + 1  # (n_seg,)
    mask = generate_summary(step_scores, change_points, n_frames, n_frame_per_seg, picks,
                            proportion=proportion) > 0  # (n_frames,)
    segments = [(int(s), int(e)) for s, e in change_points if mask[s]]
    return Keyshots(segments=segments, frame_mask=mask, step_scores=step_scores, change_points=change_points,
                    picks=picks, gif_path=None, timeline_path=None, summary_fraction=float(mask.mean()),
                    n_frames=n_frames, native_fps=native_fps)


def summarize_video(path: str | Path, *, scorer: Callable[[torch.Tensor], torch.Tensor], in_dim: int,
                    out_dir: str | Path, backbone: str = "resnet18", pretrained: bool = False, fps: float = 2.0,
                    proportion: float = 0.15, make_gif: bool = True, encoder: FrameEncoder | None = None,
                    progress: bool = True) -> Keyshots:
    """Summarise the video at ``path`` into keyshots and write ``<stem>_summary.gif`` and
    ``<stem>_timeline.png`` under ``out_dir``.

    ``scorer`` maps features (T, in_dim) to step importances (T,) (a model's ``summarize_scores``);
    it runs under ``torch.no_grad``. Features come from ``encoder`` if given, else from a
    :class:`FrameEncoder` on ``backbone`` (random init unless ``pretrained``, see its caveat). KTS runs on the features
    centred over the video (the mean frame removed: a component every frame shares, large for a
    random-init backbone, would otherwise swamp the shot changes in the normalised linear kernel);
    the scorer gets them uncentred. Shots are mapped back to frames, shots longer than the budget
    are split (see the module docstring), and the knapsack keeps at most
    ``floor(proportion * n_frames)`` frames.
    """
    path, out_dir = Path(path), Path(out_dir)
    video = read_video(path, fps=fps)
    encoder = encoder if encoder is not None else FrameEncoder(backbone=backbone, out_dim=in_dim, pretrained=pretrained)
    if encoder.out_dim != in_dim:
        raise ValueError(f"the encoder gives {encoder.out_dim}-d features but the scorer expects in_dim={in_dim}")
    features = encoder.encode(video.frames, progress=progress)  # (T, in_dim)
    with torch.no_grad():
        scores = torch.as_tensor(scorer(features)).detach().float().cpu()
    keyshots = select_keyshots(features, scores, step=video.step, n_frames=video.n_frames,
                               native_fps=video.native_fps, proportion=proportion)
    mask, segments, fraction = keyshots.frame_mask, keyshots.segments, keyshots.summary_fraction
    step_scores, change_points = keyshots.step_scores, keyshots.change_points
    out_dir.mkdir(parents=True, exist_ok=True)
    gif_path = None
    chosen_frames = video.frames[mask[video.picks]]  # (K, H, W, 3) sampled frames inside keyshots
    if make_gif and len(chosen_frames):
        gif_path = out_dir / f"{path.stem}_summary.gif"
        write_gif(chosen_frames, gif_path)
    timeline_path = out_dir / f"{path.stem}_timeline.png"
    plural = "s" * (len(segments) != 1)
    title = (f"{path.name}: {len(segments)} keyshot{plural}, {mask.sum() / video.native_fps:.1f} s of "
             f"{video.n_frames / video.native_fps:.1f} s ({100 * fraction:.1f} %)")
    figure = timeline_figure(spread_scores(step_scores, video.picks, video.n_frames), change_points, mask,
                             fps=video.native_fps, title=title)
    figure.savefig(timeline_path, dpi=100)
    keyshots.gif_path, keyshots.timeline_path = gif_path, timeline_path
    return keyshots
