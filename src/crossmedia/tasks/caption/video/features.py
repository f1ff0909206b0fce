"""ST-XlanV's three input streams of a clip, extracted for many clips at once and written as h5 files.

:class:`VideoFeatureExtractor` holds an appearance backbone (a timm model by name through
:func:`crossmedia.core.backbones.create_backbone`, global pooled; default the offline ImageNet
EfficientNet-Lite0, ``tf_efficientnet_lite0``, 1280 wide) and the two tag networks of
:mod:`~crossmedia.tasks.caption.video.tags` (modules, or zoo names loaded through the registry).
For frames (B, T, 3, H, W) in [0, 1] (resized to ``image_size`` when they are not that size) it gives
a plain dict (:class:`VideoFeatures`, what the ST-XlanV module's ``stream_batch`` reads):

* ``appearance`` (B, T, Da): the backbone's pooled feature of every frame (frames normalised to
  [-1, 1], what the offline ImageNet weights expect);
* ``motion`` (B, S, Dm): the action network's penultimate feature of every segment (8 frames every
  4: S = 3 for 16 frames, :func:`~crossmedia.tasks.caption.video.tags.segment_starts`);
* ``tags``: per clip ``{"content": word, "content_prob": p, "action": word, "action_prob": p}``, the top
  class of the content network (mean of its frames' logits) and of the action network (mean of its
  segments' logits), p its softmax probability.

Batched: the frames of all B clips go through the 2-D networks in chunks of ``chunk`` frames and all
their segments through the 3-D network in chunks of ``segment_chunk`` segments.
:func:`clip_by_clip_features` computes the same thing one frame and one segment at a time (the
reference for tests and ``bench/video_features.py``).

:func:`extract_features` runs the extractor over videos (files decoded with PyAV through
:func:`crossmedia.data.video.read_video`, keeping ``frames`` frames spread evenly over each, or arrays)
and writes, in ``out_dir``: ``appearance.h5`` and ``motion.h5`` (one float32 dataset (T, D) per video,
named by its id: :class:`crossmedia.data.features.FeatureStore` reads them) and ``tags.json``
(``{video_id: {"content", "content_prob", "action", "action_prob"}}``). Work in progress lives in
hidden ``.partial`` files; an interrupted run resumes from them and the final names appear only
when every video is done.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypedDict

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from crossmedia.core.backbones import create_backbone
from crossmedia.tasks.caption.video.tags import ActionTagger, ContentTagger, as_clips, segment_starts

__all__ = ["VideoFeatures", "VideoFeatureExtractor", "clip_by_clip_features", "sample_indices", "load_video_frames",
           "extract_features", "FILES"]

FILES = ("appearance.h5", "motion.h5", "tags.json")


class VideoFeatures(TypedDict):
    """The streams of B clips, a plain dict: ``appearance`` (B, T, Da) and ``motion`` (B, S, Dm) float32
    tensors, ``tags`` a list of B dicts (``content``, ``content_prob``, ``action``, ``action_prob``)."""

    appearance: Tensor
    motion: Tensor
    tags: list[dict]


# helpers

def _tagger(model: str | nn.Module, kind: type) -> nn.Module:
    """A tag network given as a module, or a zoo name loaded through the registry (eval mode)."""
    if isinstance(model, str):
        from crossmedia.core.registry import load

        model = load(model)
    if not isinstance(model, kind):
        raise TypeError(f"expected a {kind.__name__} (or the zoo name of one), got {type(model).__name__}")
    return model.eval()


def _tags(content: Tensor, action: Tensor, content_names: list[str], action_names: list[str]) -> list[dict]:
    """Tag dicts of clip logits (B, Kc) and (B, Ka)."""
    pc, ic = content.softmax(dim=-1).max(dim=-1)
    pa, ia = action.softmax(dim=-1).max(dim=-1)
    return [{"content": content_names[c], "content_prob": float(p), "action": action_names[a], "action_prob": float(q)}
            for c, p, a, q in zip(ic.tolist(), pc.tolist(), ia.tolist(), pa.tolist())]


def sample_indices(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly from the first frame (16 of 32: 0, 2, ..., 30); a clip of
    fewer frames repeats some (16 of 10: 0, 0, 1, 1, 2, 3, ...)."""
    if num_frames < 1 or count < 1:
        raise ValueError(f"cannot take {count} frames of a {num_frames}-frame clip")
    return [t * num_frames // count for t in range(count)]


def load_video_frames(path: str | Path, frames: int, size: int) -> np.ndarray:
    """``frames`` frames spread evenly over the whole video file ``path`` (every frame decoded with PyAV),
    as uint8 (frames, size, size, 3). Errors (missing file, not a video) name the file."""
    from crossmedia.data.video import read_video

    video = read_video(path, fps=math.inf, max_short_side=max(size, 1))  # fps = inf keeps every frame
    return video.frames[sample_indices(len(video.frames), frames)]


# classes

class VideoFeatureExtractor(nn.Module):
    """Appearance backbone + content and action tag networks; :meth:`forward` gives a :class:`VideoFeatures`.

    Args:
        appearance: a timm model name (built by :func:`crossmedia.core.backbones.create_backbone`, pooled)
            or a module mapping (N, 3, S, S) frames in [-1, 1] to (N, Da).
        content, action: a :class:`~crossmedia.tasks.caption.video.tags.ContentTagger` /
            :class:`~crossmedia.tasks.caption.video.tags.ActionTagger`, or their zoo names.
        pretrained: load the backbone's ImageNet weights (offline for ``tf_efficientnet_lite0``).
        image_size: S, the side frames are resized to (the tag networks were trained at 64).
        chunk: frames per forward pass of the 2-D networks; segment_chunk: segments per pass of the 3-D one
            (small chunks keep the activations in the CPU's cache: at 64 x 64, 64 frames ran 3x faster per
            frame than 256 on our 2-core machine).
    """

    def __init__(self, appearance: str | nn.Module = "tf_efficientnet_lite0", *,
                 content: str | nn.Module = "video-content-tagger", action: str | nn.Module = "video-action-tagger",
                 pretrained: bool = True, image_size: int = 64, chunk: int = 64, segment_chunk: int = 16):
        super().__init__()
        if isinstance(appearance, str):
            appearance = create_backbone(appearance, pretrained=pretrained, num_classes=0)
        self.appearance = appearance.eval()
        self.content = _tagger(content, ContentTagger)
        self.action = _tagger(action, ActionTagger)
        self.image_size, self.chunk, self.segment_chunk = image_size, chunk, segment_chunk

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prepare(self, frames) -> Tensor:
        """Frames (see :func:`~crossmedia.tasks.caption.video.tags.as_clips`) -> float (B, T, 3, S, S) in [0, 1]."""
        x = as_clips(frames).to(self.device)
        if x.shape[-2:] != (self.image_size, self.image_size):
            b, t = x.shape[:2]
            x = F.interpolate(x.flatten(0, 1), size=(self.image_size,) * 2, mode="bilinear", antialias=True,
                              align_corners=False).clamp(0, 1).unflatten(0, (b, t))
        return x

    @torch.inference_mode()
    def forward(self, frames) -> VideoFeatures:
        """The three streams of clips (B, T, 3, H, W) in [0, 1] (or what :meth:`prepare` takes)."""
        x = self.prepare(frames)
        b, t = x.shape[:2]
        flat = x.flatten(0, 1) * 2 - 1  # (B T, 3, S, S) in [-1, 1]
        appearance, content = [], []
        for part in flat.split(self.chunk):
            appearance.append(self.appearance(part).float())
            content.append(self.content.net(part).float())
        content_logits = torch.cat(content).unflatten(0, (b, t)).mean(dim=1)  # (B, Kc)
        seg = self.action.segment_view(x)  # (B, S, 3, L, S, S)
        segs = seg.flatten(0, 1)
        motion = torch.cat([self.action.net.features(part).float()
                            for part in segs.split(self.segment_chunk)])  # (B S, Dm)
        action_logits = self.action.net.head(motion).unflatten(0, seg.shape[:2]).mean(dim=1)  # (B, Ka)
        return VideoFeatures(appearance=torch.cat(appearance).unflatten(0, (b, t)),
                             motion=motion.unflatten(0, seg.shape[:2]),
                             tags=_tags(content_logits, action_logits, self.content.classes, self.action.classes))


@torch.inference_mode()
def clip_by_clip_features(extractor: VideoFeatureExtractor, frames) -> VideoFeatures:
    """What ``extractor(frames)`` gives, computed one clip, one frame and one segment at a time (the
    unbatched reference the tests and the benchmark compare against)."""
    x = extractor.prepare(frames)
    hp = extractor.action.hparams
    appearance, motion, tags = [], [], []
    for clip in x:  # (T, 3, S, S)
        rows, content = [], []
        for frame in clip:
            normalised = (frame[None] - 0.5) / 0.5
            rows.append(extractor.appearance(normalised)[0].float())
            content.append(extractor.content.net(normalised)[0].float())
        segment_rows, action = [], []
        for start in segment_starts(len(clip), hp.segment_frames, hp.segment_stride):
            segment = ((clip[start:start + hp.segment_frames] - 0.5) / 0.5).transpose(0, 1)[None]  # (1, 3, L, S, S)
            feature = extractor.action.net.features(segment)[0].float()
            segment_rows.append(feature)
            action.append(extractor.action.net.head(feature))
        appearance.append(torch.stack(rows))
        motion.append(torch.stack(segment_rows))
        tags += _tags(torch.stack(content).mean(0, keepdim=True), torch.stack(action).mean(0, keepdim=True),
                      extractor.content.classes, extractor.action.classes)
    return VideoFeatures(appearance=torch.stack(appearance), motion=torch.stack(motion), tags=tags)


def _partial(out_dir: Path, name: str) -> Path:
    return out_dir / f".{name}.partial"


def _done_ids(out_dir: Path) -> dict[str, dict]:
    """Tags of the videos an interrupted run finished (a tags line and both datasets written)."""
    lines = _partial(out_dir, "tags.jsonl")
    if not lines.is_file():
        return {}
    done = {}
    for line in lines.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the interruption: that video is redone
            continue
        done[row["video_id"]] = {k: v for k, v in row.items() if k != "video_id"}
    keys = []
    for name in FILES[:2]:
        path = _partial(out_dir, name)
        if not path.is_file():
            return {}
        with h5py.File(path, "r") as handle:
            keys.append(set(handle.keys()))
    return {vid: tags for vid, tags in done.items() if all(vid in k for k in keys)}


def extract_features(videos: Mapping[str, str | Path | np.ndarray | Tensor] | Iterable[tuple[str, object]],
                     out_dir: str | Path, extractor: VideoFeatureExtractor | None = None, *, frames: int = 16,
                     batch_size: int = 32, progress: bool = True, overwrite: bool = False) -> dict[str, Path]:
    """Write the streams of ``videos`` into ``out_dir`` (files: module docstring); returns ``{file name: path}``.

    ``videos`` maps video ids to video files (``frames`` frames spread evenly over each:
    :func:`load_video_frames`) or to frames already decoded ((T, H, W, 3) uint8, or (T, 3, H, W) float
    in [0, 1]); a mapping or (id, source) pairs. ``extractor`` defaults to
    ``VideoFeatureExtractor()`` (the zoo tag networks). Videos finished by an interrupted run with the
    same ``out_dir`` are not redone. Raises FileExistsError when ``out_dir`` already holds the results
    (``overwrite=True`` replaces them), ValueError for an id that cannot name an h5 dataset or appears twice.
    """
    items = list(videos.items() if isinstance(videos, Mapping) else videos)
    ids = [str(vid) for vid, _ in items]
    bad = next((vid for vid in ids if not vid or "/" in vid or vid == "."), None)
    if bad is not None:
        raise ValueError(f"video id {bad!r} cannot name an h5 dataset (empty, '.' or containing '/'); rename it")
    if len(set(ids)) != len(ids):
        twice = next(vid for vid in ids if ids.count(vid) > 1)
        raise ValueError(f"video id {twice!r} is given more than once")
    out_dir = Path(out_dir)
    finals = {name: out_dir / name for name in FILES}
    present = [str(path) for path in finals.values() if path.exists()]
    if present and not overwrite:
        raise FileExistsError(f"{', '.join(present)} already exist: pass overwrite=True (or another out_dir)")
    out_dir.mkdir(parents=True, exist_ok=True)
    extractor = extractor if extractor is not None else VideoFeatureExtractor()
    done = {vid: tags for vid, tags in _done_ids(out_dir).items() if vid in set(ids)}
    if not done:  # nothing to resume: start clean
        for name in (*FILES[:2], "tags.jsonl"):
            _partial(out_dir, name).unlink(missing_ok=True)
    todo = [(vid, src) for vid, (_, src) in zip(ids, items) if vid not in done]
    size = extractor.image_size
    with h5py.File(_partial(out_dir, FILES[0]), "a") as app_h5, h5py.File(_partial(out_dir, FILES[1]), "a") as mot_h5, \
            _partial(out_dir, "tags.jsonl").open("a", encoding="utf-8") as tag_lines, \
            tqdm(total=len(ids), initial=len(ids) - len(todo), desc="video features", unit="video",
                 disable=not progress) as bar:
        for handle in (app_h5, mot_h5):  # an earlier run's videos that are not asked for now
            for key in set(handle.keys()) - set(done):
                del handle[key]
        for i in range(0, len(todo), batch_size):
            batch = todo[i:i + batch_size]
            clips = []
            for vid, src in batch:
                if isinstance(src, (str, Path)):
                    clips.append(as_clips(load_video_frames(src, frames, size))[0])
                else:
                    clip = as_clips(src)[0]
                    clips.append(clip[sample_indices(len(clip), frames)] if len(clip) != frames else clip)
            out = extractor(torch.stack([extractor.prepare(c[None])[0] for c in clips]))
            for j, (vid, _) in enumerate(batch):
                for handle, array in ((app_h5, out["appearance"][j]), (mot_h5, out["motion"][j])):
                    if vid in handle:  # written before an interruption cut its tags line
                        del handle[vid]
                    handle.create_dataset(vid, data=array.cpu().numpy().astype(np.float32))
            app_h5.flush()
            mot_h5.flush()
            for (vid, _), tags in zip(batch, out["tags"]):
                tag_lines.write(json.dumps({"video_id": vid, **tags}) + "\n")
                done[vid] = tags
            tag_lines.flush()
            bar.update(len(batch))
    scratch = out_dir / f".{FILES[2]}.{os.getpid()}.tmp"
    scratch.write_text(json.dumps({vid: done[vid] for vid in ids}, indent=1), encoding="utf-8")
    for name in FILES[:2]:
        os.replace(_partial(out_dir, name), finals[name])
    os.replace(scratch, finals[FILES[2]])
    _partial(out_dir, "tags.jsonl").unlink()
    return finals
