"""Fine-tuning a classifier on one's own data (issue 18): a head of another class count is rebuilt at fit,
every other weight kept, in one line; evaluation and a teacher of other classes are refused, naming the fix."""
import logging

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from crossmedia.core.checkpoint_io import save_weights
from crossmedia.tasks.classify.data import ClassifyDataModule
from crossmedia.tasks.classify.module import ClassifyModule

SMALL = dict(backbone="test_resnet", image_size=32)
CLASSES = ("cat", "dog", "owl")
BACKBONE = "net.backbone.conv1.0.weight"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """An ImageFolder of 3 classes (2 training images each, 1 test image each) at 32 px."""
    root = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("test", 1)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    return root


def _data(folder) -> ClassifyDataModule:
    return ClassifyDataModule(dataset="pets", root=str(folder), image_size=32, batch_size=3)


class _AtStart(pl.Callback):
    """The module's weights when training starts (after setup's rebuild and load, before any step)."""

    def on_train_start(self, trainer, pl_module):
        self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def _fit(model, data, **kwargs) -> _AtStart:
    at_start = _AtStart()
    pl.Trainer(accelerator="cpu", devices=1, max_steps=1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
               enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
               callbacks=[at_start], **kwargs).fit(model, datamodule=data)
    return at_start


def _info(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("classify:")]


def test_init_from_weights_keep_the_backbone_and_the_head_follows_the_data(folder, tmp_path, caplog):
    torch.manual_seed(0)
    card = ClassifyModule(num_classes=10, class_names=[str(d) for d in range(10)], **SMALL)
    weights = tmp_path / "start.safetensors"
    save_weights({k: v.clone() for k, v in card.state_dict().items()}, weights)
    torch.manual_seed(1)  # the model to fine-tune starts elsewhere: only init_from can make it equal
    model = ClassifyModule(num_classes=10, class_names=card.hparams.class_names, init_from=str(weights), **SMALL)
    assert not torch.equal(model.state_dict()[BACKBONE], card.state_dict()[BACKBONE])
    with caplog.at_level(logging.INFO):
        at_start = _fit(model, _data(folder))
    [line] = _info(caplog)
    assert "has 3 classes, the model was configured for 10" in line and "head (net.head) is rebuilt for 3" in line
    assert str(weights) in line and "every other weight" in line
    assert at_start.state["net.head.1.weight"].shape == (3, card.net.head[1].in_features)
    assert model.hparams.num_classes == 3 and model.hparams.class_names == list(CLASSES)
    kept = [k for k in card.state_dict() if not k.startswith("net.head")]
    assert kept and all(torch.equal(at_start.state[k], card.state_dict()[k]) for k in kept)  # init_from's, all of them
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_a_built_model_is_fine_tuned_in_place_keeping_shared_class_rows(folder, caplog):
    torch.manual_seed(0)
    model = ClassifyModule(num_classes=4, class_names=["owl", "bee", "cat", "ant"], **SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.INFO):
        at_start = _fit(model, _data(folder))
    [line] = _info(caplog)
    assert "configured for 4" in line and "rebuilt for 3" in line and "the 2 classes both share" in line
    assert torch.equal(at_start.state[BACKBONE], before[BACKBONE])
    head, old_head = at_start.state["net.head.1.weight"], before["net.head.1.weight"]
    assert torch.equal(head[0], old_head[2]) and torch.equal(head[2], old_head[0])  # cat and owl keep their rows
    assert not torch.equal(model.net.head[1].weight[0], old_head[2])  # and the new head was trained (one step)


def test_evaluation_on_another_class_count_is_refused_before_any_step(folder):
    model = ClassifyModule(num_classes=10, **SMALL)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    for run in (trainer.test, trainer.validate):
        with pytest.raises(ValueError, match=r"has 3 classes but the model was built for 10 .*"
                                             r"--model\.init_args\.num_classes=3"):
            run(model, datamodule=_data(folder))
    assert model.hparams.num_classes == 10 and model.net.head[1].out_features == 10


