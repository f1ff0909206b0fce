"""manual_step: accumulation that equals one whole-batch step, today's update at accumulate=1, toggling for GANs."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from crossmedia.core.manual import is_step_batch, manual_step

X = torch.randn(12, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # (12, 3)
Y = X @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + 0.3  # (12, 1)


def _net() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(3, 1).double()


class Regression(pl.LightningModule):
    """A mean-squared-error regression trained by manual_step."""

    def __init__(self, *, accumulate: int = 1, clip_val: float | None = None, optimizer: str = "sgd"):
        super().__init__()
        self.automatic_optimization = False
        self.net, self.accumulate, self.clip_val, self.optimizer_name = _net(), accumulate, clip_val, optimizer
        self.steps = 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt = self.optimizers()
        before = [p.detach().clone() for p in self.net.parameters()]
        manual_step(self, opt, lambda: ((self.net(x) - y) ** 2).mean(), batch_idx=batch_idx,
                    accumulate=self.accumulate, clip_val=self.clip_val)
        self.steps += any(not torch.equal(a, p) for a, p in zip(before, self.net.parameters()))

    def configure_optimizers(self):
        if self.optimizer_name == "adam":
            return torch.optim.Adam(self.parameters(), lr=0.05, weight_decay=1e-3)
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(model: pl.LightningModule, batch_size: int, *, rows: int = 4, epochs: int = 1) -> pl.LightningModule:
    data = DataLoader(TensorDataset(X[:rows], Y[:rows]), batch_size=batch_size, shuffle=False)
    pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, accelerator="cpu", callbacks=[]).fit(model, data)
    return model


def test_two_accumulated_half_batches_step_like_one_whole_batch():
    halves = _fit(Regression(accumulate=2), batch_size=2)
    whole = _fit(Regression(accumulate=1), batch_size=4)
    assert halves.steps == whole.steps == 1
    for a, b in zip(halves.net.parameters(), whole.net.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)  # float64: equal but for summation order
    start = _net()
    assert not torch.allclose(start.weight, whole.net.weight)  # the step did move the weights


def test_accumulate_1_is_todays_zero_grad_backward_clip_step_exactly():
    model = _fit(Regression(accumulate=1, clip_val=0.5, optimizer="adam"), batch_size=2, rows=12, epochs=2)
    net = _net()  # the same start, trained by the hand-written loop manual_step replaces
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(2):
        for x, y in zip(X.split(2), Y.split(2)):
            optimizer.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
            optimizer.step()
    assert model.steps == 12
    for a, b in zip(model.net.parameters(), net.parameters()):
        assert torch.equal(a, b)  # bit for bit


def test_the_epochs_last_batch_always_steps():
    model = _fit(Regression(accumulate=2), batch_size=2, rows=6)  # 3 batches: steps after batches 1 and 2
    assert model.steps == 2
    assert all(p.grad is None for p in model.net.parameters())  # nothing carried into the next epoch
    assert [is_step_batch(None, i, 3) for i in range(6)] == [False, False, True, False, False, True]
    with pytest.raises(ValueError, match="accumulate_grad_batches must be an integer >= 1, got 0"):
        is_step_batch(None, 0, 0)


class TinyGAN(pl.LightningModule):
    """A generator and a discriminator stepped by manual_step with accumulate=2, as the module docstring shows."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        torch.manual_seed(0)
        self.generator, self.discriminator = nn.Linear(2, 3).double(), nn.Linear(3, 1).double()
        self.seen: dict[str, bool] = {}

    def training_step(self, batch, batch_idx):
        real, _ = batch
        opt_g, opt_d = self.optimizers()
        fake = self.generator(real[:, :2])

        def g_loss():
            self.seen["d_requires_grad_in_g_step"] = self.discriminator.weight.requires_grad
            return {"total": -self.discriminator(fake).mean()}

        out = manual_step(self, opt_g, g_loss, batch_idx=batch_idx, accumulate=2)
        if batch_idx == 0:  # not a step batch: gradients stay for the next batch to add to
            self.seen["g_loss_is_unscaled"] = bool(torch.equal(out["total"], -self.discriminator(fake).mean()))
            self.seen["g_grad_kept"] = self.generator.weight.grad is not None
            self.seen["no_d_grad_from_g_loss"] = self.discriminator.weight.grad is None
            g_grad = self.generator.weight.grad.clone()
        manual_step(self, opt_d, lambda: self.discriminator(fake.detach()).mean() - self.discriminator(real).mean(),
                    batch_idx=batch_idx, accumulate=2)
        if batch_idx == 0:
            self.seen["d_step_keeps_g_grad"] = bool(torch.equal(self.generator.weight.grad, g_grad))

    def configure_optimizers(self):
        return [torch.optim.SGD(self.generator.parameters(), lr=0.1),
                torch.optim.SGD(self.discriminator.parameters(), lr=0.1)]


def test_generator_step_leaves_no_gradient_on_the_discriminator():
    model = _fit(TinyGAN(), batch_size=2, rows=4)  # two batches, one step each
    assert model.seen == {"d_requires_grad_in_g_step": False, "g_loss_is_unscaled": True, "g_grad_kept": True,
                          "no_d_grad_from_g_loss": True, "d_step_keeps_g_grad": True}
    assert model.discriminator.weight.requires_grad and model.generator.weight.requires_grad  # untoggled
    assert model.generator.weight.grad is None and model.discriminator.weight.grad is None  # stepped and zeroed


class SometimesIdle(pl.LightningModule):
    """Two regressions on two optimisers; the second has a loss on batch 0 only (a split that skips batch 1)."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.first, self.second = _net(), _net()

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt_first, opt_second = self.optimizers()
        manual_step(self, opt_first, lambda: ((self.first(x) - y) ** 2).mean(), batch_idx=batch_idx, accumulate=2)
        loss = (lambda: ((self.second(x) - y) ** 2).mean()) if batch_idx == 0 else None
        manual_step(self, opt_second, loss, batch_idx=batch_idx, accumulate=2)

    def configure_optimizers(self):
        return [torch.optim.SGD(self.first.parameters(), lr=0.1), torch.optim.SGD(self.second.parameters(), lr=0.1)]


def test_an_idle_optimiser_still_applies_what_it_accumulated():
    model = _fit(SometimesIdle(), batch_size=2)  # batch 1 is the step batch; the second net is idle there
    expected = _net()
    optimizer = torch.optim.SGD(expected.parameters(), lr=0.1)
    (((expected(X[:2]) - Y[:2]) ** 2).mean() / 2).backward()  # batch 0's gradient, scaled by 1/2
    optimizer.step()
    for a, b in zip(model.second.parameters(), expected.parameters()):
        assert torch.equal(a, b)
    assert all(p.grad is None for p in model.parameters())
