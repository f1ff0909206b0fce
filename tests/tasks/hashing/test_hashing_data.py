"""HashingDataModule: batch shapes and dtypes, [query, database] eval loaders, seeded shuffling."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from crossmedia.data.deephash import write_list
from crossmedia.tasks.hashing.data import HashingDataModule


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One private data root for this module, so each built-in dataset is generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def _private_data_root(data_dir, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_DATA", str(data_dir))


def _ready(**kwargs) -> HashingDataModule:
    datamodule = HashingDataModule(**kwargs)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def test_digits_batches_are_normalised_images_with_multi_hot_labels(data_dir):
    datamodule = HashingDataModule(dataset="digits", batch_size=16, eval_batch_size=100, image_size=24)
    assert datamodule.num_classes == 10 and datamodule.kind == "image"  # known before any data exists
    datamodule.prepare_data()
    assert (data_dir / "digits" / "meta.json").is_file()
    datamodule.setup("fit")
    x, y = next(iter(datamodule.train_dataloader()))
    assert x.shape == (16, 3, 24, 24) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() < -0.9 and x.max() > 0.9
    assert y.shape == (16, 10) and y.dtype == torch.float32 and (y.sum(dim=1) == 1).all()
    assert len(datamodule.train_dataloader().dataset) == 1000
    assert datamodule.hparams.batch_size == 16  # save_hyperparameters


def test_val_and_test_loaders_are_query_then_database():
    datamodule = _ready(dataset="digits", eval_batch_size=256)
    for loaders in (datamodule.val_dataloader(), datamodule.test_dataloader()):
        assert isinstance(loaders, list) and len(loaders) == 2
        query, database = loaders
        assert (len(query.dataset), len(database.dataset)) == (300, 1497)
        assert (len(query), len(database)) == (math.ceil(300 / 256), math.ceil(1497 / 256))
        x, y = next(iter(database))
        assert x.shape == (256, 3, 32, 32) and y.shape == (256, 10)
    first = next(iter(datamodule.val_dataloader()[0]))[1]
    again = next(iter(datamodule.val_dataloader()[0]))[1]
    assert torch.equal(first, again)  # eval order is the file order


def test_training_order_follows_the_global_seed():
    datamodule = _ready(dataset="digits", batch_size=32)

    def first_labels(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return next(iter(datamodule.train_dataloader()))[1]

    assert torch.equal(first_labels(0), first_labels(0))
    assert not torch.equal(first_labels(0), first_labels(1))


def test_training_augmentation_keeps_shapes():
    datamodule = _ready(dataset="digits", batch_size=8, train_augment=True)
    x, _ = next(iter(datamodule.train_dataloader()))
    assert x.shape == (8, 3, 32, 32)


def test_clip_folders_give_b_t_3_h_w_batches(tmp_path):
    assert HashingDataModule(dataset="clips").kind == "video"  # from the registry, before generation
    rng = np.random.default_rng(0)
    items = []
    for index in range(6):  # a small hand-made DeepHash folder of 6-frame clips, 3 classes
        folder = tmp_path / "clips" / f"{index:02d}"
        folder.mkdir(parents=True)
        for t in range(6):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{t:03d}.png")
        items.append((f"clips/{index:02d}", np.eye(3, dtype=int)[index % 3]))
    for split in ("train", "query", "database"):
        write_list(tmp_path / f"{split}.txt", items if split != "query" else items[:2])
    datamodule = _ready(dataset="my-clips", root=str(tmp_path), batch_size=4, eval_batch_size=5,
                        clip_length=4, image_size=16)
    assert datamodule.kind == "video" and datamodule.num_classes == 3  # read from the folder itself
    x, y = next(iter(datamodule.train_dataloader()))
    assert x.shape == (4, 4, 3, 16, 16) and x.dtype == torch.float32 and y.shape == (4, 3)
    query, database = datamodule.val_dataloader()
    assert (len(query.dataset), len(database.dataset)) == (2, 6) and len(database) == 2


def test_a_real_dataset_that_is_not_prepared_says_how():
    datamodule = HashingDataModule(dataset="cifar10")
    assert datamodule.num_classes == 10
    with pytest.raises(FileNotFoundError, match="crossmedia data prepare cifar10 --source DIR"):
        datamodule.prepare_data()


def test_train_per_class_keeps_a_seeded_few_of_each_class_and_drops_the_short_last_batch():
    datamodule = _ready(dataset="digits", batch_size=64, train_per_class=20, split_seed=0)
    dataset = datamodule.train_dataloader().dataset
    assert len(dataset) == 200 and (dataset.labels.sum(axis=0) == 20).all()  # 20 of each of the 10 digits
    loader = datamodule.train_dataloader()
    assert len(loader) == 3 and all(len(y) == 64 for _, y in loader)  # 200 = 3 x 64 + 8: the 8 are dropped
    same = _ready(dataset="digits", train_per_class=20, split_seed=0).train_dataset.items
    other = _ready(dataset="digits", train_per_class=20, split_seed=1).train_dataset.items
    assert [p for p, _ in same] == [p for p, _ in dataset.items] != [p for p, _ in other]
    kept = _ready(dataset="digits", batch_size=64, train_per_class=20, drop_last=False).train_dataloader()
    assert [len(y) for _, y in kept] == [64, 64, 64, 8]
    assert len(datamodule.val_dataloader()[1].dataset) == 1497  # evaluation keeps every item


def test_train_per_class_refuses_more_than_a_class_has_and_multi_label_data():
    with pytest.raises(ValueError, match=r"train_per_class=101 needs that many"):
        _ready(dataset="digits", train_per_class=101)
    with pytest.raises(ValueError, match=r"train_per_class needs single-label data, but item .* has [0-9]+ labels"):
        _ready(dataset="shapes", train_per_class=5)
