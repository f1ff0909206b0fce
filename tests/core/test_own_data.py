"""The README's "Your own data" commands, each run (one training step) on a small folder written
here in that format under a name no registry knows: it trains, says in one line what it adapted,
and leaves the folder exactly as it was (issue 18)."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from crossmedia.core import paths

README = (paths.checkout_root() / "README.md").read_text()
SECTION = README.split("### Your own data", 1)[1].split("\n#", 1)[0]
COMMANDS = [line.split("#", 1)[0].strip() for line in re.findall(r"```bash\n(.*?)```", SECTION, flags=re.S)[0]
            .splitlines() if line.startswith("crossmedia fit")]
WORDS = ["a red circle", "a blue square", "a green triangle", "two red circles", "a small blue square"]


def _captions(root):
    """12 drawings with 5 captions each (8 / 2 / 2), a Karpathy JSON of its own name, images/ beside it."""
    (root / "images").mkdir(parents=True)
    rng, entries = np.random.default_rng(0), []
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "images" / f"d{i}.png")
        entries.append({"filename": f"d{i}.png", "split": "train" if i < 8 else ("val" if i < 10 else "test"),
                        "sentences": [{"tokens": WORDS[(i + k) % 5].split(), "raw": WORDS[(i + k) % 5]}
                                      for k in range(5)]})
    (root / "sketches.json").write_text(json.dumps({"images": entries}))
    return "the data's vocabulary"


def _lists(root, digits):
    """DeepHash lists of the digits 0-2 only: a 3-class set with absolute image paths."""
    root.mkdir(parents=True)
    for split in ("train", "query", "database"):
        rows = [line.split() for line in (digits / f"{split}.txt").read_text().splitlines()]
        kept = [(path, labels[:3]) for path, *labels in rows if "1" in labels[:3]][:40]
        (root / f"{split}.txt").write_text("".join(f"{digits / p} {' '.join(b)}\n" for p, b in kept))
    return "has 3 classes, the model was configured for 10"


def _videos(root, tmp_path):
    """One eccv16 h5 of 6 SumMe-like videos with 1024-d features, alone in the folder."""
    from crossmedia.data.builtin.videosumm import make_videosumm

    made = make_videosumm(tmp_path / "made", variant="summe", seed=3, num_videos=6, progress=False)
    root.mkdir(parents=True)
    shutil.copy(made, root / "holiday.h5")
    return "has no split file: using 5 random 80/20 splits"


def _precomp(root):
    """VSE++'s precomputed layout: 10 / 5 / 5 images of 16-d features, 5 caption lines each."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("dev", 5), ("test", 5)):
        np.save(root / f"{split}_ims.npy", rng.normal(size=(count, 16)).astype(np.float32))
        (root / f"{split}_caps.txt").write_text("".join(f"{WORDS[(i + k) % 5]}\n" for i in range(count) for k in range(5)))
    return "gives precomputed image features (16-d): the image CNN"


def _birds(root):
    """Reed et al.'s text-to-image layout (CUB): 2 classes x 3 images, 10 captions per text file."""
    classes = {"001.Gull": "trainvalclasses.txt", "002.Tern": "testclasses.txt"}
    for cls, split_file in classes.items():
        (root / "text_c10" / cls).mkdir(parents=True)
        (root / "images" / cls).mkdir(parents=True)
        (root / split_file).write_text(cls + "\n")
        for i in range(3):
            (root / "text_c10" / cls / f"b{i}.txt").write_text("".join(f"{WORDS[(i + k) % 5]}\n" for k in range(10)))
            Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(root / "images" / cls / f"b{i}.jpg")
    return "text_encoder='minilm' reads"


def _msrvtt(root):
    """An MSR-VTT folder: 6 clips of 16 puppet frames as mp4 (3 train / 1 validate / 2 test), 5 captions each."""
    from crossmedia.data.builtin.puppet_captions import write_mp4
    from crossmedia.data.builtin.puppets import draw_puppet_clip

    (root / "videos").mkdir(parents=True)
    splits = ["train", "train", "train", "validate", "test", "test"]
    for i in range(len(splits)):
        write_mp4(root / "videos" / f"video{i}.mp4", draw_puppet_clip(i).frames)
    videos = [{"video_id": f"video{i}", "id": i, "split": split, "category": 0} for i, split in enumerate(splits)]
    sentences = [{"video_id": f"video{i}", "caption": WORDS[(i + k) % 5], "sen_id": 5 * i + k}
                 for i in range(len(splits)) for k in range(5)]
    (root / "annotations.json").write_text(json.dumps({"videos": videos, "sentences": sentences}))
    return "the data's vocabulary"


def _pets(root):
    """An ImageFolder of 3 classes with train/ and test/ (4 and 2 images per class)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("test", 2)):
        for name in ("cat", "dog", "owl"):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    return "has 3 classes, the model was configured for 10"


def _poses(root, tmp_path):
    """27 puppet clips' frames beside their keypoint JSON under another name (the 9 actions of the card:
    nothing to adapt, so no line to look for)."""
    from crossmedia.data.builtin.puppets import make_puppets

    made = make_puppets(tmp_path / "made", num_clips=27, progress=False)
    shutil.copytree(made / "frames", root / "frames")
    shutil.copy(made / "annotations.json", root / "gym_session.json")
    return ""


def _tree(root):
    return sorted((p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_the_section_has_a_command_per_format():
    assert [c.split()[3] for c in COMMANDS] == ["caption-xe", "csq", "sum-gda", "t2i-cls", "vsepp", "xlanv-xe", "classify-baseline", "psgan"]


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[c.split()[3] for c in COMMANDS])
def test_a_readme_own_data_command_trains_on_a_folder_it_leaves_untouched(command, tmp_path, hashing_data):
    folder = tmp_path / "mine"  # ~/my-... in the README
    card = command.split()[3]
    said = {"caption-xe": lambda: _captions(folder), "csq": lambda: _lists(folder, hashing_data / "digits"),
            "sum-gda": lambda: _videos(folder, tmp_path), "vsepp": lambda: _precomp(folder),
            "t2i-cls": lambda: _birds(folder), "xlanv-xe": lambda: _msrvtt(folder),
            "classify-baseline": lambda: _pets(folder), "psgan": lambda: _poses(folder, tmp_path)}[card]()
    before = _tree(folder)
    args = [re.sub(r"~/my-[\w-]+", str(folder), arg) for arg in shlex.split(command)][1:]
    env = {**os.environ, "CROSSMEDIA_HOME": str(tmp_path / "home"), "CROSSMEDIA_DATA": str(tmp_path / "data"),
           "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    steps = ["--trainer.max_steps=1", "--trainer.max_epochs=1", "--trainer.limit_val_batches=1",
             "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false"]
    proc = subprocess.run([sys.executable, "-m", "crossmedia", *args, *steps], cwd=tmp_path, env=env, timeout=600,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert said in proc.stdout + proc.stderr
    assert list((tmp_path / "runs").glob("*/config.yaml")), "no run folder"
    assert _tree(folder) == before, "the run changed the user's folder"
    made = {path.name for path in (tmp_path / "data").iterdir()} if (tmp_path / "data").exists() else set()
    assert made <= {"video-features"}, f"a built-in was generated: {made}"  # video streams are cached, not data
