"""Task-agnostic callbacks: media samples written to the run folder and logged to W&B, a
checkpoint that keeps ``last.ckpt`` fresh and finite, and a guard that stops a run at its first
non-finite loss."""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_warn
from torch.nn.utils import get_total_norm

__all__ = ["MediaCallback", "ResumableCheckpoint", "FiniteLossGuard", "NonFiniteError", "run_dir"]


def run_dir(trainer: pl.Trainer) -> Path:
    """The run folder (``trainer.default_root_dir``): config, checkpoints/, samples/."""
    return Path(trainer.default_root_dir)


class MediaCallback(pl.Callback):
    """Base for a task's sample logger: ``save_image`` writes a PNG and logs it as media.

    Subclasses build pictures (PIL images or matplotlib figures) in a hook such as
    ``on_validation_epoch_end`` and hand them to :meth:`save_image`; people without W&B find
    the same files in ``<run>/samples/``.
    """

    def save_image(self, trainer: pl.Trainer, key: str, image, *, caption: str | None = None) -> Path | None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return None
        if hasattr(image, "savefig"):  # a matplotlib figure
            import io

            import matplotlib.pyplot as plt
            from PIL import Image

            buffer = io.BytesIO()
            image.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
            plt.close(image)
            buffer.seek(0)
            image = Image.open(buffer).convert("RGB")
        folder = run_dir(trainer) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{key.replace('/', '_')}_epoch{trainer.current_epoch:03d}.png"
        image.save(path)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):  # WandbLogger
                extra = {"caption": [caption]} if caption else {}
                logger.log_image(key=key, images=[image], step=trainer.global_step, **extra)
        return path


# non-finite training

class NonFiniteError(FloatingPointError):
    """Training produced a NaN or infinite loss, gradient or weight (raised by FiniteLossGuard)."""


def _first_nonfinite(named: list[tuple[str, torch.Tensor]]) -> list[str]:
    """Names whose tensor holds a NaN or inf, from one device sync (max |x| propagates NaN and inf)."""
    tensors = [t.detach() for _, t in named]
    if not tensors or bool(get_total_norm(tensors, norm_type=math.inf).isfinite()):
        return []
    return [name for name, t in named if not bool(torch.isfinite(t.detach()).all())]


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _floats(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Floating-point parameters and buffers (BatchNorm statistics go NaN too)."""
    return [(n, t) for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_floating_point()]


def _step_values(trainer: pl.Trainer, outputs=None) -> dict[str, torch.Tensor]:
    """What this training step returned and logged so far, by name (``self.log`` of the step).

    ``trainer.callback_metrics`` only receives a step's values after ``on_train_batch_end``, so the
    step's own are read from the running result collection (``trainer._results``).
    """
    values = {}
    if isinstance(outputs, torch.Tensor):
        values["loss (returned)"] = outputs
    elif isinstance(outputs, dict):
        values.update({f"{k} (returned)": v for k, v in outputs.items()})
    results = getattr(trainer, "_results", None)
    try:
        logged = results.metrics(True)["callback"] if results is not None else {}
    except (AttributeError, KeyError, RuntimeError):  # a Lightning that keeps its results elsewhere
        logged = {}
    values.update(logged)
    return {k: v for k, v in values.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel() == 1}


class FiniteLossGuard(pl.Callback):
    """Stops training at the first non-finite loss, gradient or weight, with an error naming where.

    Checked on every training batch, for automatic and manual optimisation alike:
    gradients before each optimizer step (``on_before_optimizer_step`` runs for manual
    ``optimizer.step()`` too; skipped under a fp16 GradScaler, whose inf gradients are expected
    and make it skip the step), then after the batch the returned loss, every logged value whose
    name holds ``loss``, and the weights. The error (:class:`NonFiniteError`) names the epoch, the
    global step and every non-finite value of the step; ``crossmedia fit`` prints it as one line
    and exits 1, and :class:`ResumableCheckpoint` keeps the last finite ``last.ckpt``. The cost is
    one device sync per check (a max over all tensors).
    """

    def _stop(self, trainer: pl.Trainer, what: str, values: dict[str, torch.Tensor]) -> None:
        bad = {k: float(v) for k, v in values.items() if not math.isfinite(float(v))}
        terms = ", ".join(f"{k}={v}" for k, v in bad.items()) or "none of the step's logged values is non-finite"
        raise NonFiniteError(f"non-finite {what} at epoch {trainer.current_epoch}, global step "
                             f"{trainer.global_step}; loss terms: {terms}. Lower the learning rate, clip "
                             "gradients (--trainer.gradient_clip_val) or check the data of this step")

    def _any(self, trainer: pl.Trainer, decision: bool) -> bool:
        """True on every process if it is true on one, so that all ranks stop together."""
        return trainer.strategy.reduce_boolean_decision(decision, all=False) if trainer.world_size > 1 else decision

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        grads = [(n, p.grad) for n, p in pl_module.named_parameters() if id(p) in ids and p.grad is not None]
        bad = _first_nonfinite(grads)
        if self._any(trainer, bool(bad)):
            self._stop(trainer, f"gradient ({_some(bad) or 'on another process'})", _step_values(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        values = _step_values(trainer, outputs)
        losses = _first_nonfinite([(k, v) for k, v in values.items() if "loss" in k.lower()])
        weights = [] if losses else _first_nonfinite(_floats(pl_module))
        if self._any(trainer, bool(losses or weights)):
            self._stop(trainer, "loss" if losses or not weights else f"weights after the step ({_some(weights)})",
                       values)


class ResumableCheckpoint(ModelCheckpoint):
    """Keeps ``<run>/checkpoints/last.ckpt`` fresh so that a killed run loses little.

    It is rewritten every ``every_n_train_steps`` steps (mid-epoch), at each epoch end, at the
    end of training and when training stops on an exception (Ctrl-C included). Each write goes
    to a temporary file of this process (``.last.ckpt.<pid>.tmp``) that then replaces ``last.ckpt``
    in one step, so a kill during the write leaves the previous checkpoint intact. Weights that are
    not finite are never written: ``last.ckpt`` stays the last finite state, with a warning.
    ``fit --ckpt_path last`` finds it.
    """

    def __init__(self, *, dirpath: str | Path, every_n_train_steps: int = 50):
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0)
        self.every = max(0, int(every_n_train_steps))

    @property
    def last_path(self) -> Path:
        return Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"

    def write_last(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
            return
        finite = not _first_nonfinite(_floats(trainer.lightning_module))
        if not trainer.strategy.reduce_boolean_decision(finite, all=True):
            rank_zero_warn(f"{self.last_path} not refreshed at global step {trainer.global_step}: the weights "
                           "are not finite; it keeps the last finite state")
            self._last_global_step_saved = trainer.global_step
            return
        tmp = self.last_path.with_name(f".{self.last_path.name}.{os.getpid()}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # collective: every rank calls it, rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.last_path)
        self.last_model_path = str(self.last_path)
        self._last_global_step_saved = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every and trainer.global_step % self.every == 0 and trainer.global_step != self._last_global_step_saved:
            self.write_last(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.write_last(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        pass

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step != self._last_global_step_saved:
            self.write_last(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        if trainer.global_step != self._last_global_step_saved:
            self.write_last(trainer)
