"""``crossmedia zoo …`` sub-commands (plain argparse, cheap to start: ``list`` reads YAML only,
unless ``--methods`` asks for each model's inference methods, which imports the model classes)."""
from __future__ import annotations

import argparse
import sys

import yaml

__all__ = ["zoo_main", "markdown_table", "update_readme"]

_START, _END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"


def markdown_table() -> str:
    """The zoo as a Markdown table, one row per card metric."""
    from crossmedia.core.cards import find_cards, read_card

    rows = ["| model | task | metric | dataset (split) | value | summary |", "|---|---|---|---|---|---|"]
    for name in sorted(find_cards()):
        c = read_card(find_cards()[name])
        for i, m in enumerate(c.metrics or [{"metric": "", "dataset": "", "split": "", "value": float("nan")}]):
            summary = c.summary if i == 0 else ""
            rows.append(f"| `{name}` | {c.task} | {m['metric']} | {m['dataset']} ({m['split']}) | "
                        f"{m['value']:.4f} | {summary} |")
    return "\n".join(rows)


def update_readme(path) -> bool:
    """Rewrite the block between the zoo-table markers of ``path``; True if it changed."""
    from pathlib import Path

    path = Path(path)
    text = path.read_text()
    if _START not in text or _END not in text:
        raise ValueError(f"{path}: zoo table markers {_START} … {_END} not found")
    head, rest = text.split(_START, 1)
    _, tail = rest.split(_END, 1)
    new = f"{head}{_START}\n{markdown_table()}\n{_END}{tail}"
    path.write_text(new)
    return new != text


def zoo_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="crossmedia zoo", description="the pretrained model zoo")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="entries with summaries and headline metrics")
    p_list.add_argument("--task")
    p_list.add_argument("--pattern")
    p_list.add_argument("--methods", action="store_true",
                        help="also show each model's plain inference methods (imports the model classes)")
    sub.add_parser("show", help="print a card").add_argument("name")
    p_eval = sub.add_parser("eval", help="re-measure an entry and compare with its card")
    p_eval.add_argument("name")
    p_eval.add_argument("--weights", help="a safetensors file to measure instead of the zoo's")
    p_eval.add_argument("--own-weights", action="store_true",
                        help="--weights is your own fine-tune of this architecture (its sha256 need not match "
                        "the card's)")
    p_export = sub.add_parser("export", help="turn a run folder into weights + a measured card")
    p_export.add_argument("run_dir")
    p_export.add_argument("--name", required=True)
    p_export.add_argument("--checkpoint", default="last")
    p_export.add_argument("--summary")
    p_export.add_argument("--default", action="store_true", help="make it the task's default entry")
    p_export.add_argument("--notes", help="what a reader of the card should know (comparisons, caveats)")
    p_export.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                          help="storage precision of the weights (metrics are measured on what is stored)")
    sub.add_parser("default", help="the entry `make train TASK=…` trains").add_argument("task")
    p_table = sub.add_parser("table", help="the zoo as a Markdown table")
    p_table.add_argument("--write", metavar="README", help="update the table block of this file instead")
    args = parser.parse_args(argv)

    from crossmedia.core import registry
    from crossmedia.core.cards import CardError
    from crossmedia.core.checkpoint_io import WeightsError

    try:
        if args.command == "list":
            for entry in registry.list_models(task=args.task, pattern=args.pattern):
                methods = f"  [{', '.join(f'{m}()' for m in entry.inference)}]" if args.methods else ""
                print(f"{entry}{methods}")
        elif args.command == "show":
            print(registry.card(args.name).path.read_text(), end="")
        elif args.command == "table":
            if args.write:
                print(f"{args.write}: {'updated' if update_readme(args.write) else 'already up to date'}")
            else:
                print(markdown_table())
        elif args.command == "default":
            print(registry.default_model(args.task))
        elif args.command == "eval":
            from crossmedia.core.evaluate import evaluate

            checks = evaluate(args.name, weights=args.weights, own_weights=args.own_weights)
            print(f"{args.name}: measured vs card")
            for check in checks:
                print("  " + str(check))
            return 0 if all(c.ok for c in checks) else 1
        elif args.command == "export":
            from crossmedia.core.export import export_run

            path = export_run(args.run_dir, name=args.name, checkpoint=args.checkpoint,
                              summary=args.summary, default=args.default, notes=args.notes, dtype=args.dtype)
            print(f"wrote {path}")
            for m in yaml.safe_load(path.read_text())["metrics"]:
                print(f"  {m['metric']} on {m['dataset']}/{m['split']}: {m['value']}")
    except (CardError, WeightsError, FileNotFoundError) as err:
        print(f"crossmedia zoo {args.command}: {err}", file=sys.stderr)
        return 1
    return 0
