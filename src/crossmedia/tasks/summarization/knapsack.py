"""0/1 knapsack by dynamic programming, the shot selector of the keyshot summarisation protocol.

Given items with values :math:`v_i` and integer weights :math:`w_i`, choose a subset
:math:`S` maximising :math:`\\sum_{i \\in S} v_i` subject to :math:`\\sum_{i \\in S} w_i \\le C`.
The classic table :math:`T[i, c]` (best value using the first :math:`i` items within capacity
:math:`c`) is filled item by item::

    T[i, c] = v_i + T[i-1, c - w_i]   if w_i <= c and v_i + T[i-1, c - w_i] > T[i-1, c]
    T[i, c] = T[i-1, c]               otherwise

and the chosen items are read back from :math:`c = C`, last item first. Here each item's row is
one vectorised numpy step over all capacities at once (O(n) Python steps instead of O(n C)).

Matching the reference (``knapsack_dp`` in KaiyangZhou's pytorch-vsumm-reinforce, which every
SumMe/TVSum number in the literature goes through) number for number:

- the table is stored in float32, while the candidate ``v_i + T[i-1, c - w_i]`` is formed and
  compared in float64, as the reference does under NumPy 1.x (a NumPy float32 scalar plus a
  Python float was float64 before NEP 50);
- an item is taken only when it is *strictly* better, so ties keep the lower-numbered items
  (the solution without item ``i`` wins a tie at row ``i``);
- values may be any floats (NaN never wins a comparison); weights must be integers >= 0.

Where the reference asserts (no items, capacity 0) we return the obvious answer instead: no items
gives ``[]``, capacity 0 can only hold weight-0 items with a positive value.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["knapsack_select", "knapsack_select_many"]


# helpers

def _as_weights(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights)
    if weights.size and not np.issubdtype(weights.dtype, np.integer):
        if not np.all(np.isfinite(weights)) or np.any(weights != np.round(weights)):
            raise ValueError(f"knapsack weights must be integers, got {weights.dtype} values such as "
                             f"{weights.ravel()[:3].tolist()}")
    weights = weights.astype(np.int64)
    if np.any(weights < 0):
        raise ValueError(f"knapsack weights must be >= 0, got {int(weights.min())}")
    return weights


# functions

def knapsack_select_many(values: np.ndarray, weights: np.ndarray, capacities: Sequence[int] | np.ndarray,
                         *, num_items: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Solve ``B`` independent knapsacks at once; returns the chosen items as a mask (B, n) bool.

    ``values`` (B, n) float, ``weights`` (B, n) int >= 0 and ``capacities`` (B,) int >= 0; row ``b``
    uses its first ``num_items[b]`` items (all ``n`` by default; the rest is padding and never
    chosen). Every row gives exactly what :func:`knapsack_select` gives for it alone: the table of
    row ``b`` at capacity ``c`` only depends on capacities ``<= c``, so sharing one table width
    ``max(capacities)`` changes nothing.
    """
    values = np.asarray(values, dtype=np.float64)
    weights = _as_weights(weights)
    capacities = np.asarray(capacities, dtype=np.int64).reshape(-1)
    if values.ndim != 2 or values.shape != weights.shape or len(capacities) != values.shape[0]:
        raise ValueError(f"expected values (B, n), weights (B, n) and capacities (B,), got "
                         f"{values.shape}, {weights.shape} and {capacities.shape}")
    if np.any(capacities < 0):
        raise ValueError(f"knapsack capacities must be >= 0, got {int(capacities.min())}")
    batch, n = values.shape
    num_items = np.full(batch, n) if num_items is None else np.asarray(num_items, dtype=np.int64).reshape(-1)
    # rows sorted by item count, so that item i only touches the leading rows that have it
    order = np.argsort(-num_items, kind="stable")
    values, weights, capacities = values[order], weights[order], capacities[order]
    active = np.searchsorted(-num_items[order], -np.arange(n), side="left")  # rows having item i
    width = int(capacities.max(initial=0)) + 1
    shifted = np.arange(1, width + 1)  # (W,) c + 1: column c of the table sits at c + 1 below
    # T[i-1, c] in float64 holding float32-rounded values, behind one column of -inf ("does not fit")
    table = np.zeros((batch, width + 1))  # (B, 1 + W)
    table[:, 0] = -np.inf
    keep = np.zeros((n, batch, width), dtype=bool)  # (n, B, W)
    for i in range(n):
        k = int(active[i])
        rows = table[:k]  # (k, 1 + W) a view
        # (k, W) column of T[i-1, c - w_i], or 0 (the -inf column) when the item does not fit
        source = np.maximum(shifted[None, :] - np.minimum(weights[:k, i, None], width), 0)
        candidate = np.take_along_axis(rows, source, axis=1)  # (k, W) T[i-1, c - w_i]
        candidate += values[:k, i, None]  # in float64, as the reference compares
        take = np.greater(candidate, rows[:, 1:], out=keep[i, :k])  # strict: ties keep the solution without item i
        np.copyto(rows[:, 1:], candidate.astype(np.float32), where=take)  # the table stores float32
    chosen = np.zeros((batch, n), dtype=bool)
    remaining = capacities.copy()  # (B,)
    for i in range(n - 1, -1, -1):
        picked = keep[i, np.arange(batch), remaining]  # (B,)
        chosen[:, i] = picked
        remaining = remaining - np.where(picked, weights[:, i], 0)
    unsorted = np.empty_like(chosen)
    unsorted[order] = chosen
    return unsorted


def knapsack_select(values: Sequence[float] | np.ndarray, weights: Sequence[int] | np.ndarray,
                    capacity: int) -> list[int]:
    """Indices (ascending) of the items a 0/1 knapsack of ``capacity`` takes, by dynamic programming.

    ``values`` (n,) float, ``weights`` (n,) int >= 0, ``capacity`` int >= 0. Ties are broken as in
    the reference ``knapsack_dp``; see the module docstring.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    weights = np.asarray(weights).reshape(-1)
    if len(values) != len(weights):
        raise ValueError(f"{len(values)} values but {len(weights)} weights")
    if int(capacity) != capacity or capacity < 0:
        raise ValueError(f"knapsack capacity must be an integer >= 0, got {capacity!r}")
    if len(values) == 0:
        return []
    chosen = knapsack_select_many(values[None, :], weights[None, :], [int(capacity)])  # (1, n)
    return np.flatnonzero(chosen[0]).tolist()
