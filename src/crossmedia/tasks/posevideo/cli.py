"""``crossmedia posevideo IMAGE``: a video of the person in an image performing an action, with a zoo model.

    crossmedia posevideo person.png --action wave --out wave.mp4          # scgan, 16 frames
    crossmedia posevideo person.png --action clap --frames 32 --seed 3 --out clap.gif
    crossmedia posevideo person.png --action walk --pose person.json      # your own keypoints

The model (``zoo.load(--model)``, default ``scgan``) estimates the pose of the person (or takes
``--pose``), generates a pose sequence of the action and renders the frames:
``model.generate(image, action=..., frames=..., seed=..., pose=..., smooth=...)`` -> (T, 3, H, W) in [0, 1],
written by ``model.save_video`` as ``.mp4`` or ``.gif``. ``--pose`` is a JSON file of 17 COCO
keypoints (x, y, v) in the pixels of IMAGE: a list of 17 triples, COCO's flat list of 51 numbers,
or an object with a ``keypoints`` field holding either. Errors are one line on stderr, exit code 1
(2 for a usage error). The core CLI finds this command through ``COMMANDS``; heavy imports wait
until the command runs.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

__all__ = ["COMMANDS", "posevideo_main", "read_pose_json"]

DEFAULT_MODEL = "scgan"


# helpers

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossmedia posevideo",
                                     description="Generate a video of the person in IMAGE performing an action.")
    parser.add_argument("image", type=Path, help="the image of a person (any format PIL reads)")
    parser.add_argument("--action", required=True, help="the action to perform, e.g. wave (see the model's actions)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the video to write, .mp4 or .gif (default: <image stem>_<action>.mp4 next to it)")
    parser.add_argument("--frames", type=int, default=16, help="frames to generate (default: 16)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"zoo model name (default: {DEFAULT_MODEL})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator's noise (default: 0)")
    parser.add_argument("--pose", type=Path, default=None,
                        help="JSON file of the person's 17 COCO keypoints (x, y, v) (default: estimated)")
    parser.add_argument("--fps", type=float, default=8.0, help="frames per second of the video (default: 8)")
    parser.add_argument("--smooth", action="store_true",
                        help="filter the generated poses over time: removes PSGAN's frame-to-frame jitter "
                             "(see the psgan card)")
    return parser


def _fail(message: str) -> int:
    print(f"crossmedia posevideo: {message}", file=sys.stderr)
    return 1


def read_pose_json(path: str | Path):
    """The 17 COCO keypoints (17, 3) float32 tensor of a JSON file: 17 [x, y, v] triples, a flat list of 51
    numbers (COCO's ``keypoints``), or an object with a ``keypoints`` field holding either.

    Raises ValueError naming the file and what is wrong with it.
    """
    import torch

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the pose JSON ({err})") from None
    field = "the top-level list"
    if isinstance(data, dict):
        if "keypoints" not in data:
            raise ValueError(f"{path}: no 'keypoints' field (has {sorted(data)[:8]}); write 17 [x, y, v] triples "
                             "or COCO's flat list of 51 numbers under 'keypoints'")
        data, field = data["keypoints"], "field 'keypoints'"
    try:
        values = torch.tensor(data, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{path}: {field} must hold numbers only, as 17 [x, y, v] triples or 51 numbers") from None
    if values.numel() != 51 or values.dim() not in (1, 2) or (values.dim() == 2 and values.shape[1] != 3):
        raise ValueError(f"{path}: {field} must be 17 [x, y, v] triples or 51 numbers, got shape "
                         f"{tuple(values.shape)}")
    if not torch.isfinite(values).all():
        raise ValueError(f"{path}: {field} holds a non-finite number; write absent joints as 0, 0, 0")
    return values.reshape(17, 3)


# the command

def posevideo_main(argv: list[str]) -> int:
    """Run ``crossmedia posevideo`` with ``argv`` (the arguments after the command); returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help or a usage error: argparse has printed why
        return int(exit_.code or 0)
    out = args.out if args.out is not None else args.image.with_name(f"{args.image.stem}_{args.action}.mp4")
    if not args.image.is_file():
        return _fail(f"no such image file: {args.image}")
    from crossmedia.tasks.posevideo.drawing import VIDEO_SUFFIXES

    if out.suffix.lower() not in VIDEO_SUFFIXES:
        return _fail(f"cannot write {out}: unknown video suffix {out.suffix!r}; use one of {', '.join(VIDEO_SUFFIXES)}")
    if args.frames < 1 or not args.fps > 0:
        return _fail(f"--frames must be >= 1 and --fps > 0, got {args.frames} and {args.fps}")
    pose = None
    if args.pose is not None:
        if not args.pose.is_file():
            return _fail(f"no such pose file: {args.pose}")
        try:
            pose = read_pose_json(args.pose)
        except ValueError as err:
            return _fail(str(err))

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(args.image) as opened:
            image = opened.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        return _fail(f"cannot read image {args.image}: {err}")

    from crossmedia import zoo

    try:
        model = zoo.load(args.model)
    except (zoo.CardError, zoo.WeightsError) as err:
        return _fail(str(err))
    if not callable(getattr(model, "generate", None)) or not callable(getattr(model, "save_video", None)):
        return _fail(f"zoo model {args.model!r} does not generate videos (it has no generate/save_video); "
                     f"try --model {DEFAULT_MODEL}")
    actions = list(getattr(model, "actions", None) or [])
    if actions and args.action not in actions:
        close = difflib.get_close_matches(args.action, actions, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return _fail(f"unknown action {args.action!r} for {args.model}{hint}; valid actions: {', '.join(actions)}")
    try:
        smooth = {"smooth": True} if args.smooth else {}  # a generate() without the option still works without it
        video = model.generate(image, action=args.action, frames=args.frames, seed=args.seed, pose=pose, **smooth)
        written = model.save_video(video, out, fps=args.fps)
    except (ValueError, KeyError) as err:  # the model's own checks (a pose it cannot use, ...)
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        return _fail(" ".join(str(message).split()))
    shape = tuple(getattr(video, "shape", ()))
    size = f", {shape[-1]}x{shape[-2]} px" if len(shape) == 4 else ""
    print(f"wrote {written or out} ({args.action}, {shape[0] if shape else args.frames} frames{size}, "
          f"model {args.model}, seed {args.seed})")
    return 0


COMMANDS = {"posevideo": posevideo_main}
