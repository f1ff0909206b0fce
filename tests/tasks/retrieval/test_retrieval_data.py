"""The retrieval DataModule: one random caption per training image, 5 per evaluated image in the
metric's layout, the first 5 of an image with more, and a clear refusal of an image with fewer."""
import json

import pytest
import torch
from PIL import Image

from crossmedia.data.karpathy import read_caption_folder
from crossmedia.tasks.retrieval.data import RetrievalDataModule


def _datamodule(root, **kwargs):
    dm = RetrievalDataModule(root=str(root), image_size=32, batch_size=8, eval_batch_size=3, min_count=0, **kwargs)
    dm.setup("fit")
    return dm


def test_batches_follow_the_metric_layout(mini_scenes):
    dm = _datamodule(mini_scenes)
    records = [r for r in read_caption_folder(mini_scenes) if r.split == "val"]
    train = next(iter(dm.train_dataloader()))
    assert train["images"].shape == (8, 3, 32, 32) and train["captions"].shape == (8, 33)
    assert train["lengths"].shape == (8,) and len(set(train["index"].tolist())) == 8  # no image twice
    assert train["images"].min() >= -1 and train["images"].max() <= 1
    batch = next(iter(dm.val_dataloader()))
    assert batch["captions"].shape == (3, 5, 33) and batch["lengths"].shape == (3, 5)
    assert batch["index"].tolist() == [0, 1, 2]
    for b in range(3):  # caption k of image b is the record's k-th caption, as caption 5b + k of the split
        for k in range(5):
            words = records[b].captions[k]
            assert dm.vocabulary.decode(batch["captions"][b, k]) == " ".join(words)
            assert batch["lengths"][b, k] == len(words)
    assert len(dm.train_dataloader()) == 40 // 8  # drop_last: full batches only


def test_training_caption_is_drawn_from_the_image_s_captions(mini_scenes):
    dm = _datamodule(mini_scenes)
    dataset, record = dm.datasets["train"], dm.datasets["train"].records[0]
    torch.manual_seed(0)
    seen = {dm.vocabulary.decode(dataset[0]["captions"]) for _ in range(40)}
    assert seen <= {" ".join(c) for c in record.captions} and len(seen) >= 3  # 5 captions, 40 draws


def _folder(tmp_path, test_captions):
    images = []
    for i, (split, n) in enumerate([("train", 5), ("train", 5), ("test", test_captions)]):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
        sentences = [{"tokens": ["a", "shape", str(j)], "raw": f"a shape {j}"} for j in range(n)]
        images.append({"filename": f"{i}.png", "split": split, "imgid": i, "sentences": sentences})
    (tmp_path / "dataset_mine.json").write_text(json.dumps({"images": images}))
    return tmp_path


def test_an_evaluated_image_with_fewer_than_5_captions_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"test image 2\.png \(id 2\) has 3 caption\(s\); retrieval evaluation needs 5"):
        _datamodule(_folder(tmp_path, 3))


def test_an_evaluated_image_with_more_than_5_captions_keeps_the_first_5(tmp_path):
    dm = _datamodule(_folder(tmp_path, 7))
    item = dm.datasets["test"][0]
    assert item["captions"].shape == (5, 33)
    assert [dm.vocabulary.decode(c) for c in item["captions"]] == [f"a shape {j}" for j in range(5)]
