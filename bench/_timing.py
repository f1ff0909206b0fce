"""Shared by the benchmarks: the fastest of several timed runs, and a module's training step as a callable."""
from __future__ import annotations

import time


def best_time(fn, repeats: int):
    """(result, fastest wall time in seconds) over ``repeats`` runs."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, min(times)


def training_step(model, optimizer, batch, *, seed: int | None = None):
    """``step() -> loss``: one ``model.training_step(batch, 0)``, backward and optimizer step
    (``torch.manual_seed(seed)`` first when given, for steps that sample)."""
    import torch

    def step() -> float:
        if seed is not None:
            torch.manual_seed(seed)
        loss = model.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step
