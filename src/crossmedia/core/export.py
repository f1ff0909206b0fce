"""Turn a finished training run into a zoo entry: safetensors weights + a measured card.

What it writes is named by ``--name`` (a plain file name: ``checkpoints/<name>.safetensors``,
``zoo/<task>/<name>.yaml``); what it reads of the model class is the task contract
(:mod:`crossmedia.core.task`); a run whose weights hold NaN or inf is refused.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from crossmedia.core import paths
from crossmedia.core.cards import CardError, check_file_name
from crossmedia.core.checkpoint_io import WeightsError, read_lightning_checkpoint, save_weights

__all__ = ["export_run"]


def _inside(folder: Path, file: str, field: str) -> Path:
    try:
        return paths.join_inside(folder, file)
    except ValueError as err:
        raise CardError(f"{field} gives {file!r}, which must be a file name inside {folder} ({err})") from None


def _non_finite(state: dict) -> list[str]:
    """Names of the floating tensors of ``state`` holding NaN or inf, in order."""
    import torch

    return [key for key, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()]


def _refuse_non_finite(state: dict, source: Path, why: str) -> None:
    bad = _non_finite(state)
    if bad:
        names = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise WeightsError(f"{source}: {len(bad)} of {len(state)} weight tensors hold NaN or inf ({names}); {why}")


def export_run(run_dir: str | Path, *, name: str, checkpoint: str = "last", summary: str | None = None,
               zoo_dir: str | Path | None = None, checkpoints_dir: str | Path | None = None,
               default: bool = False, tolerance: float = 0.005, notes: str | None = None,
               dtype: str = "float32", progress: bool = True) -> Path:
    """Write ``checkpoints/<name>.safetensors`` and ``zoo/<task>/<name>.yaml`` from ``run_dir``.

    The card's metrics are measured here, by the same code ``crossmedia zoo eval`` runs, on the
    weights as written: ``dtype="float16"`` halves the file (floating tensors are stored in half
    precision and cast back to the module's float32 on load), and the card then reports what
    the half-precision weights measure.
    """
    from crossmedia.core.cards import read_card
    from crossmedia.core.evaluate import evaluate
    from crossmedia.core.registry import import_class
    from crossmedia.core.task import contract_errors

    check_file_name(None, "name (--name)", name, "the zoo and checkpoints folders")
    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    ckpt = _inside(run_dir / "checkpoints", f"{checkpoint}.ckpt", "checkpoint (--checkpoint)")
    for needed in (config_file, ckpt):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} not found: is {run_dir} a finished `crossmedia fit` run folder?")
    config = yaml.safe_load(config_file.read_text())
    model_cls = import_class(config["model"]["class_path"], part="model", source=config_file)
    errors = contract_errors(model_cls)
    if errors:
        raise CardError(f"{config_file}: cannot export {config['model']['class_path']}: it breaks the task "
                        f"contract of crossmedia.core.task.TaskModule: {'; '.join(errors)}")
    task = model_cls.task

    root = paths.checkout_root() or paths.home()
    checkpoints_dir = Path(checkpoints_dir or root / "checkpoints")
    zoo_dir = Path(zoo_dir or root / "zoo")
    weights_path = _inside(checkpoints_dir, f"{name}.safetensors", "name (--name)")
    card_path = _inside(_inside(zoo_dir, task, f"{model_cls.__name__}.task"), f"{name}.yaml", "name (--name)")
    import torch

    store = getattr(torch, dtype, None)
    if not isinstance(store, torch.dtype) or not store.is_floating_point:
        raise ValueError(f"dtype must name a floating torch dtype (float32, float16, bfloat16), got {dtype!r}")
    checkpoint = read_lightning_checkpoint(ckpt)
    _refuse_non_finite(checkpoint["state_dict"], ckpt, "the run diverged; refusing to export it (lower the lr, "
                       "clip gradients, or export an earlier checkpoint with --checkpoint)")
    state = {k: v.to(store) if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    _refuse_non_finite(state, ckpt, f"they overflow {dtype}; export with --dtype float32 or bfloat16")
    # init args a module only learns during fit (e.g. a caption vocabulary built from the data)
    model_config = {**config["model"], "init_args": dict(config["model"].get("init_args") or {})}
    # (None is a value: e.g. retrieval's image_features stays None on images)
    for key in model_cls.fit_hparams:
        hyper_parameters = checkpoint.get("hyper_parameters", {})
        if key not in hyper_parameters:
            raise ValueError(f"{ckpt}: the checkpoint has no hyper-parameter {key!r}, which {model_cls.__name__} "
                             f"sets during fit; was it written by {model_cls.__name__}?")
        value = hyper_parameters[key]
        model_config["init_args"][key] = list(value) if isinstance(value, tuple) else value

    trainer_keys = ("max_epochs", "max_steps", "precision", "accumulate_grad_batches", "gradient_clip_val",
                    "deterministic", "check_val_every_n_epoch", "log_every_n_steps")
    trainer = {k: config["trainer"][k] for k in trainer_keys if config.get("trainer", {}).get(k) is not None}
    card = {
        "name": name,
        "task": task,
        "default": default,
        "summary": summary or model_cls.summary,
        "paper": dict(model_cls.paper),
        "config": {"seed_everything": config.get("seed_everything"), "model": model_config,
                   "data": config["data"], "trainer": trainer},
        "weights": {"file": weights_path.name, "sha256": None, "dtype": dtype, "url": None},
        "metrics": [dict(spec, dataset=config["data"].get("init_args", {}).get("dataset", "?"), value=0.0,
                         tolerance=tolerance) for spec in model_cls.card_metrics],
        "commands": {"train": f"make train TASK={task} MODEL={name}", "eval": f"make eval MODEL={name}"},
    }
    if notes:
        card["notes"] = notes
    # Weights and a placeholder card are written to a scratch folder and measured there, by the same
    # code `zoo eval` runs; the zoo and checkpoints folders change only once that succeeded.
    with tempfile.TemporaryDirectory(prefix="crossmedia-export-") as scratch:
        scratch_weights, scratch_card = Path(scratch) / weights_path.name, Path(scratch) / card_path.name
        card["weights"]["sha256"] = save_weights(state, scratch_weights, metadata={"name": name, "dtype": dtype})
        scratch_card.write_text(yaml.safe_dump(card, sort_keys=False))
        checks = {check.key: check
                  for check in evaluate(read_card(scratch_card), weights=scratch_weights, progress=progress)}
        card["metrics"] = [spec for spec in card["metrics"] if spec["key"] in checks]  # optional ones not logged
        for spec in card["metrics"]:
            spec.pop("optional", None)
            spec["value"] = round(checks[spec["key"]].measured, 6)
        weights_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(scratch_weights, weights_path)
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card_path.write_text(yaml.safe_dump(card, sort_keys=False))
    return card_path
