"""Precomputed image features: the folder, HDF5 and packed .npz layouts, lazy reading, pickling and padding."""
from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from crossmedia.data.features import FeatureFormatError, FeatureStore, MissingFeaturesError, pad_features

D = 8
IDS = [9, 42, 391895]


def _regions(seed: int, n: int, d: int = D) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


@pytest.fixture
def regions() -> dict[int, np.ndarray]:
    """Three images with 5, 3 and 4 regions of size D."""
    return {image_id: _regions(seed, n) for seed, (image_id, n) in enumerate(zip(IDS, (5, 3, 4)))}


def _padded(regions: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(num_images, N_max, D)`` with garbage (not zeros) in the padding, and the counts."""
    counts = np.array([a.shape[0] for a in regions.values()])
    packed = np.full((len(regions), counts.max(), D), 99.0, dtype=np.float32)
    for row, array in enumerate(regions.values()):
        packed[row, : array.shape[0]] = array
    return packed, counts


def _write_folder(folder: Path, regions: dict[int, np.ndarray], key: str = "feat") -> Path:
    folder.mkdir()
    for image_id, array in regions.items():
        np.savez_compressed(folder / f"{image_id}.npz", **{key: array})
    return folder


# folder of per-image files


@pytest.mark.parametrize("key", ["feat", "x", "features", "arr_0"])
def test_folder_npz_round_trips(tmp_path, regions, key):
    folder = tmp_path / "cocobu_att"
    folder.mkdir()
    for image_id, array in regions.items():
        if key == "arr_0":
            np.savez(folder / f"{image_id}.npz", array)  # the single, unnamed array
        else:
            np.savez_compressed(folder / f"{image_id}.npz", **{key: array, "bbox": np.zeros((len(array), 4))})
    store = FeatureStore.open(folder)
    assert store.layout == "folder" and len(store) == 3 and store.dim == D
    assert sorted(store.image_ids) == sorted(str(i) for i in IDS)
    for image_id, array in regions.items():
        assert image_id in store and str(image_id) in store and np.int64(image_id) in store
        got = store.get(image_id)
        assert got.dtype == np.float32 and got.shape == array.shape
        np.testing.assert_array_equal(got, array)
        np.testing.assert_array_equal(store.get(str(image_id)), array)
    assert 7 not in store


def test_folder_grid_features_are_flattened(tmp_path):
    grid = np.arange(2 * 3 * D, dtype=np.float32).reshape(2, 3, D)  # (H, W, D)
    folder = tmp_path / "grid"
    folder.mkdir()
    np.savez(folder / "5.npz", feat=grid)
    got = FeatureStore.open(folder).get(5)
    assert got.shape == (6, D)
    np.testing.assert_array_equal(got, grid.reshape(6, D))
    np.testing.assert_array_equal(got[4], grid[1, 1])  # row-major: (h, w) -> h * W + w


def test_folder_npy_and_fc_vectors(tmp_path, regions):
    folder = tmp_path / "npy"
    folder.mkdir()
    for image_id, array in regions.items():
        np.save(folder / f"{image_id}.npy", array.astype(np.float16))
    np.save(folder / "77.npy", np.arange(D, dtype=np.float64))  # a cocobu_fc vector is one region
    store = FeatureStore.open(folder)
    assert len(store) == 4
    np.testing.assert_array_equal(store.get(42), regions[42].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(store.get(77), np.arange(D, dtype=np.float32)[None])


def test_folder_errors_name_the_file_and_id(tmp_path, regions):
    folder = _write_folder(tmp_path / "att", regions)
    store = FeatureStore.open(folder)
    with pytest.raises(MissingFeaturesError) as caught:
        store.get(123)
    message = str(caught.value)
    assert str(folder) in message and "123.npz" in message and "str(image_id)" in message and "cocoid" in message
    with pytest.raises(KeyError):  # a missing id is also a KeyError
        store.get("000000000009")

    np.savez(folder / "5.npz", boxes=np.zeros((2, 4)), scores=np.zeros(2))
    with pytest.raises(FeatureFormatError, match=r"5\.npz.*'5'.*\['boxes', 'scores'\].*'feat'"):
        FeatureStore.open(folder).get(5)
    (folder / "6.npz").write_bytes(b"not a zip")
    with pytest.raises(FeatureFormatError, match=r"6\.npz.*cannot be read"):
        FeatureStore.open(folder).get(6)
    np.save(folder / "9.npy", regions[9])
    with pytest.raises(FeatureFormatError, match=r"'9' has two files"):
        FeatureStore.open(folder)


def test_bad_shapes_and_dtypes(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    np.save(folder / "1.npy", np.zeros((1, 2, 3, 4), dtype=np.float32))
    np.save(folder / "2.npy", np.array(["a", "b"]))
    store = FeatureStore.open(folder)
    with pytest.raises(FeatureFormatError, match=r"1\.npy.*shape \(1, 2, 3, 4\)"):
        store.get(1)
    with pytest.raises(FeatureFormatError, match=r"2\.npy.*dtype"):
        store.get(2)


# HDF5


def test_h5_per_image_datasets(tmp_path, regions):
    path = tmp_path / "feats.h5"
    with h5py.File(path, "w") as handle:
        for image_id, array in regions.items():
            handle[str(image_id)] = array
        handle["7"] = np.arange(2 * 2 * D, dtype=np.float16).reshape(2, 2, D)  # a grid, stored as float16
    store = FeatureStore.open(path)
    assert store.layout == "h5" and len(store) == 4 and store.dim == D
    for image_id, array in regions.items():
        np.testing.assert_array_equal(store.get(image_id), array)
    np.testing.assert_array_equal(store.get(7), np.arange(4 * D, dtype=np.float32).reshape(4, D))
    with pytest.raises(MissingFeaturesError, match=rf"{path.name}.*image id 8 .*'8'"):
        store.get(8)
    store.close()


@pytest.mark.parametrize("ids_as", ["int", "bytes", "float"])
def test_h5_packed_with_num_boxes(tmp_path, regions, ids_as):
    packed, counts = _padded(regions)
    image_ids = {"int": np.array(IDS, dtype=np.int64), "bytes": np.array([str(i).encode() for i in IDS]),
                 "float": np.array(IDS, dtype=np.float64)}[ids_as]
    path = tmp_path / "updown.hdf5"
    with h5py.File(path, "w") as handle:
        handle["features"] = packed
        handle["image_ids"] = image_ids
        handle["num_boxes"] = counts
    store = FeatureStore.open(path)
    assert store.layout == "h5-packed" and len(store) == 3 and store.dim == D
    for image_id, array in regions.items():
        got = store.get(image_id)
        assert got.shape == array.shape  # the padding (99s) is gone
        np.testing.assert_array_equal(got, array)


def test_h5_packed_with_mask_and_string_ids(tmp_path, regions):
    packed, counts = _padded(regions)
    mask = np.arange(packed.shape[1])[None, :] < counts[:, None]
    path = tmp_path / "masked.h5"
    with h5py.File(path, "w") as handle:
        handle["features"] = packed
        handle.create_dataset("image_ids", data=[str(i) for i in IDS], dtype=h5py.string_dtype())
        handle["mask"] = mask.astype(np.uint8)
    store = FeatureStore.open(path)
    for image_id, array in regions.items():
        np.testing.assert_array_equal(store.get(image_id), array)


def test_h5_packed_vectors(tmp_path):
    vectors = np.arange(2 * D, dtype=np.float32).reshape(2, D)  # (num_images, D): one fc vector per image
    path = tmp_path / "fc.h5"
    with h5py.File(path, "w") as handle:
        handle["features"], handle["image_ids"] = vectors, [3, 4]
    store = FeatureStore.open(path)
    assert store.layout == "h5-packed" and store.dim == D
    np.testing.assert_array_equal(store.get(4), vectors[1:])


def test_h5_open_reads_no_features(tmp_path, regions, monkeypatch):
    packed, counts = _padded(regions)
    path = tmp_path / "lazy.h5"
    with h5py.File(path, "w") as handle:
        handle["features"], handle["image_ids"], handle["num_boxes"] = packed, IDS, counts
    read: list[str] = []
    original = h5py.Dataset.__getitem__

    def recording(self, item):
        read.append(self.name)
        return original(self, item)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    store = FeatureStore.open(path)
    assert "/features" not in read and store.dim == D and "/features" not in read
    store.get(42)
    assert read.count("/features") == 1


def test_h5_errors(tmp_path, regions):
    packed, counts = _padded(regions)
    cases = {
        "no_ids": ({"features": packed}, r"no 'image_ids'"),
        "short_ids": ({"features": packed, "image_ids": IDS[:2]}, r"'image_ids' has 2 entries.*3 images"),
        "repeated": ({"features": packed, "image_ids": [9, 9, 42]}, r"repeats image id '9'"),
        "too_many": ({"features": packed, "image_ids": IDS, "num_boxes": [5, 3, 6]},
                     r"'num_boxes'\[2\] is 6, outside 0\.\.5"),
        "bad_mask": ({"features": packed, "image_ids": IDS, "mask": np.ones((3, 4))}, r"'mask' has shape \(3, 4\)"),
    }
    for name, (datasets, pattern) in cases.items():
        path = tmp_path / f"{name}.h5"
        with h5py.File(path, "w") as handle:
            for key, value in datasets.items():
                handle[key] = value
        with pytest.raises(FeatureFormatError, match=pattern) as caught:
            FeatureStore.open(path)
        assert str(path) in str(caught.value), name
    path = tmp_path / "groups.h5"
    with h5py.File(path, "w") as handle:
        handle.create_group("9")
    with pytest.raises(FeatureFormatError, match=r"member '9' is a group.*accepted layouts"):
        FeatureStore.open(path)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(FeatureFormatError, match=r"broken\.h5.*cannot be opened as HDF5"):
        FeatureStore.open(broken)


# packed .npz


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_packed_with_num_boxes(tmp_path, regions, compressed):
    packed, counts = _padded(regions)
    path = tmp_path / "feats.npz"
    (np.savez_compressed if compressed else np.savez)(path, features=packed, image_ids=np.array(IDS),
                                                      num_boxes=counts)
    store = FeatureStore.open(path)
    assert store.layout == "npz-packed" and len(store) == 3 and store.dim == D
    for image_id, array in regions.items():
        np.testing.assert_array_equal(store.get(image_id), array)
    # np.savez output is memory-mapped rather than loaded whole
    assert isinstance(store._opened()["features"], np.memmap) is (not compressed)


def test_npz_packed_grid_with_mask(tmp_path):
    grid = np.arange(2 * 2 * 3 * D, dtype=np.float32).reshape(2, 2, 3, D)  # (num_images, H, W, D)
    mask = np.ones((2, 6), dtype=bool)
    mask[1, 4:] = False
    path = tmp_path / "grid.npz"
    np.savez(path, features=grid, image_ids=np.array(["a", "b"]), mask=mask)
    store = FeatureStore.open(path)
    np.testing.assert_array_equal(store.get("a"), grid[0].reshape(6, D))
    np.testing.assert_array_equal(store.get("b"), grid[1].reshape(6, D)[:4])


def test_npz_errors(tmp_path, regions):
    single = tmp_path / "9.npz"
    np.savez(single, feat=regions[9])
    with pytest.raises(FeatureFormatError, match=r"9\.npz.*\['feat'\].*pass the folder.*accepted layouts"):
        FeatureStore.open(single)
    packed, _ = _padded(regions)
    path = tmp_path / "objects.npz"
    np.savez(path, features=packed, image_ids=np.array([9, "x", None], dtype=object))
    with pytest.raises(FeatureFormatError, match=r"objects\.npz.*'image_ids'.*pickle"):
        FeatureStore.open(path)


# opening, pickling, checking


def test_open_errors_list_the_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*does not exist"):
        FeatureStore.open(tmp_path / "nowhere")
    text = tmp_path / "feats.txt"
    text.write_text("1 2 3")
    with pytest.raises(FeatureFormatError, match=r"feats\.txt.*accepted layouts.*\.h5/\.hdf5.*'image_ids'"):
        FeatureStore.open(text)
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "cocobu.h5").write_bytes(b"")
    with pytest.raises(FeatureFormatError, match=r"features: no <image_id>\.npz.*'cocobu\.h5'.*feature file itself"):
        FeatureStore.open(folder)


def _all_layouts(tmp_path: Path, regions: dict[int, np.ndarray]) -> list[Path]:
    packed, counts = _padded(regions)
    folder = _write_folder(tmp_path / "folder", regions)
    per_image = tmp_path / "per_image.h5"
    with h5py.File(per_image, "w") as handle:
        for image_id, array in regions.items():
            handle[str(image_id)] = array
    packed_h5 = tmp_path / "packed.h5"
    with h5py.File(packed_h5, "w") as handle:
        handle["features"], handle["image_ids"], handle["num_boxes"] = packed, IDS, counts
    packed_npz = tmp_path / "packed.npz"
    np.savez(packed_npz, features=packed, image_ids=np.array(IDS), num_boxes=counts)
    return [folder, per_image, packed_h5, packed_npz]


def test_stores_pickle_before_and_after_reading(tmp_path, regions):
    for path in _all_layouts(tmp_path, regions):
        store = FeatureStore.open(path)
        fresh = pickle.loads(pickle.dumps(store))  # nothing opened yet
        np.testing.assert_array_equal(fresh.get(42), regions[42])
        store.get(9)  # now the handle is open: it must not travel
        copy = pickle.loads(pickle.dumps(store))
        assert len(copy) == 3 and copy.dim == D and repr(copy) == repr(store)
        for image_id, array in regions.items():
            np.testing.assert_array_equal(copy.get(image_id), array)
        store.close(), copy.close(), fresh.close()


def test_dataloader_workers_read_an_open_h5_store(tmp_path, regions):
    store = FeatureStore.open(_all_layouts(tmp_path, regions)[2])
    store.get(9)  # opened in the parent before the workers start

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(IDS)

        def __getitem__(self, index):
            return store.get(IDS[index])

    loader = torch.utils.data.DataLoader(Images(), batch_size=3, num_workers=2, collate_fn=pad_features)
    (features, mask), = list(loader)
    assert mask.sum(1).tolist() == [5, 3, 4]
    for row, image_id in enumerate(IDS):
        np.testing.assert_array_equal(features[row][mask[row]].numpy(), regions[image_id])


def test_check_names_the_missing_ids(tmp_path, regions):
    for path in _all_layouts(tmp_path, regions):
        store = FeatureStore.open(path)
        store.check([9, "42", np.int64(391895), 9])
        with pytest.raises(MissingFeaturesError) as caught:
            store.check([9, 1, 2, 42, 3, 4, 5, 6, 7, 2])
        message = str(caught.value)
        assert str(path) in message and "7 of 9 image ids" in message
        assert "['1', '2', '3', '4', '5', ...]" in message and "'7'" not in message.split("ids like")[0]


# pad_features


def test_pad_features():
    arrays = [_regions(0, 3), np.zeros((0, D), dtype=np.float32), _regions(1, 5).astype(np.float16),
              torch.from_numpy(_regions(2, 1))]
    padded, mask = pad_features(arrays)
    assert padded.shape == (4, 5, D) and padded.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.sum(1).tolist() == [3, 0, 5, 1]
    np.testing.assert_array_equal(padded[0, :3].numpy(), arrays[0])
    np.testing.assert_array_equal(padded[2].numpy(), arrays[2].astype(np.float32))
    np.testing.assert_array_equal(padded[3, :1].numpy(), arrays[3].numpy())
    assert not padded[~mask].any()
    with pytest.raises(ValueError, match=r"item 1 has D=4 but item 0 has D=8"):
        pad_features([_regions(0, 2), _regions(0, 2, d=4)])
    with pytest.raises(ValueError, match=r"item 0 has shape \(2, 3, 8\)"):
        pad_features([np.zeros((2, 3, D))])
    with pytest.raises(ValueError, match="empty batch"):
        pad_features([])
