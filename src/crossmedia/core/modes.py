"""Module mode helpers."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the ``with`` block, then restore the mode it had.

        with eval_mode(model):
            codes = model(images)
    """
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
