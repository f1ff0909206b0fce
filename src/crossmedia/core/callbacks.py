"""Task-agnostic callbacks: media samples written to the run folder and logged to W&B."""
from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

__all__ = ["MediaCallback", "ResumableCheckpoint", "run_dir"]


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


class ResumableCheckpoint(ModelCheckpoint):
    """Keeps ``<run>/checkpoints/last.ckpt`` fresh so that a killed run loses little.

    It is rewritten every ``every_n_train_steps`` steps (mid-epoch), at each epoch end, at the
    end of training and when training stops on an exception (Ctrl-C included). Each write goes
    to a temporary file that then replaces ``last.ckpt`` in one step, so a kill during the write
    leaves the previous checkpoint intact. ``fit --ckpt_path last`` finds it.
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
        tmp = self.last_path.with_name(f".{self.last_path.name}.tmp")
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
