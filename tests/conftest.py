"""Test defaults: W&B disabled unless a test is about logging; deterministic CPU."""
import os

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", os.environ.get("CROSSMEDIA_TEST_WANDB_MODE", "disabled"))
