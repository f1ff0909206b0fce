"""From a real (generated) video file to a summary: reading, encoding, KTS, keyshots, GIF, timeline, CLI."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle
from PIL import Image

from crossmedia.core.media import write_mp4
from crossmedia.data.video import read_video
from crossmedia.tasks.summarization.callbacks import timeline_figure
from crossmedia.tasks.summarization.cli import COMMANDS, summarize_main
from crossmedia.tasks.summarization.kts import segment_features
from crossmedia.tasks.summarization.video import FrameEncoder, summarize_video

RATE, SECONDS, SIZE = 30, 12, 64
N_FRAMES = RATE * SECONDS  # 360
SCENES = [(0, 120), (120, 240), (240, 360)]  # planted scene changes at 4 s and 8 s


# helpers

def _scene_frame(i: int) -> np.ndarray:
    """Frame i (SIZE, SIZE, 3): red with a white square moving right, blue with a yellow disc moving
    down, green with scrolling white stripes."""
    t = i / RATE
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    if t < 4:
        img[:] = (200, 30, 30)
        x = int(4 + 40 * t / 4)
        img[20:36, x:x + 16] = 255
    elif t < 8:
        img[:] = (20, 40, 190)
        img[(yy - (10 + 40 * (t - 4) / 4)) ** 2 + (xx - 32) ** 2 < 100] = (250, 230, 0)
    else:
        img[:] = (20, 160, 40)
        img[((xx + int(t * 20)) // 8) % 2 == 0] = (240, 240, 240)
    return img


def _prefers_second_scene(features: torch.Tensor) -> torch.Tensor:
    """Step scores (T,): 0.9 for the 2 fps steps of the second scene (frames 120..239), 0.1 elsewhere."""
    scores = torch.full((len(features),), 0.1)
    scores[8:16] = 0.9
    return scores


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    frames = np.stack([_scene_frame(i) for i in range(N_FRAMES)])  # (360, SIZE, SIZE, 3)
    return write_mp4(frames, tmp_path_factory.mktemp("video") / "scenes.mp4", fps=RATE)


@pytest.fixture(scope="module")
def encoder():
    return FrameEncoder(backbone="test_resnet", out_dim=32, image_size=64)


def _assert_tiles(change_points: np.ndarray, n_frames: int) -> None:
    assert change_points[0, 0] == 0 and change_points[-1, 1] == n_frames - 1
    assert np.all(change_points[1:, 0] == change_points[:-1, 1] + 1)
    assert np.all(change_points[:, 1] >= change_points[:, 0])


# encoding and segmentation

def test_frame_encoder_projection_is_fixed_and_orthogonal(encoder):
    assert encoder.backbone.num_features != 32
    projection = encoder.projection  # (width, 32)
    torch.testing.assert_close(projection.T @ projection, torch.eye(32), atol=1e-5, rtol=0)
    assert "projection" not in dict(encoder.named_parameters()) and "projection" not in encoder.state_dict()
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    again = FrameEncoder(backbone="test_resnet", out_dim=32, image_size=64)
    first, second = encoder.encode(frames, progress=False), again.encode(frames, batch_size=2, progress=False)
    torch.testing.assert_close(first, second)  # seeded backbone and projection, batch size does not matter


def test_kts_finds_the_planted_scene_changes(video_path, encoder):
    video = read_video(video_path)
    features = encoder.encode(video.frames, progress=False)  # (24, 32)
    assert features.shape == (24, 32)
    centred = (features - features.mean(0)).numpy()
    change_points, n_frame_per_seg = segment_features(centred, sample_rate=video.step, n_frames=video.n_frames,
                                                      fps=video.native_fps)
    _assert_tiles(change_points, N_FRAMES)
    assert n_frame_per_seg.sum() == N_FRAMES
    starts = change_points[1:, 0]
    for planted in (120, 240):
        assert np.abs(starts - planted).min() <= 2 * video.step, (planted, starts)


# summarising

def test_summarize_video_picks_the_preferred_scene(video_path, encoder, tmp_path):
    keyshots = summarize_video(video_path, scorer=_prefers_second_scene, in_dim=32, out_dir=tmp_path / "out",
                               encoder=encoder, progress=False)
    _assert_tiles(keyshots.change_points, N_FRAMES)
    assert keyshots.segments and all(120 <= s <= e < 240 for s, e in keyshots.segments)
    assert keyshots.frame_mask.shape == (N_FRAMES,) and keyshots.frame_mask.dtype == bool
    assert keyshots.frame_mask.sum() == sum(e - s + 1 for s, e in keyshots.segments) <= int(0.15 * N_FRAMES)
    assert keyshots.summary_fraction == pytest.approx(keyshots.frame_mask.mean())
    assert keyshots.segments_seconds[0][0] >= 4.0 and keyshots.segments_seconds[-1][1] <= 8.0
    np.testing.assert_array_equal(keyshots.picks, np.arange(24) * 15)
    assert keyshots.gif_path.name == "scenes_summary.gif" and keyshots.gif_path.stat().st_size > 0
    with Image.open(keyshots.gif_path) as gif:
        assert gif.n_frames > 1
    with Image.open(keyshots.timeline_path) as png:
        assert keyshots.timeline_path.name == "scenes_timeline.png" and png.format == "PNG" and png.width > 300


def test_timeline_figure_shades_each_keyshot_run():
    mask = np.zeros(300, bool)
    mask[30:60] = mask[200:240] = True
    figure = timeline_figure(np.linspace(0, 1, 300), np.array([[0, 99], [100, 199], [200, 299]]), mask,
                             fps=30.0, title="t")
    axis = figure.axes[0]
    spans = [patch for patch in axis.patches if type(patch) is Rectangle]  # one shaded span per keyshot run
    assert [(span.get_x(), span.get_x() + span.get_width()) for span in spans] == [(1.0, 2.0), (200 / 30, 8.0)]
    boundaries = [line.get_xdata()[0] for line in axis.lines if len(line.get_xdata())]
    assert boundaries == pytest.approx([100 / 30, 200 / 30]) and axis.get_xlim() == (0.0, 10.0)


# the command

def test_summarize_command(video_path, tmp_path, monkeypatch, capsys):
    assert COMMANDS["summarize"] is summarize_main
    fake = SimpleNamespace(summarize_scores=_prefers_second_scene, hparams=SimpleNamespace(in_dim=16))
    monkeypatch.setattr("crossmedia.zoo.load", lambda name, **kwargs: fake)
    video = tmp_path / "clip.mp4"
    video.write_bytes(video_path.read_bytes())
    assert summarize_main([str(video), "--backbone", "test_resnet"]) == 0
    out = capsys.readouterr().out
    shots = [(float(a) * 60 + float(b), float(c) * 60 + float(d))
             for a, b, c, d in re.findall(r"(\d+):(\d+\.\d+) - (\d+):(\d+\.\d+)", out)]
    assert "keyshot" in out and shots and all(4.0 <= start < end <= 8.0 for start, end in shots)  # second scene
    for written in ("clip_summary.gif", "clip_timeline.png"):
        assert (tmp_path / "clip_summary" / written).is_file() and written in out


def test_summarize_command_errors_are_for_people(tmp_path, monkeypatch, capsys):
    from crossmedia.zoo import CardError

    assert summarize_main([str(tmp_path / "nope.mp4")]) == 1
    assert "nope.mp4" in capsys.readouterr().err
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 10)

    def unknown(name, **kwargs):
        raise CardError(f"unknown zoo model {name!r}")

    monkeypatch.setattr("crossmedia.zoo.load", unknown)
    assert summarize_main([str(video), "--model", "sum-gdaa"]) == 1
    assert "sum-gdaa" in capsys.readouterr().err
    fake = SimpleNamespace(summarize_scores=_prefers_second_scene, hparams=SimpleNamespace(in_dim=16))
    monkeypatch.setattr("crossmedia.zoo.load", lambda name, **kwargs: fake)
    assert summarize_main([str(video), "--backbone", "test_resnet"]) == 1
    assert "clip.mp4" in capsys.readouterr().err
    assert summarize_main([str(video), "--backbone", "resnet_18"]) == 1
    assert "resnet18" in capsys.readouterr().err  # the closest timm names are suggested


def test_summarize_refuses_a_still_image(tmp_path, monkeypatch, capsys):
    """Issue 11 item 10: a photo used to give "0 keyshots ... 1 frames" and exit 0."""
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photo)
    fake = SimpleNamespace(summarize_scores=_prefers_second_scene, hparams=SimpleNamespace(in_dim=16))
    monkeypatch.setattr("crossmedia.zoo.load", lambda name, **kwargs: fake)
    assert summarize_main([str(photo), "--backbone", "test_resnet", "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "photo.jpg" in lines[0] and "a still image is not a video" in lines[0], lines
    assert "keyshot" not in captured.out and not (tmp_path / "out").exists()  # nothing summarised, nothing written


@pytest.mark.skipif("sum-gda" not in [e.name for e in __import__("crossmedia").zoo.list_models()],
                    reason="no sum-gda zoo entry")
def test_zoo_model_summarizes_a_video_file(video_path, tmp_path):
    """The whole path a user takes: zoo.load, then model.summarize(video) writes GIF + timeline."""
    from crossmedia import zoo
    model = zoo.load("sum-gda")
    encoder = FrameEncoder(backbone="test_resnet", out_dim=model.hparams.in_dim, image_size=64)
    keyshots = model.summarize(video_path, out_dir=tmp_path, encoder=encoder, progress=False)
    assert 0 < keyshots.summary_fraction <= 0.15
    assert keyshots.frame_mask.sum() == sum(end - start + 1 for start, end in keyshots.segments)
    assert keyshots.timeline_path.is_file() and keyshots.gif_path.is_file()
