"""The training loop's guards, through the real ``crossmedia`` command and a plain Trainer.

A NaN run stops with one line naming the epoch, the step and the loss terms and leaves no NaN
checkpoint (automatic and manual optimisation); two runs of one name keep their own folders; a
live run's folder refuses a second run; ``--ckpt_path last`` resumes the latest run of a name.
Subprocess runs train CSQ on ``mini`` (96 digits, conftest.py) with one torch thread.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from torch import nn

from crossmedia.core.callbacks import FiniteLossGuard, NonFiniteError, ResumableCheckpoint
from crossmedia.core.runs import RunFolderError, claim_run_dir, latest_run_dir

# helpers

def _env(data: Path) -> dict[str, str]:
    env = {**os.environ, "CROSSMEDIA_DATA": str(data), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for key in ("CROSSMEDIA_RUN_DIR", "LOCAL_RANK", "NODE_RANK", "RANK", "CROSSMEDIA_TRACEBACK"):
        env.pop(key, None)
    return env


def _fit_args(config: Path, mini: Path, *extra: str) -> list[str]:
    """``crossmedia fit`` of conftest's tiny CSQ on ``mini``, 32 items a batch (3 steps an epoch)."""
    return [sys.executable, "-m", "crossmedia", "fit", "-c", str(config), "--data.root", str(mini),
            "--data.batch_size", "32", *extra]


def _run(args: list[str], tmp_path: Path, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=tmp_path, env=_env(data), timeout=300, capture_output=True, text=True)


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _all_finite(checkpoint: dict) -> bool:
    return all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


class _Data(pl.LightningDataModule):
    def train_dataloader(self):
        x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=8)


class _Automatic(pl.LightningModule):
    """A linear model whose loss turns NaN at batch ``nan_at`` (automatic optimisation)."""

    def __init__(self, nan_at: int):
        super().__init__()
        self.net, self.nan_at = nn.Linear(4, 1), nan_at

    def training_step(self, batch, batch_idx):
        loss = self.net(batch[0]).pow(2).mean() * (torch.nan if batch_idx == self.nan_at else 1.0)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Manual(pl.LightningModule):
    """A two-optimiser module (the GAN pattern, manual optimisation) whose discriminator loss turns
    NaN at batch ``nan_at``; with ``raw_step`` it steps the bare torch optimizers, out of Lightning's
    sight, and without ``log_d`` only the weights show the NaN."""

    def __init__(self, nan_at: int, raw_step: bool = False, log_d: bool = True):
        super().__init__()
        self.automatic_optimization = False
        self.g, self.d = nn.Linear(4, 4), nn.Linear(4, 1)
        self.nan_at, self.raw_step, self.log_d = nan_at, raw_step, log_d

    def training_step(self, batch, batch_idx):
        g_opt, d_opt = self.optimizers(use_pl_optimizer=not self.raw_step)
        d_loss = self.d(self.g(batch[0]).detach()).pow(2).mean()
        if batch_idx == self.nan_at:
            d_loss = d_loss * torch.nan
        self.log("train/g_mean", self.g(batch[0]).mean())
        if self.log_d:
            self.log("train/d_loss", d_loss)
        d_opt.zero_grad()
        self.manual_backward(d_loss)
        d_opt.step()
        g_loss = -self.d(self.g(batch[0])).mean()
        g_opt.zero_grad()
        self.manual_backward(g_loss)
        g_opt.step()

    def configure_optimizers(self):
        return torch.optim.SGD(self.g.parameters(), lr=0.01), torch.optim.SGD(self.d.parameters(), lr=0.01)


def _plain_fit(module: pl.LightningModule, tmp_path: Path, **extra) -> pl.Trainer:
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, callbacks=[FiniteLossGuard(), *extra.pop("callbacks", [])],
                         **extra)
    trainer.fit(module, datamodule=_Data())
    return trainer


# 1. the NaN guard

