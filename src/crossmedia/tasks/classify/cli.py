"""``crossmedia classify seeds``: train classify configs over several seeds; mean ± std of test top-1.

    crossmedia classify seeds classify-baseline classify-ls classify-tfkd-reg classify-tfkd-self --seeds 0 1 2
    crossmedia classify seeds my-config.yaml other.yaml --seeds 0 1 2 3 4 --out seeds.json

Each MODEL is a zoo name (its card's training config is used) or a LightningCLI config file (its
stem is its name). For every seed s, each config is trained from scratch in this process with
``seed_everything = s`` and the DataModule's ``split_seed = s`` (another draw of the few training
images per class, the same draw for every config of that seed: a paired comparison at equal
budgets), then tested. A config whose ``teacher`` names another MODEL of the same command gets the
model that one trained with the same seed as its teacher (Tf-KD self: the student's own baseline on
the same images); any other teacher is loaded through the zoo. Prints one row per config (per-seed
accuracies, mean ± sample std) and the paired difference of each config from the first one.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
from pathlib import Path

__all__ = ["COMMANDS", "classify_main", "train_and_test"]


def _config(model: str) -> tuple[str, dict]:
    import yaml

    from crossmedia.core.cards import find_cards, read_card

    path = Path(model)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path.stem, yaml.safe_load(path.read_text())
    cards = find_cards()
    if model not in cards:
        raise ValueError(f"{model!r} is neither a config file nor a zoo name (classify models: "
                         f"{', '.join(n for n in sorted(cards) if n.startswith('classify'))})")
    return model, read_card(cards[model]).config


def train_and_test(config: dict, *, seed: int, teacher=None, split: str = "test"):
    """Fit ``config`` (a LightningCLI config dict) with ``seed``; return (model, top-1 on ``split``)."""
    import pytorch_lightning as pl

    from crossmedia.core.registry import import_class

    config = copy.deepcopy(config)
    pl.seed_everything(seed, workers=True)
    model_args = dict(config["model"].get("init_args") or {})
    data_args = {**(config["data"].get("init_args") or {}), "split_seed": seed}
    model = import_class(config["model"]["class_path"])(**model_args)
    if teacher is not None:
        model.attach_teacher(teacher)
    data = import_class(config["data"]["class_path"], part="data")(**data_args)
    trainer_args = {k: v for k, v in (config.get("trainer") or {}).items()
                    if k not in ("logger", "callbacks", "default_root_dir")}
    with tempfile.TemporaryDirectory(prefix="crossmedia-seeds-") as scratch:  # sample pictures, not kept
        trainer = pl.Trainer(**trainer_args, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu", devices=1, default_root_dir=scratch)
        trainer.fit(model, datamodule=data)
        run = trainer.test if split == "test" else trainer.validate
        [result] = run(model, datamodule=data, verbose=False)
    return model.eval(), float(result[f"{split}/top1"])


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def seeds(models: list[str], seed_list: list[int], out: Path | None = None, split: str = "test"
          ) -> dict[str, list[float]]:
    """Top-1 on ``split`` of each model's config for each seed (the module docstring's protocol)."""
    configs = dict(_config(m) for m in models)
    results: dict[str, list[float]] = {name: [] for name in configs}
    for seed in seed_list:
        trained = {}
        for name, config in configs.items():
            teacher_name = (config["model"].get("init_args") or {}).get("teacher")
            teacher = trained.get(teacher_name)
            if teacher_name and teacher_name in configs and teacher is None:
                raise ValueError(f"{name}'s teacher {teacher_name} must come before it on the command line")
            trained[name], accuracy = train_and_test(config, seed=seed, teacher=teacher, split=split)
            results[name].append(accuracy)
            print(f"seed {seed}  {name:<24} {split} top-1 {accuracy:.4f}", flush=True)
    first = next(iter(results))
    print(f"\n{'model':<24} {'mean ± std':>17}   per seed {seed_list}   paired diff vs {first}")
    for name, values in results.items():
        diffs = [v - b for v, b in zip(values, results[first])]
        print(f"{name:<24} {_mean_std(values):>17}   {' '.join(f'{v:.4f}' for v in values)}   "
              f"{_mean_std(diffs) if name != first else ''}")
    if out is not None:
        out.write_text(json.dumps({"seeds": seed_list, "split": split, "top1": results}, indent=2) + "\n")
    return results


def classify_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="crossmedia classify", description="classification utilities")
    sub = parser.add_subparsers(dest="command", required=True)
    p_seeds = sub.add_parser("seeds", help="train configs over several seeds; mean ± std of test top-1")
    p_seeds.add_argument("models", nargs="+", help="zoo names or config files (teachers first)")
    p_seeds.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p_seeds.add_argument("--out", type=Path, help="also write the accuracies as JSON here")
    p_seeds.add_argument("--split", choices=["test", "val"], default="test",
                         help="measure on val to choose settings, on test to report (default: test)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        seeds(args.models, args.seeds, args.out, args.split)
    except (ValueError, OSError, LookupError) as error:
        print(f"crossmedia classify seeds: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    return 0


COMMANDS = {"classify": classify_main}