def test_a_teacher_of_other_classes_is_named(folder):
    teacher = ClassifyModule(num_classes=10, class_names=[str(d) for d in range(10)], **SMALL)
    model = ClassifyModule(num_classes=10, distillation="tfkd-self", teacher="classify-baseline", **SMALL)
    model.attach_teacher(teacher)
    with pytest.raises(ValueError, match=r"teacher 'classify-baseline' \(model.init_args.teacher\) classifies 10 "
                                         r"classes .* has 3 \(cat, dog, owl\)"):
        _fit(model, _data(folder))


def test_init_from_of_another_backbone_is_named(folder, tmp_path):
    weights = tmp_path / "other.safetensors"
    save_weights(dict(ClassifyModule(num_classes=3, backbone="resnet18", image_size=32).state_dict()), weights)
    model = ClassifyModule(num_classes=3, init_from=str(weights), **SMALL)
    with pytest.raises(ValueError, match=r"init_from: '.*other.safetensors' does not fit this ClassifyModule: give "
                                         r"the architecture arguments"):
        _fit(model, _data(folder))


def test_fit_card_with_init_from_its_own_weights_on_a_folder(folder, tmp_path, monkeypatch, caplog):
    """``crossmedia fit -c classify-baseline --model.init_args.init_from=classify-baseline`` on 3 classes: the
    zoo entry's backbone (sha256-verified) is where training starts; its 10-class head is rebuilt for 3."""
    from crossmedia import zoo
    from crossmedia.core.cli import main

    monkeypatch.chdir(tmp_path)
    started = _AtStart()
    monkeypatch.setattr(ClassifyModule, "on_train_start", lambda self: started.on_train_start(None, self),
                        raising=False)
    with caplog.at_level(logging.INFO):
        code = main(["fit", "-c", "classify-baseline", "--model.init_args.init_from=classify-baseline",
                     f"--data.init_args.root={folder}", "--data.init_args.train_per_class=null",
                     "--trainer.max_epochs=1", "--trainer.max_steps=1", "--trainer.logger=false",
                     "--trainer.enable_checkpointing=false", "--trainer.limit_val_batches=0",
                     "--trainer.enable_progress_bar=false"])
    assert code in (0, None)
    [line] = _info(caplog)
    assert "configured for 10 and classify-baseline for 10: the head (net.head) is rebuilt for 3" in line
    card = zoo.load("classify-baseline").state_dict()
    assert all(torch.equal(started.state[k], card[k].to(started.state[k].dtype))
               for k in card if not k.startswith("net.head"))
    assert started.state["net.head.1.weight"].shape[0] == 3



def test_a_fine_tuned_run_is_tested_from_its_config_and_last_checkpoint(folder, tmp_path, monkeypatch, caplog):
    """``crossmedia test -c runs/NAME/config.yaml --ckpt_path last`` after fine-tuning on 3 classes: the
    run's config keeps the card's 10, the checkpoint's hyper-parameters say 3, and they win (no flag)."""
    from crossmedia.core.cli import main

    monkeypatch.chdir(tmp_path)
    common = [f"--data.init_args.root={folder}", "--data.init_args.train_per_class=null", "--trainer.logger=false",
              "--trainer.enable_progress_bar=false"]
    assert main(["fit", "-c", "classify-baseline", *common, "--trainer.max_epochs=1", "--trainer.max_steps=1",
                 "--trainer.limit_val_batches=0"]) in (0, None)
    config = tmp_path / "runs" / "classify-baseline" / "config.yaml"
    assert "num_classes: 10" in config.read_text()
    tested = []
    monkeypatch.setattr(ClassifyModule, "on_test_end", lambda self: tested.append(self.hparams.num_classes),
                        raising=False)
    assert main(["test", "-c", str(config), "--ckpt_path", "last", *common]) in (0, None)
    assert tested == [3]


def test_a_few_shot_recipe_says_what_it_leaves_out(folder):
    """train_per_class (the cards' 10 digits per class) on a folder with more images: said, never silent."""
    data = ClassifyDataModule(dataset="pets", root=str(folder), image_size=32, train_per_class=1)
    with pytest.warns(UserWarning, match=r"training on 3 of the 6 training images .*train_per_class=null trains on all"):
        data.setup("fit")
    assert len(data.datasets["train"]) == 3
