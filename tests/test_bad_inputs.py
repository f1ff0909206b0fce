"""Every bad input of issue 11 is answered in one line that names the file, field or name.

One table, one row per item: each row runs the real command (``python -m crossmedia ...``,
``make train``) or the real API call on a hostile or careless input, and the test asserts the
exit code (or the exception type) and the words the message must hold. A command's answer is its
last stderr line (before make's own trailer), with no traceback and no usage dump before it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest

import yaml

from crossmedia.core import paths

pytestmark = pytest.mark.slow
_MAKE_TRAILER = re.compile(r"make(\[\d+\])?: \*\*\* ")  # make, or make run from make (make test)
SAVE_WEIGHTS = "crossmedia.core.checkpoint_io.save_weights"  # a function: writes a file of the caller's choosing


# inputs

def _card(ctx, name: str, **changes) -> Path:
    """A copy of the csq card called ``name`` with top-level fields and ``config.model`` changed."""
    from crossmedia.core.cards import get_card

    raw = yaml.safe_load(get_card("csq").path.read_text())
    raw["name"] = name
    raw["weights"].update(changes.get("weights", {}))
    raw["config"]["model"].update(changes.get("model", {}))
    path = ctx.tmp / "cards" / "hashing" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _escaping_card(ctx) -> Path:
    """A card whose url serves a file with the card's own sha256, to be saved as
    ``<cache>/../../escaped.pth``: with ``CROSSMEDIA_HOME=<tmp>/home`` that is ``<tmp>/escaped.pth``."""
    from crossmedia.core.checkpoint_io import sha256_file

    served = ctx.tmp / "served.pth"
    served.write_text("import os  # a .pth line runs at every Python start\n")
    return _card(ctx, "csq-escape", weights={"file": "../../escaped.pth", "url": served.as_uri(),
                                             "sha256": sha256_file(served)})


def _function_card(ctx) -> Path:
    return _card(ctx, "csq-function", model={"class_path": SAVE_WEIGHTS})


def _own_weights(ctx) -> Path:
    """csq's weights after a 'fine-tune' (one tensor changed), as the user's own safetensors file."""
    from safetensors.torch import save_file

    from crossmedia import zoo

    state = {k: v.clone().contiguous() for k, v in zoo.load("csq").state_dict().items()}
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] += 0.01
    save_file(state, ctx.tmp / "my-csq.safetensors")
    return ctx.tmp / "my-csq.safetensors"


def _eccv16_source(ctx, kind: str) -> Path:
    """A download folder whose TVSum h5 is random bytes, or a real h5 file cut in half."""
    import h5py
    import numpy as np

    source = ctx.tmp / f"eccv16-{kind}"
    source.mkdir()
    target = source / "eccv16_dataset_tvsum_google_pool5.h5"
    if kind == "random":
        target.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        with h5py.File(target, "w") as handle:
            handle.create_dataset("video_1/features", data=np.zeros((400, 1024), np.float32))
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    return source


def _photo(ctx) -> Path:
    from PIL import Image

    Image.new("RGB", (64, 48), "white").save(ctx.tmp / "photo.jpg")
    return ctx.tmp / "photo.jpg"


# how a row runs

def _crossmedia(ctx, *args, env: dict | None = None) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "crossmedia", *map(str, args)], cwd=ctx.tmp, timeout=600,
                          capture_output=True, text=True, env={**ctx.env, **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr


def _make(ctx, *args) -> tuple[int, str, str]:
    """The checkout's real Makefile (``-o`` keeps it from reinstalling the venv it runs from)."""
    proc = subprocess.run(["make", "-o", ".venv/.installed", *args], cwd=paths.checkout_root(), timeout=300,
                          capture_output=True, text=True, env=ctx.env)
    return proc.returncode, proc.stdout, proc.stderr


def _call(function: Callable[[], object]) -> BaseException | None:
    try:
        function()
    except Exception as err:  # noqa: BLE001 - the row names the type it expects
        return err
    return None


def _load(path_of):
    def run(ctx):
        from crossmedia import zoo
        from crossmedia.core.cards import read_card

        return _call(lambda: zoo.load(read_card(path_of(ctx))))
    return run


def _load_own_weights(ctx):
    from crossmedia import zoo

    path = _own_weights(ctx)
    return _call(lambda: zoo.load("csq", weights=path))


def _hash_an_image_with_the_video_model(ctx):
    from PIL import Image

    from crossmedia import zoo

    model = zoo.load("csq-video")
    return _call(lambda: model.hash([Image.new("RGB", (32, 32))]))