@pytest.mark.parametrize("module, what, step, terms", [
    (_Automatic(nan_at=3), "non-finite gradient (net.weight, net.bias)", 3, "train/loss=nan"),
    (_Manual(nan_at=2), "non-finite gradient (d.weight, d.bias)", 4, "train/d_loss=nan"),
    (_Manual(nan_at=2, raw_step=True), "non-finite loss", 0, "train/d_loss=nan"),
    (_Manual(nan_at=2, raw_step=True, log_d=False), "non-finite weights after the step (g.weight, g.bias, d.weight "
                                                    "and 1 more)", 0, "none of the step's logged values"),
], ids=["automatic", "manual", "manual-raw-optimizer", "manual-unlogged"])
def test_guard_stops_a_plain_trainer_at_the_first_nan(module, what, step, terms, tmp_path, one_thread):
    """Batch k of 8: automatic optimisation is stopped before step k's update; the manual module
    (two optimizer steps a batch) before its fifth (batch 2's discriminator step); a bare torch
    optimizer, out of Lightning's sight, when the batch ends with NaN weights (its steps are not
    counted: global step 0) by its logged loss, or by its weights when it logs none."""
    checkpoint = ResumableCheckpoint(dirpath=tmp_path / "checkpoints", every_n_train_steps=1)
    with pytest.raises(NonFiniteError) as caught:
        _plain_fit(module, tmp_path, callbacks=[checkpoint])
    message = str(caught.value)
    assert message.startswith(f"{what} at epoch 0, global step {step}; loss terms: ")
    assert terms in message and "\n" not in message
    last = tmp_path / "checkpoints" / "last.ckpt"
    if step:  # the last finite state is kept, never the NaN one
        assert _ckpt(last)["global_step"] == step and _all_finite(_ckpt(last))
    else:
        assert not last.exists()


def test_guard_lets_a_finite_run_finish(tmp_path, one_thread):
    trainer = _plain_fit(_Automatic(nan_at=-1), tmp_path)
    assert trainer.global_step == 8 and trainer.state.finished


@pytest.mark.slow
def test_nan_run_stops_with_one_line_and_leaves_no_nan_checkpoint(tmp_path, tiny_csq, hashing_data, mini):
    """The issue's command: CSQ at lr 1e9 goes NaN in its second step (BatchNorm statistics of the
    diverged weights, then every gradient)."""
    args = _fit_args(tiny_csq, mini, "--model.init_args.lr=1e9", "--trainer.max_epochs=2",
                     "--trainer.limit_train_batches=5", "--checkpoint_every_n_steps=1", "--run_name", "nan")
    proc = _run(args, tmp_path, hashing_data)
    assert proc.returncode == 1, proc.stderr[-4000:]
    last_line = proc.stderr.strip().splitlines()[-1]
    assert last_line.startswith("crossmedia fit: non-finite gradient (net.")
    assert "at epoch 0, global step 1; loss terms: " in last_line and "train/loss=nan" in last_line
    assert "Traceback" not in proc.stderr
    checkpoints = list((tmp_path / "runs").rglob("*.ckpt"))
    assert checkpoints == [tmp_path / "runs" / "nan" / "checkpoints" / "last.ckpt"]
    kept = _ckpt(checkpoints[0])
    assert kept["global_step"] == 1 and _all_finite(kept)  # the state before the NaN step

    # with the guard off the run trains on, but last.ckpt is never replaced by NaN weights
    off = _run(args[:-1] + ["nan-off", "--stop_on_non_finite=false"], tmp_path, hashing_data)
    assert off.returncode == 0, off.stderr[-4000:]
    assert "checkpoints/last.ckpt not refreshed at global step 2: the weights are not finite" in off.stderr
    kept = _ckpt(tmp_path / "runs" / "nan-off" / "checkpoints" / "last.ckpt")
    assert kept["global_step"] == 1 and _all_finite(kept)


# 2. run folders

