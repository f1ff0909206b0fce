"""Summarisation LightningModules: per-split training, the 5-split protocol, zoo entries."""
import copy

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from crossmedia import zoo
from crossmedia.data.keyshots import generate_summary
from crossmedia.tasks.summarization.data import SummarizationDataModule
from crossmedia.tasks.summarization.metrics import evaluate_summary
from crossmedia.tasks.summarization.models import discriminator_losses, generator_losses
from crossmedia.tasks.summarization.module import CycleSUMModule, SumGDAModule

SUMMARIZATION = [e.name for e in zoo.list_models(task="summarization")]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """10 SumMe-like videos of 64-d features, 5 splits, in a private data root."""
    from crossmedia.data.builtin.videosumm import make_videosumm

    root = tmp_path_factory.mktemp("summ") / "tiny-summe"
    make_videosumm(root, variant="summe", seed=1, dim=64, num_videos=10, progress=False)
    return root


def _trainer(**kwargs):
    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


def test_each_split_network_trains_only_on_its_own_training_videos(small_data):
    dm = SummarizationDataModule(dataset="tiny-summe", root=str(small_data), reduction="max")
    dm.setup()
    for item in dm.train_set:
        assert not (item["train_in"] & item["test_in"]).any()  # never trained where it is tested
    pl.seed_everything(0)
    model = SumGDAModule(in_dim=64, hidden=32, dropout=0.0)
    model.configure_callbacks = lambda: []
    before = [p.detach().clone() for p in model.nets[0].parameters()]
    only = dm.train_set[0]
    batch = {**only, "features": only["features"][None], "gtscore": only["gtscore"][None]}
    batch["train_in"] = torch.tensor([False, True, False, False, False])
    optimizer = model.configure_optimizers()
    optimizer.zero_grad()
    model.training_step(batch, 0).backward()
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.nets[0].parameters()))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.nets[1].parameters())


def test_supervised_loss_falls_and_test_loop_follows_the_protocol(small_data):
    dm = SummarizationDataModule(dataset="tiny-summe", root=str(small_data), reduction="max")
    pl.seed_everything(0)
    model = SumGDAModule(in_dim=64, hidden=32, dropout=0.0, lr=3e-3)
    model.configure_callbacks = lambda: []
    trainer = _trainer(max_epochs=6, limit_val_batches=0)
    first = None

    class Track(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            nonlocal first
            loss = trainer.callback_metrics["train/total"].item()
            first = loss if first is None else first
            self.last = loss

    track = Track()
    trainer.callbacks.append(track)
    trainer.fit(model, datamodule=dm)
    assert track.last < 0.6 * first
    result = trainer.test(model, datamodule=dm, verbose=False)[0]
    # recompute split 0 by hand with the functional protocol
    by_hand = []
    for item in dm.test_set:
        if item["test_in"][0]:
            scores = model.scores(model.nets[0], item["features"][None])[0].detach().numpy()
            machine = generate_summary(scores, item["change_points"].numpy(), item["n_frames"],
                                       item["n_frame_per_seg"].numpy(), item["picks"].numpy())
            by_hand.append(evaluate_summary(machine, item["user_summary"].numpy(), reduction="max")[0])
    assert result["test/F_split0"] == pytest.approx(np.mean(by_hand), abs=1e-6)
    splits = [result[f"test/F_split{s}"] for s in range(5)]
    assert result["test/F"] == pytest.approx(np.mean(splits), abs=1e-6)
    assert result["test/F_std"] == pytest.approx(np.std(splits), abs=1e-6)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_cycle_sum_trains_with_two_optimisers(small_data, accumulate):
    dm = SummarizationDataModule(dataset="tiny-summe", root=str(small_data), reduction="max")
    pl.seed_everything(0)
    model = CycleSUMModule(in_dim=64, hidden=16, latent=8, accumulate_grad_batches=accumulate)
    model.configure_callbacks = lambda: []
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0).fit(model, datamodule=dm)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(".selector." in k for k in changed) and any(".disc_" in k for k in changed), changed
    assert all(p.grad is None for p in model.parameters())  # every accumulated gradient was applied


