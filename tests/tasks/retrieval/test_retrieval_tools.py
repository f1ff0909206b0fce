"""tools/retrieval_duplicate_captions.py, whose shares the retrieval cards quote, counts by hand."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).parents[3] / "tools" / "retrieval_duplicate_captions.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("retrieval_duplicate_captions", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_duplicate_shares_by_hand(tool):
    # the first two images are both "x" only: each one's caption describes the other; "y" is unique
    assert tool.duplicate_shares([["x", "x"], ["x", "x"], ["y", "y"]], batch=3, batches=5) == (2 / 3, 2 / 3)
    # A = ["x"], B = ["x", "z"], C = ["y"]: A is always described by B; B only when it draws "x" (half the time);
    # "x" is drawn twice exactly when B draws it, for A and B: described (1 + 0.5 + 0) / 3, twice (0.5 + 0.5) / 3
    described, twice = tool.duplicate_shares([["x"], ["x", "z"], ["y"]], batch=3, batches=400)
    assert described == pytest.approx(0.5, abs=0.04) and twice == pytest.approx(1 / 3, abs=0.04)
