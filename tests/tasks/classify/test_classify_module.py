"""The classify task: data splits, a loss that falls, a zoo teacher that stays frozen, the inference API."""
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from crossmedia.data.deephash import DeepHashListError, read_list
from crossmedia.tasks.classify import module as classify_module
from crossmedia.tasks.classify.data import ClassifyDataModule
from crossmedia.tasks.classify.module import ClassifyModule

SMALL = dict(num_classes=10, backbone="test_resnet", image_size=16)


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kwargs)


def test_splits_of_a_deephash_folder(mini):
    data = ClassifyDataModule(dataset="mini", root=str(mini), image_size=16, train_per_class=2, split_seed=3)
    data.setup("fit")
    lists = {s: [p for p, _ in read_list(mini / f"{s}.txt")] for s in ("train", "query", "database")}
    val = set(lists["database"]) - set(lists["train"]) - set(lists["query"])
    assert len(data.datasets["test"]) == len(lists["query"]) == 24
    assert len(data.datasets["val"]) == len(val) > 0
    train_labels = data.datasets["train"].labels
    assert np.bincount(train_labels.numpy()).tolist() == [2] * 10  # two per class
    x, y = data.datasets["test"][0]
    assert x.shape == (3, 16, 16) and -1 <= x.min() and x.max() <= 1 and y.dtype == torch.int64
    again = ClassifyDataModule(dataset="mini", root=str(mini), image_size=16, train_per_class=2, split_seed=3)
    again.setup("fit")
    assert torch.equal(again.datasets["train"].images, data.datasets["train"].images)  # seeded draw


def test_noise_is_fixed_per_image(mini):
    data = ClassifyDataModule(dataset="mini", root=str(mini), image_size=16, noise=0.5)
    data.setup("fit")
    clean = ClassifyDataModule(dataset="mini", root=str(mini), image_size=16)
    clean.setup("fit")
    first, second = data.datasets["test"][0][0], data.datasets["test"][0][0]
    assert torch.equal(first, second)
    assert (first - clean.datasets["test"][0][0]).std().item() == pytest.approx(0.5, rel=0.15)


def test_image_folder_splits(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("test", 2)):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / name / f"{i}.png")
    data = ClassifyDataModule(dataset="mine", root=str(tmp_path), image_size=8)
    data.setup("fit")
    assert data.class_names == ("a", "b") and len(data.datasets["train"]) == 6
    assert data.datasets["val"] is data.datasets["test"] and data.datasets["test"].labels.tolist() == [0, 0, 1, 1]


def test_multi_label_list_is_refused_naming_the_file(tmp_path, mini):
    for split in ("train", "query", "database"):
        (tmp_path / f"{split}.txt").write_text((mini / f"{split}.txt").read_text())
    path = read_list(mini / "query.txt")[0][0]
    (tmp_path / "query.txt").write_text(f"{path} 1 1 0 0 0 0 0 0 0 0\n")
    with pytest.raises(DeepHashListError, match=r"query.txt: item 1 .* has 2 labels; classification needs exactly one"):
        ClassifyDataModule(dataset="x", root=str(tmp_path)).setup("fit")


def test_tfkd_reg_loss_falls_and_classify_names_classes(mini):
    pl.seed_everything(0)
    data = ClassifyDataModule(dataset="mini", root=str(mini), image_size=16, batch_size=32)
    model = ClassifyModule(**SMALL, distillation="tfkd-reg", lr=5e-3)
    data.setup("fit")
    x, y = next(iter(data.train_dataloader()))
    before = model.loss_fn(model(x), y).item()
    _trainer(max_epochs=15, limit_val_batches=0).fit(model, datamodule=data)
    after = model.loss_fn(model.eval()(x), y).item()
    assert after < 0.6 * before, (before, after)  # the floor (the virtual teacher is near uniform) is ~0.3
    assert model.hparams.class_names == [str(d) for d in range(10)]
    image = Image.open(read_list(mini / "query.txt")[0][0])
    [name] = model.classify(image)
    assert name in model.hparams.class_names
    assert model.probabilities([image, image]).sum(dim=1).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)


def test_zoo_teacher_is_loaded_frozen_and_never_trained(mini, monkeypatch):
    pl.seed_everything(0)
    loaded, real_load = [], classify_module._registry_load

    def spy(name):
        loaded.append(real_load(name))  # the zoo entry itself, sha256-verified
        loaded[-1].train()  # even a teacher handed over in train mode ends up frozen
        return loaded[-1]

    monkeypatch.setattr(classify_module, "_registry_load", spy)
    student = ClassifyModule(**SMALL, distillation="tfkd-self", teacher="classify-baseline",
                             distillation_args={"temperature": 4.0})
    data = ClassifyDataModule(dataset="mini", root=str(mini), image_size=16, batch_size=32)
    _trainer(max_epochs=1, limit_val_batches=0).fit(student, datamodule=data)
    [teacher] = loaded
    before = real_load("classify-baseline").state_dict()  # a fresh copy of the zoo's weights
    assert teacher.zoo_card.name == "classify-baseline" and student.loss_fn.teacher is teacher
    assert not teacher.training and all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(k.startswith("loss_fn") for k in student.state_dict())  # exported weights hold no teacher
    assert student.hparams.teacher == "classify-baseline"


def test_teacher_arguments_are_checked():
    with pytest.raises(ValueError, match="needs a teacher: set model.init_args.teacher"):
        ClassifyModule(**SMALL, distillation="tfkd-self")
    with pytest.raises(ValueError, match="uses no teacher"):
        ClassifyModule(**SMALL, distillation="tfkd-reg", teacher="classify-baseline")
