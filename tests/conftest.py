"""Test defaults: W&B disabled unless a test is about logging; deterministic CPU."""
import os

import types

import pytest
import torch
from torch import nn

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", os.environ.get("CROSSMEDIA_TEST_WANDB_MODE", "disabled"))


@pytest.fixture
def one_thread():
    """In-process work on one torch thread: on a busy 2-core machine two spinning OpenMP threads
    make small models 10-50x slower, and one thread is never much slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def stub_trainer():
    """``stub_trainer(fn, datamodule=None, **more)``: the little of a Trainer that ``configure_model``,
    ``setup`` and the evaluation hooks read (``state.fn``, ``datamodule``, ``world_size``,
    ``sanity_checking``); ``more`` sets or overrides attributes (``current_epoch``, ``strategy``, ...)."""
    def make(fn, datamodule=None, **more):
        return types.SimpleNamespace(**{"state": types.SimpleNamespace(fn=fn), "datamodule": datamodule,
                                        "world_size": 1, "sanity_checking": False, **more})
    return make


@pytest.fixture
def descend():
    """``descend(loss_of_step, optimizer, steps)``: that many optimizer steps; returns the losses."""
    def run(loss_of_step, optimizer, steps):
        losses = []
        for step in range(steps):
            loss = loss_of_step(step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses
    return run


class ToyDecoder(nn.Module):
    """A GRU language model conditioned on a per-row context vector."""

    def __init__(self, vocab=7, dim=16, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed, self.cell, self.out = nn.Embedding(vocab, dim), nn.GRUCell(2 * dim, dim), nn.Linear(dim, vocab)
        self.calls = 0

    def init_state(self, ctx):
        return (ctx[0].new_zeros(ctx[0].shape[0], self.cell.hidden_size),)

    def step(self, words, state, ctx):
        self.calls += 1
        h = self.cell(torch.cat([self.embed(words), ctx[0]], 1), state[0])
        return torch.log_softmax(self.out(h) * 3, -1), (h,)


def toy_ctx(batch=6, dim=16, seed=1):
    return (torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed)),)


@pytest.fixture
def toy():
    """A tiny deterministic step decoder (``toy.decoder(seed=...)``) and contexts (``toy.ctx(batch, ...)``)."""
    return types.SimpleNamespace(decoder=ToyDecoder, ctx=toy_ctx)
