"""Fine-tuning PSGAN and the action classifier on data of other actions (issue 18): fit takes the data's
actions and rebuilds only what depends on their number (the one-hot inputs of G's fuse convolution and D's
first convolution; the classifier's head), every other weight kept, in one line; evaluation is refused."""
import logging

import pytest
import pytorch_lightning as pl
import torch

from crossmedia.tasks.posevideo.data import PoseVideoDataModule
from crossmedia.tasks.posevideo.estimator import ActionClassifier
from crossmedia.tasks.posevideo.module import PSGAN

MINE = ["wave", "clap", "sing"]  # the model's actions: two of the puppets' nine, and one they lack
FUSE, D_IN = "generator.fuse.0.weight", "discriminator.net.0.weight"


def _dm(root) -> PoseVideoDataModule:
    return PoseVideoDataModule(dataset="puppets", root=str(root), batch_size=9, eval_batch_size=9)


class _AtStart(pl.Callback):
    """The module's weights when training starts (after setup's rebuild and load, before any step)."""

    def on_train_start(self, trainer, pl_module):
        self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kwargs)


def _fit(model, dm) -> _AtStart:
    at_start = _AtStart()
    _trainer(max_steps=1, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[at_start]).fit(model, datamodule=dm)
    return at_start


def _lines(caplog, prefix: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]


def _psgan(**kw) -> PSGAN:
    return PSGAN(actions=MINE, base=8, noise_dim=4, res_blocks=1, d_base=8, classifier=None, **kw)


def test_psgan_rebuilds_only_its_action_inputs(tiny_puppets, caplog):
    torch.manual_seed(0)
    model = _psgan()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dm = _dm(tiny_puppets)
    with caplog.at_level(logging.INFO):
        at_start = _fit(model, dm)
    [line] = _lines(caplog, "posevideo PSGAN:")
    assert "has 9 actions, the model was configured for 3" in line and f"{FUSE} and {D_IN} are rebuilt for 9" in line
    assert "inputs of the 2 actions both share" in line
    assert model.actions == model.hparams.actions == list(dm.actions)
    assert all(torch.equal(at_start.state[k], v) for k, v in before.items() if k not in (FUSE, D_IN))
    wave, clap = dm.actions.index("wave"), dm.actions.index("clap")
    for key, first in ((FUSE, 64), (D_IN, 17)):  # G: [64 features, actions, 4 noise]; D: [17 heatmaps, actions]
        new, old = at_start.state[key], before[key]
        assert new.shape[1] == old.shape[1] + 6
        assert torch.equal(new[:, :first], old[:, :first]) and torch.equal(new[:, first + 9:], old[:, first + 3:])
        assert torch.equal(new[:, first + wave], old[:, first]) and torch.equal(new[:, first + clap], old[:, first + 1])
    keypoints = dm.datasets["train"].keypoints[:2, 0]
    assert model.sequence(keypoints, torch.tensor([8, 0]), None).shape == (2, 16, 17, 3)


def test_psgan_evaluation_on_other_actions_is_refused(tiny_puppets):
    model = _psgan()
    with pytest.raises(ValueError, match=r"has the actions \['wave', .*\] but this PSGAN was trained on "
                                         r"\['wave', 'clap', 'sing'\] .*fine-tune it on this data first"):
        _trainer().test(model, datamodule=_dm(tiny_puppets))
    assert model.actions == MINE


def test_psgan_leaves_out_the_accuracies_of_a_classifier_of_other_actions(tiny_puppets, tmp_path, caplog):
    dm = _dm(tiny_puppets)
    dm.setup()
    model = PSGAN(actions=dm.actions, base=8, noise_dim=4, res_blocks=1, d_base=8, classifier="action-classifier",
                  diversity_items=2, diversity_samples=2)
    model.__dict__["_zoo_nets"] = {"action-classifier": ActionClassifier(actions=MINE, width=8)}
    with caplog.at_level(logging.INFO):
        [metrics] = _trainer(limit_val_batches=1, default_root_dir=tmp_path).validate(model, datamodule=dm,
                                                                                      verbose=False)
    [line] = _lines(caplog, "posevideo PSGAN: the action classifier 'action-classifier' knows the actions")
    assert "accuracies are not measured" in line
    assert "val/smoothness" in metrics and not any("accuracy" in key for key in metrics)


def test_action_classifier_starts_from_a_checkpoint_and_rebuilds_its_head(tiny_puppets, tmp_path, caplog):
    torch.manual_seed(0)
    trained = ActionClassifier(actions=MINE, width=8)
    path = tmp_path / "mine.ckpt"
    torch.save({"state_dict": trained.state_dict(), "hyper_parameters": {"actions": MINE}}, path)
    torch.manual_seed(1)
    model = ActionClassifier(actions=MINE, width=8, init_from=str(path))
    dm = _dm(tiny_puppets)
    with caplog.at_level(logging.INFO):
        at_start = _fit(model, dm)
    [line] = _lines(caplog, "posevideo action classifier:")
    assert f"configured for 3 and {path} for 3: the head (net.head) is rebuilt for 9" in line
    assert "head rows of the 2 actions both share" in line
    start = trained.state_dict()
    assert all(torch.equal(at_start.state[k], v) for k, v in start.items() if not k.startswith("net.head"))
    head = at_start.state["net.head.weight"]
    assert head.shape == (9, 8) and torch.equal(head[dm.actions.index("clap")], start["net.head.weight"][1])
    assert model.actions == list(dm.actions) and model.logits(dm.datasets["train"].keypoints[:2]).shape == (2, 9)


def test_action_classifier_evaluation_and_teacher_of_other_actions_are_refused(tiny_puppets):
    model = ActionClassifier(actions=MINE, width=8)
    with pytest.raises(ValueError, match=r"this action classifier was trained on \['wave', 'clap', 'sing'\]"):
        _trainer().validate(model, datamodule=_dm(tiny_puppets))
    student = ActionClassifier(actions=MINE, width=8, distillation="kd", teacher="action-classifier")
    student.loss_fn.attach_teacher(model, model.logits)
    with pytest.raises(ValueError, match=r"teacher 'action-classifier' \(model.init_args.teacher\) knows the actions "
                                         r"\['wave', 'clap', 'sing'\], not the data's \['wave'"):
        _fit(student, _dm(tiny_puppets))


def test_psgan_zoo_entry_as_init_from_keeps_all_but_its_action_inputs(caplog):
    """What fit's setup does with ``init_from: psgan`` on data of 3 actions (take_labels, without a Trainer)."""
    from crossmedia import zoo
    from crossmedia.core.init_from import labelled_weights

    card = zoo.load("psgan")
    hp = {k: card.hparams[k] for k in ("base", "noise_dim", "res_blocks", "d_base", "d_layers", "map_size")}
    model = PSGAN(actions=list(card.actions), classifier=None, init_from="psgan", **hp)
    with caplog.at_level(logging.INFO):
        model.take_labels(MINE, labelled_weights("psgan", "init_from", PSGAN, "actions"), "mine/")
    [line] = _lines(caplog, "posevideo PSGAN:")
    assert "has 3 actions, the model was configured for 9 and psgan for 9" in line and "of psgan is kept" in line
    state, start = model.state_dict(), card.state_dict()
    assert all(torch.equal(state[k], v) for k, v in start.items() if k not in (FUSE, D_IN))
    first = model.generator.fuse[0].out_channels
    assert torch.equal(state[FUSE][:, first + 1], start[FUSE][:, first + card.actions.index("clap")])
    assert model.actions == MINE and state[FUSE].shape[1] == start[FUSE].shape[1] - 6