@dataclass
class Row:
    item: str
    run: Callable  # ctx -> (exit code, stdout, stderr) or the exception raised (None if none)
    expect: int | str  # exit code, or the name of the exception type
    names: list[str] = field(default_factory=list)  # the message holds each, after .format(**vars(ctx))


ROWS = [
    Row("1-card-weights-file-escapes", _load(_escaping_card), "CardError",
        ["{tmp}/cards/hashing/csq-escape.yaml", "weights.file", "'../../escaped.pth'"]),
    Row("2-card-builds-a-function", _load(_function_card), "CardError",
        ["{tmp}/cards/hashing/csq-function.yaml", "config.model.class_path", SAVE_WEIGHTS]),
    Row("3-own-weights-without-own_weights", _load_own_weights, "WeightsError",
        ["{tmp}/my-csq.safetensors", "your own", "own_weights=True"]),
    Row("6-make-train-unknown-task", lambda ctx: _make(ctx, "train", "TASK=nonexistent"), 2,
        ["unknown task 'nonexistent'", "hashing"]),
    Row("7-fit-unknown-zoo-name", lambda ctx: _crossmedia(ctx, "fit", "-c", "csqq"), 1,
        ["crossmedia fit: -c csqq: no such file", "Did you mean: csq"]),
    Row("8-data-prepare-unknown-dataset",
        lambda ctx: _crossmedia(ctx, "data", "prepare", "cifar-10", "--source", ctx.tmp), 2,
        ["crossmedia data prepare:", "'cifar-10'", "cifar10"]),
    Row("8-fit-card-builds-a-function", lambda ctx: _crossmedia(ctx, "fit", "-c", _function_card(ctx)), 1,
        ["crossmedia fit:", "{tmp}/cards/hashing/csq-function.yaml", SAVE_WEIGHTS]),
    Row("9-eccv16-h5-random-bytes",
        lambda ctx: _crossmedia(ctx, "data", "prepare", "tvsum", "--source", _eccv16_source(ctx, "random"),
                                "--root", ctx.tmp / "tvsum"), 1,
        ["crossmedia data prepare:", "{tmp}/eccv16-random/eccv16_dataset_tvsum_google_pool5.h5"]),
    Row("9-eccv16-h5-truncated",
        lambda ctx: _crossmedia(ctx, "data", "prepare", "tvsum", "--source", _eccv16_source(ctx, "cut"),
                                "--root", ctx.tmp / "tvsum"), 1,
        ["crossmedia data prepare:", "{tmp}/eccv16-cut/eccv16_dataset_tvsum_google_pool5.h5"]),
    Row("10-summarize-a-still-image", lambda ctx: _crossmedia(ctx, "summarize", _photo(ctx)), 1,
        ["{tmp}/photo.jpg", "still image"]),
    Row("11-video-hasher-given-an-image", _hash_an_image_with_the_video_model, "TypeError",
        ["clips", "(N, T, 3, H, W)"]),
    Row("12-data-classes-differ-from-the-model",  # evaluating; fit takes the data's count (issue 18)
        lambda ctx: _crossmedia(ctx, "test", "-c", ctx.tiny_csq, "--data.root", ctx.mini,
                                "--model.init_args.num_classes=7", env={"CROSSMEDIA_DATA": str(ctx.data)}), 1,
        ["crossmedia test:", "{mini}", "10 classes", "7", "model.init_args.num_classes"]),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.item for row in ROWS])
def test_bad_input_is_answered_in_one_line(row, tmp_path, request, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path / "home"))
    needs_data = row.item.startswith("12-")
    ctx = SimpleNamespace(
        tmp=tmp_path, env={**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"},
        data=request.getfixturevalue("hashing_data") if needs_data else None,
        mini=request.getfixturevalue("mini") if needs_data else None,
        tiny_csq=request.getfixturevalue("tiny_csq") if needs_data else None,
    )
    outcome = row.run(ctx)
    if isinstance(row.expect, int):
        code, stdout, stderr = outcome
        assert code == row.expect, (code, stderr[-3000:])
        assert "Traceback" not in stderr and "usage:" not in stdout + stderr, stderr[-3000:]
        lines = [line for line in stderr.strip().splitlines() if not _MAKE_TRAILER.match(line)]
        message = lines[-1]  # the answer; make's own "make[1]: *** [train] Error 2" trailer aside
    else:
        assert type(outcome).__name__ == row.expect, repr(outcome)
        message = str(outcome)
    assert "\n" not in message.strip()
    for name in row.names:
        assert name.format(**vars(ctx)) in message, (name, message)
    if row.item.startswith("1-"):  # nothing was written where the card pointed
        assert not (paths.cache_dir() / "../../escaped.pth").exists()
        assert not list(tmp_path.rglob("escaped.pth"))