def test_run_folders_are_numbered_and_resume_finds_the_latest(tmp_path, monkeypatch):
    from crossmedia.core import runs as run_folders

    monkeypatch.setenv(run_folders.ENV, "")  # restored after the test: claiming sets it
    monkeypatch.setattr(run_folders, "_held", held := [])
    runs = tmp_path / "runs"
    (runs / "csq" / "checkpoints").mkdir(parents=True)
    (runs / "csq" / "config.yaml").write_text("{}")
    (runs / "csq-10").mkdir()  # empty: no run
    (runs / "csq-extra").mkdir()  # another name
    assert claim_run_dir(runs=runs, name="csq", root=None, resume=False) == runs / "csq-2"
    assert latest_run_dir(runs, "csq") is None  # no last.ckpt anywhere yet
    for folder in ("csq", "csq-3"):
        (runs / folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        (runs / folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert latest_run_dir(runs, "csq") == runs / "csq-3"  # 3 > 1; csq-10 has no last.ckpt
    assert claim_run_dir(runs=runs, name="csq", root=None, resume=False) == runs / "csq-4"  # csq-2 is ours, live
    with pytest.raises(RunFolderError, match=r"csq\b.* already holds a run \(its config.yaml\): resume it with "
                                             r"--ckpt_path last"):
        claim_run_dir(runs=runs, name="x", root=runs / "csq", resume=False)
    with pytest.raises(RunFolderError, match=rf"csq-2 is in use by a live run \({os.getpid()}@"):
        claim_run_dir(runs=runs, name="x", root=runs / "csq-2", resume=True)
    assert [Path(h.name).parent.name for h in held] == ["csq-2", "csq-4"]
    for handle in held:
        handle.close()


@pytest.mark.slow
def test_same_name_runs_keep_their_own_folders_and_resume_takes_the_latest(tmp_path, tiny_csq, hashing_data, mini):
    procs = [subprocess.Popen(_fit_args(tiny_csq, mini, "--run_name", "same", "--data.batch_size", str(size)),
                              cwd=tmp_path, env=_env(hashing_data), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for size in (32, 16)]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["same", "same-2"]
    sizes = {}
    for folder in runs.iterdir():
        size = yaml.safe_load((folder / "config.yaml").read_text())["data"]["init_args"]["batch_size"]
        # the checkpoint next to the config is that config's run: 96 items / batch size steps
        assert _ckpt(folder / "checkpoints" / "last.ckpt")["global_step"] == 96 // size
        sizes[folder.name] = size
    assert sorted(sizes.values()) == [16, 32]
    assert not list(runs.rglob(".*.tmp"))

    size = sizes["same-2"]
    resumed = _run(_fit_args(tiny_csq, mini, "--run_name", "same", "--data.batch_size", str(size),
                             "--ckpt_path", "last", "--trainer.max_epochs", "2"), tmp_path, hashing_data)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    latest = runs / "same-2" / "checkpoints" / "last.ckpt"
    assert f"Restoring states from the checkpoint path at {latest}" in resumed.stdout + resumed.stderr
    assert _ckpt(latest)["global_step"] == 2 * 96 // size
    assert _ckpt(runs / "same" / "checkpoints" / "last.ckpt")["global_step"] == 96 // sizes["same"]
    assert sorted(p.name for p in runs.iterdir()) == ["same", "same-2"]


HOLD = """\
import sys, time
from pathlib import Path
from crossmedia.core.runs import claim_run_dir
claim_run_dir(runs=Path("runs"), name="x", root=sys.argv[1], resume=False)
print("holding", flush=True)
time.sleep(300)
"""


@pytest.mark.slow
def test_a_live_run_refuses_a_second_and_a_finished_one_a_fresh_one(tmp_path, tiny_csq, hashing_data, mini):
    folder = tmp_path / "shared-run"
    args = _fit_args(tiny_csq, mini, "--trainer.default_root_dir", str(folder))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=tmp_path, env=_env(hashing_data),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        refused = _run(args, tmp_path, hashing_data)
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines()[-1] == (
            f"crossmedia fit: {folder} is in use by a live run ({holder.pid}@{os.uname().nodename}): wait for it "
            "to end, or choose another --run_name or --trainer.default_root_dir")
    finally:
        holder.kill()
        holder.wait(timeout=60)
    time.sleep(0.1)
    first = _run(args, tmp_path, hashing_data)  # the dead holder's lock is no obstacle
    assert first.returncode == 0, first.stderr[-4000:]
    again = _run(args, tmp_path, hashing_data)
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1] == (
        f"crossmedia fit: {folder} already holds a run (its config.yaml): resume it with --ckpt_path last, "
        "or choose another --trainer.default_root_dir")
    assert _ckpt(folder / "checkpoints" / "last.ckpt")["global_step"] == 3  # the first run's, untouched
