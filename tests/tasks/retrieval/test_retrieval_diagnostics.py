"""crossmedia.tasks.retrieval.diagnostics, whose shares the retrieval cards quote, counts by hand."""
from __future__ import annotations

import pytest

from crossmedia.tasks.retrieval.diagnostics import duplicate_shares


def test_duplicate_shares_by_hand():
    # the first two images are both "x" only: each one's caption describes the other; "y" is unique
    assert duplicate_shares([["x", "x"], ["x", "x"], ["y", "y"]], batch=3, batches=5) == (2 / 3, 2 / 3)
    # A = ["x"], B = ["x", "z"], C = ["y"]: A is always described by B; B only when it draws "x" (half the time);
    # "x" is drawn twice exactly when B draws it, for A and B: described (1 + 0.5 + 0) / 3, twice (0.5 + 0.5) / 3
    described, twice = duplicate_shares([["x"], ["x", "z"], ["y"]], batch=3, batches=400)
    assert described == pytest.approx(0.5, abs=0.04) and twice == pytest.approx(1 / 3, abs=0.04)
