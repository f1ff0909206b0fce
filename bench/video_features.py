"""ST-XlanV's feature and tag extraction: our batched extractor vs a clip-by-clip, frame-by-frame loop.

Both sides run the same networks on the same frames: the appearance backbone (the offline
ImageNet EfficientNet-Lite0, pooled per frame), the content tag network (per frame) and the action
tag network (3-D CNN, per 8-frame segment every 4 frames) of
:mod:`crossmedia.tasks.caption.video.features`. The tag networks are the zoo's
``video-content-tagger`` / ``video-action-tagger`` when their weights are in the checkout, else
fresh ones of the same architecture (the cost is the same).

Data: 64 built-in puppet clips drawn with 32 frames each at 64 x 64
(:func:`crossmedia.data.builtin.puppets.draw_puppet_clip`), as uint8 (N, T, H, W, 3) arrays.

* ours: :class:`~crossmedia.tasks.caption.video.features.VideoFeatureExtractor` on all 64 clips
  at once (frames in chunks of 64 through the 2-D networks, segments in chunks of 16);
* loop: :func:`~crossmedia.tasks.caption.video.features.clip_by_clip_features`, one clip, one frame
  and one segment at a time.

The appearance and motion features must agree (``allclose``, atol 1e-4) and the tags be equal.

Run: ``python bench/video_features.py``; ends with ``ratio: <loop time / our time>`` (goal >= 5).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test loads this file by path
from _timing import best_time  # noqa: E402

from crossmedia.data.builtin.puppets import draw_puppet_clip  # noqa: E402
from crossmedia.tasks.caption.video.features import VideoFeatureExtractor, clip_by_clip_features  # noqa: E402
from crossmedia.tasks.caption.video.tags import ActionTagger, ContentTagger  # noqa: E402

CLIPS, FRAMES, SIZE, REPEATS = 64, 32, 64, 2


def tag_networks() -> tuple[torch.nn.Module, torch.nn.Module, str]:
    """The zoo's tag networks when they load, else fresh ones; and which."""
    try:
        from crossmedia.core.registry import load

        return load("video-content-tagger"), load("video-action-tagger"), "zoo weights"
    except Exception as err:  # no card or no weights yet: same architecture, random weights
        torch.manual_seed(0)
        return ContentTagger().eval(), ActionTagger().eval(), f"fresh weights ({type(err).__name__})"


def main() -> None:
    clips = np.stack([draw_puppet_clip(i, frames=FRAMES, size=SIZE).frames for i in range(CLIPS)])  # (N, T, H, W, 3)
    content, action, which = tag_networks()
    extractor = VideoFeatureExtractor("tf_efficientnet_lite0", content=content, action=action)
    ours, ours_time = best_time(lambda: extractor(clips), REPEATS)
    loop, loop_time = best_time(lambda: clip_by_clip_features(extractor, clips), 1)
    assert ours["appearance"].shape == (CLIPS, FRAMES, 1280) and ours["motion"].shape == (CLIPS, 7, action.feature_dim)
    for stream in ("appearance", "motion"):
        gap = (ours[stream] - loop[stream]).abs().max()
        assert torch.allclose(ours[stream], loop[stream], atol=1e-4), f"{stream}: max |difference| {gap}"
    assert [(t["content"], t["action"]) for t in ours["tags"]] == [(t["content"], t["action"]) for t in loop["tags"]]
    print(f"{CLIPS} clips x {FRAMES} frames at {SIZE}x{SIZE}: appearance tf_efficientnet_lite0 (1280), "
          f"motion 7 segments x {action.feature_dim}, tag networks: {which}; {torch.get_num_threads()} threads")
    gaps = {stream: float((ours[stream] - loop[stream]).abs().max()) for stream in ("appearance", "motion")}
    print(f"max |difference|: appearance {gaps['appearance']:.2e}, motion {gaps['motion']:.2e}; tags equal")
    print(f"batched extractor:   {ours_time:8.2f} s")
    print(f"clip-by-clip loop:   {loop_time:8.2f} s")
    print(f"ratio: {loop_time / ours_time:.2f}")


if __name__ == "__main__":
    main()