class _CycleSUMAsBefore(CycleSUMModule):
    """Cycle-SUM's training step as it was written before manual_step: one generator and one
    discriminator optimiser over all splits, zero_grad / backward / clip / step by hand, the last
    split's losses logged."""

    def training_step(self, batch, batch_idx):
        opt_g, opt_d = self.optimizers()
        features = batch["features"]
        for s in batch["train_in"].nonzero().flatten().tolist():
            net = self.nets[s]
            outputs = net.cycle(features)
            self.toggle_optimizer(opt_g)
            g_losses = generator_losses(net, features, outputs=outputs, budget=self.hparams.proportion,
                                        representativeness_weight=self.hparams.representativeness_weight,
                                        repelling_weight=self.hparams.repelling_weight)
            opt_g.zero_grad()
            self.manual_backward(g_losses["total"])
            self.clip_gradients(opt_g, gradient_clip_val=self.hparams.gradient_clip, gradient_clip_algorithm="norm")
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            self.toggle_optimizer(opt_d)
            d_losses = discriminator_losses(net, features, outputs=outputs)
            opt_d.zero_grad()
            self.manual_backward(d_losses["total"])
            opt_d.step()
            self.untoggle_optimizer(opt_d)

    def configure_optimizers(self):
        generators = [p for net in self.nets for p in net.generator_parameters()]
        discriminators = [p for net in self.nets for p in net.discriminator_parameters()]
        return [torch.optim.Adam(generators, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay),
                torch.optim.Adam(discriminators, lr=self.hparams.discriminator_lr)]


def _train_cycle_sum(cls, data, **kwargs):
    dm = SummarizationDataModule(dataset="tiny-summe", root=str(data), reduction="max")
    pl.seed_everything(0)
    model = cls(in_dim=64, hidden=8, latent=4, gradient_clip=0.05, representativeness_weight=1.0,
                repelling_weight=1.0, **kwargs)
    model.configure_callbacks = lambda: []
    logged = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            logged.append({k: v.item() for k, v in trainer.callback_metrics.items()})

    _trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=0, callbacks=[Record()]).fit(model, datamodule=dm)
    return model, logged


def test_cycle_sum_on_manual_step_trains_exactly_as_before(small_data):
    """accumulate_grad_batches=1 (the default): the weights after 2 epochs of 3 videos equal, bit for bit, those the
    hand-written step gave, with the clip active (0.05); the logged losses are now every split's mean."""
    model, logged = _train_cycle_sum(CycleSUMModule, small_data)
    before, _ = _train_cycle_sum(_CycleSUMAsBefore, small_data)
    state, reference = model.state_dict(), before.state_dict()
    assert all(torch.equal(state[k], reference[k]) for k in reference)
    assert {"train/g_total", "train/d_total", "train/g_representativeness"} <= set(logged[0])


def test_cycle_sum_logs_the_mean_of_every_training_split(small_data):
    dm = SummarizationDataModule(dataset="tiny-summe", root=str(small_data), reduction="max")
    pl.seed_everything(0)
    model = CycleSUMModule(in_dim=64, hidden=16, latent=8)
    model.configure_callbacks = lambda: []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.batch, self.nets = batch, copy.deepcopy(pl_module.nets)  # the networks before the step

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.logged = {k: v.item() for k, v in trainer.callback_metrics.items()}

    record = Record()
    _trainer(max_steps=1, limit_train_batches=1, limit_val_batches=0, callbacks=[record]).fit(model, datamodule=dm)
    trained = record.batch["train_in"].nonzero().flatten().tolist()
    with torch.no_grad():  # the selector is deterministic: its sparsity term (7) per split, by hand
        sparsity = [(record.nets[s](record.batch["features"]).mean() - 0.15).abs().item() for s in trained]
    assert len(trained) > 1 and np.ptp(sparsity) > 1e-4  # splits differ, so the last one alone would not do
    assert record.logged["train/g_sparsity"] == pytest.approx(np.mean(sparsity), abs=1e-6)


@pytest.mark.parametrize("name", SUMMARIZATION)
def test_entry_beats_the_random_baseline_clearly(name):
    metrics = {m["key"]: m["value"] for m in zoo.card(name).metrics}
    assert metrics["test/F"] > metrics["test/F_random"] + 0.05, metrics
    assert metrics["test/F"] > metrics["test/F_uniform"] + 0.05, metrics


def test_summarize_scores_ensemble_is_the_mean_of_split_networks():
    model = SumGDAModule(in_dim=16, hidden=8, num_splits=3).eval()
    features = torch.randn(40, 16)
    expected = torch.stack([net(features[None])[0][0] for net in model.nets]).mean(0)
    assert torch.allclose(model.summarize_scores(features), expected)
    with pytest.raises(ValueError, match=r"\(T, 16\)"):
        model.summarize_scores(torch.randn(40, 15))


