"""``crossmedia data list|prepare|check``: the datasets of the registry, and what a folder holds.

``check DIR`` reads a folder in any supported format (:mod:`crossmedia.data.check`) and reports
items per split, classes or vocabulary, and missing files, without training or writing anything:
exit 0 when it is clean, 1 when a file is missing or unreadable or no format is recognised.

Every failure of ``prepare`` ends in one line on stderr naming the dataset, file or field and the
fix: exit code 2 for an unknown dataset name (with the closest names), 1 for any other error (a
missing source, a damaged file). Bugs are not caught: they keep their traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crossmedia.data import registry

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossmedia data", description="datasets")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="known datasets")
    p_prep = sub.add_parser("prepare", help="generate a built-in dataset or convert a local download")
    p_prep.add_argument("name")
    p_prep.add_argument("--source", type=Path, help="folder of the downloaded dataset (real datasets)")
    p_prep.add_argument("--root", type=Path, help="where to write it (default data/NAME)")
    p_prep.add_argument("--seed", type=int, default=0)
    p_check = sub.add_parser("check", help="what a folder of your own data holds, in which format (writes nothing)")
    p_check.add_argument("folder", type=Path)
    return parser


def _check(folder: Path) -> int:
    from crossmedia.data.check import EXPECTED, check_folder, describe_contents

    reports = check_folder(folder)
    if not reports:
        print(f"{folder}: no supported format found; it holds {describe_contents(folder)}. Expected one of:",
              file=sys.stderr)
        for name, layout in EXPECTED.items():
            print(f"  {name:<12} {layout}", file=sys.stderr)
        return 1
    print(f"{folder}:")
    for report in reports:
        for line in report.lines():
            print(f"  {line}")
    return 0 if all(report.ok for report in reports) else 1


def _one_line(error: BaseException) -> str:
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)  # KeyError quotes its str
    return " ".join(str(message).split())


def main(argv: list[str]) -> int:
    """Run ``crossmedia data ARGV``; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed by argparse
        return int(exit_.code or 0)
    try:
        if args.command == "list":
            for name, info in registry.list_datasets().items():
                origin = "built-in" if info.builtin else "prepare --source DIR"
                print(f"{name:<14} {info.kind:<7} {origin:<21} {info.summary}")
            return 0
        if args.command == "check":
            return _check(args.folder)
        path = registry.prepare(args.name, source=args.source, root=args.root, seed=args.seed)
    except registry.UnknownDatasetError as error:
        print(f"crossmedia data {args.command}: {_one_line(error)}", file=sys.stderr)
        return 2
    except (LookupError, ValueError, OSError) as error:  # bad input: missing or damaged files, wrong source
        print(f"crossmedia data {args.command}: {_one_line(error)}", file=sys.stderr)
        return 1
    print(f"{args.name} ready in {path}")
    return 0
