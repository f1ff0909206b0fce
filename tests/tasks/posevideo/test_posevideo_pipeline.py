"""The zoo's own pipeline end to end: ``zoo.load("scgan")`` + its psgan and pose-estimator entries turn a
picture of a person nobody trained on into a video, and ``crossmedia posevideo`` writes it as a playable mp4."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from crossmedia import zoo
from crossmedia.data.builtin.puppets import draw_puppet_clip
from crossmedia.tasks.posevideo.cli import posevideo_main


@pytest.fixture(scope="module")
def person():
    clip = draw_puppet_clip(20)  # clip 20 is in the test split: an identity the zoo never trained on
    assert clip.info["split"] == "test"
    return Image.fromarray(clip.frames[0]), clip


def test_generate_animates_the_person_and_keeps_the_background(person):
    image, clip = person
    model = zoo.load("scgan")
    video = model.generate(image, action="wave", frames=20, seed=0)
    assert video.shape == (20, 3, 64, 64) and 0 <= video.min() and video.max() <= 1
    assert torch.equal(video, model.generate(image, action="wave", frames=20, seed=0))  # seeded: repeatable
    source = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    background = torch.from_numpy(clip.masks[0] == 0)  # pixels of the source frame without the person
    error = (video - source).abs().mean(1)  # (T, H, W)
    assert error[:, background].mean() < 0.05  # the background stays where it was
    assert (video[1:] - video[:-1]).abs().mean() > 1e-3  # and something moves
    assert model.actions == ["wave", "clap", "walk", "run", "jump", "squat", "punch", "kick", "bend"]
    with pytest.raises(ValueError, match="unknown action 'moonwalk'"):
        model.generate(image, action="moonwalk")


def test_cli_writes_a_playable_mp4(person, tmp_path):
    image, _ = person
    image.save(tmp_path / "person.png")
    out = tmp_path / "wave.mp4"
    assert posevideo_main([str(tmp_path / "person.png"), "--action", "wave", "--frames", "12", "--out", str(out),
                           "--smooth"]) == 0
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape[:2] == (64, 64)


def test_smooth_poses_are_the_filtered_raw_poses_and_smoother(person):
    from crossmedia.tasks.posevideo.metrics import smoothness
    from crossmedia.tasks.posevideo.models import temporal_filter

    _, clip = person
    psgan = zoo.load("psgan")
    pose = torch.as_tensor(clip.keypoints[0], dtype=torch.float32)  # (17, 3) the clip's first pose
    raw = psgan.generate_poses(pose, "wave", 16, seed=0)
    smooth = psgan.generate_poses(pose, "wave", 16, seed=0, smooth=True)
    assert torch.allclose(smooth, temporal_filter(raw)) and smooth.shape == raw.shape == (16, 17, 3)
    assert smoothness(smooth[None]) < 0.7 * smoothness(raw[None])
