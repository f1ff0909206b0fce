"""Task-agnostic callbacks: media samples written to the run folder and logged to W&B."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

__all__ = ["MediaCallback", "run_dir"]


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
                logger.log_image(key=key, images=[image], caption=[caption] if caption else None,
                                 step=trainer.global_step)
        return path