def test_augmented_setting_trains_on_other_datasets_and_tests_on_this_one(small_data, tmp_path, monkeypatch):
    from crossmedia.data.builtin.videosumm import make_videosumm
    from crossmedia.data.eccv16 import list_videos, make_key
    from crossmedia.data.splits import make_splits, write_splits

    monkeypatch.setenv("CROSSMEDIA_DATA", str(tmp_path))
    other = make_videosumm(tmp_path / "tiny-tvsum", variant="tvsum", seed=2, dim=64, num_videos=6, progress=False)
    own_h5 = next(small_data.glob("*.h5"))
    own = [make_key(own_h5, v) for v in list_videos(own_h5)]
    others = [make_key(other, v) for v in list_videos(other)]
    splits_file = write_splits(tmp_path / "augmented.yaml", make_splits(own, setting="augmented", other_keys=others))
    dm = SummarizationDataModule(dataset="tiny-summe", root=str(small_data), splits_file=str(splits_file),
                                 reduction="max", extra_datasets=["tiny-tvsum"])
    dm.setup()
    trained = {item["key"] for item in dm.train_set}
    tested = {item["key"] for item in dm.test_set}
    assert set(others) <= trained and tested <= set(own) and tested
    pl.seed_everything(0)
    model = SumGDAModule(in_dim=64, hidden=16, dropout=0.0)
    model.configure_callbacks = lambda: []
    trainer = _trainer(max_epochs=1)
    trainer.fit(model, datamodule=dm)
    assert 0 < trainer.test(model, datamodule=dm, verbose=False)[0]["test/F"] <= 1


def test_summarize_features_gives_keyshots_within_budget():
    model = SumGDAModule(in_dim=16, hidden=8, num_splits=2).eval()
    g = torch.Generator().manual_seed(0)
    scenes = torch.randn(4, 16, generator=g)
    features = torch.cat([scenes[i].expand(20, 16) + 0.05 * torch.randn(20, 16, generator=g) for i in range(4)])
    keyshots = model.summarize(features)
    assert keyshots.n_frames == 80 * 15 and keyshots.frame_mask.shape == (1200,)
    assert 0 < keyshots.summary_fraction <= 0.15
    assert keyshots.change_points[0, 0] == 0 and keyshots.change_points[-1, 1] == 1199
    assert all(keyshots.frame_mask[a:b + 1].all() for a, b in keyshots.segments)


def test_a_datamodule_that_declares_no_reduction_is_named(stub_trainer):
    from types import SimpleNamespace

    model = SumGDAModule(in_dim=8, hidden=4, num_splits=1)
    model.trainer = stub_trainer("test", datamodule=SimpleNamespace())
    with pytest.raises(TypeError, match=r"declare reduction = 'max' or 'avg'.*SimpleNamespace with reduction=None"):
        model.test_step({}, 0)


def test_a_users_folder_of_one_h5_under_any_name_trains_with_the_papers_splits(small_data, tmp_path, caplog):
    """Issue 18: an eccv16 h5 of one's own, alone in a folder of any name (no meta.json, no split
    file): read in place, 5 random 80/20 splits (seed 0) drawn and announced, nothing written."""
    import logging
    import shutil

    from crossmedia.data.eccv16 import list_videos
    from crossmedia.data.splits import make_splits

    user = tmp_path / "my videos"
    user.mkdir()
    shutil.copy(next(small_data.glob("*.h5")), user / "recordings.h5")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in user.iterdir())
    dm = SummarizationDataModule(dataset="whatever", root=str(user), reduction="max")
    with caplog.at_level(logging.INFO):
        dm.prepare_data()
        dm.setup()
    assert "has no split file: using 5 random 80/20 splits" in caplog.text
    keys = [f"recordings/{v}" for v in list_videos(user / "recordings.h5")]
    expected = make_splits(keys, num_splits=5, seed=0)
    assert {item["key"] for item in dm.test_set} == {k for s in expected for k in s.test_keys}
    first = next(item for item in dm.test_set if item["key"] in expected[0].test_keys)
    assert bool(first["test_in"][0]) and not bool(first["train_in"][0])
    assert sorted((p.name, p.stat().st_mtime_ns) for p in user.iterdir()) == before
    (user / "a_splits.json").write_text("[]")
    (user / "b_splits.json").write_text("[]")
    with pytest.raises(ValueError, match="a_splits.json, b_splits.json"):
        SummarizationDataModule(dataset="whatever", root=str(user), reduction="max").setup()
