"""``crossmedia posevideo``: a stand-in zoo model's video is written as a playable file; each bad input
(image, action, suffix, pose file, model) is one stderr line naming it, exit code 1 (2 for usage)."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from crossmedia import zoo
from crossmedia.core.cli import main as crossmedia_main
from crossmedia.tasks.posevideo.cli import COMMANDS, posevideo_main
from crossmedia.tasks.posevideo.drawing import save_video


class FakeVideoModel:
    """What the CLI needs of the scgan pipeline: actions, generate() and save_video()."""

    actions = ["wave", "clap", "walk"]

    def __init__(self):
        self.calls = []

    def generate(self, image, *, action, frames, seed, pose, smooth=False):
        self.calls.append({"image": image, "action": action, "frames": frames, "seed": seed, "pose": pose,
                           "smooth": smooth})
        if pose is not None and pose[0, 2] < 0:
            raise ValueError("pose: visibility must be >= 0")
        return torch.linspace(0, 1, frames)[:, None, None, None].expand(frames, 3, 24, 32)  # (T, 3, H, W)

    def save_video(self, video, path, fps=8):
        return save_video(video, path, fps=fps)


@pytest.fixture
def fake(monkeypatch):
    model, names = FakeVideoModel(), []

    def load(name, **kwargs):
        names.append(name)
        if name != "scgan":
            raise zoo.CardError(f"no zoo model named {name!r}; known: scgan, psgan")
        return model

    monkeypatch.setattr("crossmedia.zoo.load", load)
    model.loaded = names
    return model


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "person.png"
    Image.fromarray(np.full((40, 30, 3), 120, np.uint8)).save(path)
    return path


def test_writes_a_playable_mp4_of_the_generated_frames(fake, image, tmp_path, capsys):
    out = tmp_path / "videos" / "wave.mp4"
    assert COMMANDS["posevideo"] is posevideo_main
    assert posevideo_main([str(image), "--action", "wave", "--out", str(out), "--frames", "6", "--seed", "3"]) == 0
    call, = fake.calls
    assert fake.loaded == ["scgan"] and call["action"] == "wave" and call["frames"] == 6 and call["seed"] == 3
    assert isinstance(call["image"], Image.Image) and call["image"].mode == "RGB" and call["pose"] is None
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (24, 32, 3)
    assert frames[0].mean() < 5 and frames[-1].mean() > 250  # black to white, as generated
    assert f"wrote {out} (wave, 6 frames, 32x24 px" in capsys.readouterr().out


def test_gif_default_name_and_the_core_cli_finds_the_command(fake, image, tmp_path):
    assert crossmedia_main(["posevideo", str(image), "--action", "clap", "--frames", "4"]) == 0
    with av.open(str(tmp_path / "person_clap.mp4")) as container:  # the default: <stem>_<action>.mp4 next to it
        assert container.streams.video[0].frames == 4
    assert posevideo_main([str(image), "--action", "clap", "--frames", "4", "--out", str(tmp_path / "c.gif")]) == 0
    with Image.open(tmp_path / "c.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (32, 24)


@pytest.mark.parametrize("content", [
    [[5, 6, 2]] * 17,
    [5, 6, 2] * 17,
    {"image_id": 1, "keypoints": [5, 6, 2] * 17},
])
def test_pose_json_in_each_accepted_layout_reaches_generate(fake, image, tmp_path, content):
    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps(content))
    assert posevideo_main([str(image), "--action", "walk", "--pose", str(pose), "--out", str(tmp_path / "w.gif")]) == 0
    given = fake.calls[0]["pose"]
    assert given.shape == (17, 3) and given.dtype == torch.float32 and given[16].tolist() == [5, 6, 2]
    assert fake.calls[0]["smooth"] is False
    assert posevideo_main([str(image), "--action", "walk", "--smooth", "--out", str(tmp_path / "s.gif")]) == 0
    assert fake.calls[1]["smooth"] is True


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("crossmedia posevideo: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_image_and_bad_suffix_fail_before_loading_the_model(fake, image, tmp_path, capsys):
    assert posevideo_main([str(tmp_path / "nobody.png"), "--action", "wave"]) == 1
    err = _error(capsys)
    assert "no such image file" in err and "nobody.png" in err
    assert posevideo_main([str(image), "--action", "wave", "--out", str(tmp_path / "wave.avi")]) == 1
    err = _error(capsys)
    assert "wave.avi" in err and "'.avi'" in err and ".mp4, .gif" in err
    assert fake.loaded == [] and not (tmp_path / "wave.avi").exists()


def test_unknown_action_lists_the_valid_ones(fake, image, capsys):
    assert posevideo_main([str(image), "--action", "wav"]) == 1
    err = _error(capsys)
    assert "unknown action 'wav'" in err and "did you mean wave?" in err and "wave, clap, walk" in err
    assert fake.calls == []


def test_bad_pose_file_names_the_file_and_field(fake, image, tmp_path, capsys):
    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps({"keypoints": [1, 2, 3] * 13}))
    assert posevideo_main([str(image), "--action", "wave", "--pose", str(pose)]) == 1
    err = _error(capsys)
    assert "pose.json" in err and "field 'keypoints'" in err and "(39,)" in err
    pose.write_text(json.dumps({"points": []}))
    assert posevideo_main([str(image), "--action", "wave", "--pose", str(pose)]) == 1
    assert "no 'keypoints' field" in _error(capsys)
    pose.write_text("{not json")
    assert posevideo_main([str(image), "--action", "wave", "--pose", str(pose)]) == 1
    assert "cannot read the pose JSON" in _error(capsys)
    assert posevideo_main([str(image), "--action", "wave", "--pose", str(tmp_path / "none.json")]) == 1
    assert "no such pose file" in _error(capsys) and fake.loaded == []


def test_model_errors_unreadable_image_and_usage(fake, image, tmp_path, capsys):
    assert posevideo_main([str(image), "--action", "wave", "--model", "scgann"]) == 1
    assert "no zoo model named 'scgann'" in _error(capsys)
    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps([[0, 0, -1]] * 17))
    assert posevideo_main([str(image), "--action", "wave", "--pose", str(pose)]) == 1  # the model's own ValueError
    assert "visibility must be >= 0" in _error(capsys)
    text = tmp_path / "fake.png"
    text.write_text("not an image")
    assert posevideo_main([str(text), "--action", "wave"]) == 1
    err = _error(capsys)
    assert "cannot read image" in err and "fake.png" in err
    assert posevideo_main([str(image)]) == 2  # --action missing: argparse's usage error
    assert "--action" in capsys.readouterr().err
    assert posevideo_main([str(image), "--action", "wave", "--frames", "0"]) == 1
    assert "--frames must be >= 1" in _error(capsys)
