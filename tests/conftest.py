"""Test defaults: W&B disabled unless a test is about logging; deterministic CPU."""
import os

import types

import pytest
import torch
from torch import nn

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

if os.environ.get("PYTEST_XDIST_WORKER"):  # make test runs pytest-xdist workers side by side: one thread
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # each, in them and in the processes they start, as
    torch.set_num_threads(1)  # two workers each spinning two OpenMP threads on two cores crawl


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


# built-in hashing data for tests that train through the real command

TINY_CSQ = """\
seed_everything: 0
model:
  class_path: crossmedia.tasks.hashing.module.CSQModule
  init_args: {num_classes: 10, bits: 16, backbone: test_resnet, hidden: 64}
data:
  class_path: crossmedia.tasks.hashing.data.HashingDataModule
  init_args: {dataset: digits, batch_size: 64}
trainer: {max_epochs: 1, enable_progress_bar: false, enable_model_summary: false}
"""
MINI_SIZES = {"train": 96, "query": 24, "database": 96}  # digits has 1000 / 300 / 1497


@pytest.fixture
def tiny_csq(tmp_path):
    """A LightningCLI config file (``TINY_CSQ``): CSQ with a tiny ResNet on ``digits``, one epoch."""
    path = tmp_path / "csq-small.yaml"
    path.write_text(TINY_CSQ)
    return path


@pytest.fixture(scope="session")
def hashing_data(tmp_path_factory):
    """CROSSMEDIA_DATA for the session: the built-in ``digits`` set, generated once."""
    from crossmedia.data.registry import prepare

    root = tmp_path_factory.mktemp("crossmedia_data")
    prepare("digits", root=root / "digits", progress=False)
    return root


@pytest.fixture(scope="session")
def mini(hashing_data, tmp_path_factory):
    """A hand-made DeepHash folder (no meta.json): the first items of each digits split
    (``MINI_SIZES``), with absolute image paths. ``--data.root`` points a run at it."""
    root = tmp_path_factory.mktemp("mini_digits")
    digits = hashing_data / "digits"
    for split, n in MINI_SIZES.items():
        rows = [line.split(maxsplit=1) for line in (digits / f"{split}.txt").read_text().splitlines()[:n]]
        (root / f"{split}.txt").write_text("".join(f"{digits / path} {labels}\n" for path, labels in rows))
    return root


@pytest.fixture(scope="session")
def tiny_puppets(tmp_path_factory):
    """A tiny built-in ``puppets`` copy (27 clips x 16 frames, 3 per action: one each in train, val and test),
    shared by the posevideo and classify tests."""
    from crossmedia.data.builtin.puppets import make_puppets

    return make_puppets(tmp_path_factory.mktemp("puppets") / "puppets", num_clips=27, frames=16, progress=False)
