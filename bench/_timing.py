"""Shared by the benchmarks: the fastest of several timed runs."""
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
