"""The dataset registry and the preparers of real downloads (CIFAR-10 binary, DeepHash releases)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmedia.data.cifar10 import prepare_cifar10, read_cifar10_binary
from crossmedia.data.deephash import DeepHashListDataset, DeepHashListError, read_list
from crossmedia.data.registry import DatasetNotPreparedError, UnknownDatasetError, ensure, list_datasets, prepare


@pytest.fixture(autouse=True)
def _private_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_DATA", str(tmp_path / "data"))


# registry


def test_registry_holds_the_builtin_and_real_hashing_datasets():
    datasets = list_datasets()
    assert {"digits", "shapes", "clips", "cifar10", "nuswide", "coco", "imagenet100"} <= set(datasets)
    assert {name for name, info in datasets.items() if info.builtin} >= {"digits", "shapes", "clips"}
    assert datasets["clips"].kind == "video" and datasets["nuswide"].num_classes == 21
    assert datasets["coco"].num_classes == 80 and datasets["imagenet100"].num_classes == 100


@pytest.mark.parametrize("name", list(list_datasets()))
def test_every_registered_dataset_is_described(name):
    info = list_datasets()[name]
    assert info.name == name and info.kind in ("image", "video", "caption", "pose") and info.summary
    assert info.builtin or info.source_layout  # a real dataset says what --source must be


@pytest.mark.parametrize(("typo", "suggestion"), [("digit", "digits"), ("cifar", "cifar10"), ("nus-wide", "nuswide")])
def test_unknown_name_suggests_the_closest(typo, suggestion):
    with pytest.raises(UnknownDatasetError) as caught:
        prepare(typo)
    assert f"Did you mean {suggestion!r}" in str(caught.value)  # 'cifar' also suggests 'cifar100'
    assert "Known datasets: " in str(caught.value) and "shapes" in str(caught.value)


def test_builtin_takes_no_source_and_real_needs_one(tmp_path):
    with pytest.raises(ValueError, match="built in"):
        prepare("digits", source=tmp_path)
    with pytest.raises(ValueError, match="--source DIR"):
        prepare("cifar10")


def test_ensure_generates_a_builtin_once_under_the_data_root(tmp_path):
    root = ensure("digits", progress=False)
    assert root == tmp_path / "data" / "digits" and (root / "query.txt").is_file()
    stamp = (root / "meta.json").stat().st_mtime_ns
    assert ensure("digits", progress=False) == root
    assert (root / "meta.json").stat().st_mtime_ns == stamp


def test_ensure_tells_how_to_prepare_a_missing_real_dataset():
    with pytest.raises(DatasetNotPreparedError, match=r"crossmedia data prepare cifar10 --source DIR"):
        ensure("cifar10")


def test_ensure_accepts_any_folder_with_the_three_lists(tmp_path):
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "x.png")
    for split in ("train", "query", "database"):
        (tmp_path / f"{split}.txt").write_text("x.png 1 0\n")
    assert ensure("my-own-set", tmp_path) == tmp_path


# CIFAR-10 binary version


def _fake_cifar10(folder: Path, records_per_file: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Write the six CIFAR-10 binary files (label byte + 3072 CHW bytes per record)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = [], []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        label = np.arange(records_per_file, dtype=np.uint8) % 10
        chw = rng.integers(0, 256, size=(records_per_file, 3, 32, 32), dtype=np.uint8)
        np.concatenate([label[:, None], chw.reshape(records_per_file, -1)], axis=1).tofile(folder / name)
        images.append(chw.transpose(0, 2, 3, 1))
        labels.append(label)
    return np.concatenate(images), np.concatenate(labels)


def test_cifar10_binary_records_are_decoded(tmp_path):
    images, labels = _fake_cifar10(tmp_path / "cifar-10-batches-bin")
    decoded, decoded_labels, class_names = read_cifar10_binary(tmp_path)  # the parent folder works too
    np.testing.assert_array_equal(decoded, images)
    np.testing.assert_array_equal(decoded_labels, labels)
    assert class_names[0] == "airplane" and len(class_names) == 10


def test_cifar10_prepare_writes_the_protocol_split(tmp_path):
    images, labels = _fake_cifar10(tmp_path / "bin")  # 180 images, 18 per class
    root = prepare_cifar10(tmp_path / "cifar10", source=tmp_path / "bin", seed=0, progress=False,
                           query_per_class=2, train_per_class=5)
    lists = {split: read_list(root / f"{split}.txt") for split in ("query", "train", "database")}
    assert [len(lists[s]) for s in ("query", "train", "database")] == [20, 50, 160]
    query = {path for path, _ in lists["query"]}
    assert not query & {path for path, _ in lists["database"]}
    for path, one_hot in lists["query"]:
        index = int(Path(path).stem)
        np.testing.assert_array_equal(np.asarray(Image.open(root / path)), images[index])
        assert one_hot.argmax() == labels[index] and one_hot.sum() == 1
    meta = json.loads((root / "meta.json").read_text())
    assert meta["protocol"] == "DeepHash-pytorch cifar10-1" and meta["counts"]["database"] == 160
    x, y = DeepHashListDataset(root=root, split="train")[0]
    assert x.shape == (3, 32, 32) and y.shape == (10,)


def test_cifar10_full_protocol_refuses_too_few_images(tmp_path):
    _fake_cifar10(tmp_path / "bin")
    with pytest.raises(ValueError, match="class 0 has 18 items; the protocol needs 100 query"):
        prepare("cifar10", source=tmp_path / "bin", progress=False)


def test_cifar10_python_version_is_refused_without_unpickling(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["data_batch_1", "test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"\x80\x04 not to be unpickled")
    with pytest.raises(ValueError, match="never unpickles") as caught:
        prepare("cifar10", source=folder)
    assert "binary version" in str(caught.value)


def test_cifar10_truncated_file_is_named(tmp_path):
    _fake_cifar10(tmp_path / "bin")
    with open(tmp_path / "bin" / "test_batch.bin", "ab") as handle:
        handle.write(b"\x00" * 7)
    with pytest.raises(ValueError, match=r"test_batch.bin: .* not a whole number of 3073-byte records"):
        read_cifar10_binary(tmp_path / "bin")


# DeepHash-pytorch releases (NUS-WIDE layout)


def _fake_release(source: Path, num_classes: int = 21) -> None:
    rng = np.random.default_rng(0)
    (source / "images").mkdir(parents=True)
    for split, count in (("train", 6), ("test", 3), ("database", 10)):
        lines = []
        for i in range(count):
            path = f"images/{split}_{i}.jpg"
            Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(source / path)
            labels = (rng.random(num_classes) < 0.2).astype(int)
            labels[i % num_classes] = 1
            lines.append(path + " " + " ".join(map(str, labels)))
        (source / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_nuswide_release_is_validated_and_linked(tmp_path):
    _fake_release(tmp_path / "NUS-WIDE")
    root = prepare("nuswide", source=tmp_path / "NUS-WIDE", progress=False)
    assert root == tmp_path / "data" / "nuswide"
    assert {p.name for p in root.iterdir()} >= {"train.txt", "query.txt", "database.txt", "meta.json"}
    query = DeepHashListDataset(root=root, split="query")
    assert len(query) == 3 and query.num_classes == 21
    x, y = query[0]
    assert x.shape == (3, 12, 10) and y.shape == (21,)
    assert json.loads((root / "meta.json").read_text())["counts"] == {"train": 6, "query": 3, "database": 10}
    assert ensure("nuswide") == root


def test_release_with_wrong_class_count_names_file_and_line(tmp_path):
    _fake_release(tmp_path / "coco", num_classes=21)
    with pytest.raises(DeepHashListError, match=r"train.txt, line 1: 21 label columns, expected 80"):
        prepare("coco", source=tmp_path / "coco", progress=False)


def test_release_with_missing_image_names_file_line_and_path(tmp_path):
    _fake_release(tmp_path / "src")
    (tmp_path / "src" / "images" / "database_4.jpg").unlink()
    with pytest.raises(DeepHashListError, match=r"database.txt, line 5: the item 'images/database_4.jpg' does not"):
        prepare("nuswide", source=tmp_path / "src", progress=False)
    assert not (tmp_path / "data" / "nuswide" / "meta.json").exists()


def test_release_without_its_lists_says_what_is_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="missing train.txt, test.txt, database.txt"):
        prepare("imagenet100", source=tmp_path / "empty")


def test_coco_hashing_release_given_the_caption_split_points_to_coco_captions(tmp_path):
    """`coco` is the DeepHash hashing release; the Karpathy caption split is `coco-captions`."""
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "dataset_coco.json").write_text('{"images": []}')
    with pytest.raises(FileNotFoundError, match="data prepare coco-captions --source"):
        prepare("coco", root=tmp_path / "out", source=tmp_path / "captions")


# ensure() asks each dataset (and each folder format) whether a folder is ready


@pytest.mark.parametrize("name", list(list_datasets()))
def test_no_dataset_calls_an_empty_folder_ready(name, tmp_path):
    from crossmedia.data.registry import _REGISTRY

    assert _REGISTRY[name].ready(tmp_path) is False


def test_ensure_keeps_a_smaller_builtin_copy(tmp_path):
    from crossmedia.data.builtin.videosumm import make_videosumm

    h5 = make_videosumm(tmp_path / "small", variant="summe", seed=3, dim=8, num_videos=3, progress=False)
    stamp = h5.stat().st_mtime_ns
    assert ensure("summe-builtin", tmp_path / "small", progress=False) == tmp_path / "small"
    assert h5.stat().st_mtime_ns == stamp  # not regenerated at the full size


def test_ensure_uses_a_hand_made_eccv16_folder_under_any_name(tmp_path):
    (tmp_path / "eccv16_dataset_mine_google_pool5.h5").write_bytes(b"")
    assert ensure("my-videos", tmp_path) == tmp_path
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'my-videos'"):
        ensure("my-videos", tmp_path / "empty")


def test_ensure_uses_a_prepared_caption_folder_under_another_name(tmp_path):
    (tmp_path / "dataset_coco.json").write_text('{"images": []}')
    (tmp_path / "meta.json").write_text(json.dumps({"name": "coco-captions", "format": "karpathy",
                                                    "file": "dataset_coco.json"}))
    assert ensure("scenes", tmp_path) == tmp_path  # not overwritten by the built-in
    assert ensure("coco-captions", tmp_path) == tmp_path


def test_every_module_that_registers_is_loaded_by_the_registry():
    """The registry imports its registering modules by name: a new one must be on its list."""
    import crossmedia.data
    from crossmedia.data.registry import _REGISTERING_MODULES

    package = Path(crossmedia.data.__file__).parent
    registering = {"crossmedia.data." + ".".join(path.relative_to(package).with_suffix("").parts)
                   for path in package.rglob("*.py") if path.name != "registry.py"
                   and ("register_dataset(" in path.read_text() or "@register_folder_format(" in path.read_text())}
    assert registering == set(_REGISTERING_MODULES)
