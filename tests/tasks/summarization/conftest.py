"""Shared fixtures of the summarisation tests."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def summ_bench():
    """``bench/summ_eval.py`` loaded once: its reference-style loops are what the protocol tests compare against."""
    path = Path(__file__).resolve().parents[3] / "bench" / "summ_eval.py"
    spec = importlib.util.spec_from_file_location("summ_eval_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
