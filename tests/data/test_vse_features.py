"""VSE++'s precomputed layout ({split}_ims.npy, {split}_caps.txt): values, caption -> image, row layouts, errors."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from crossmedia.data.features import FeatureFormatError
from crossmedia.data.vse_features import (
    VSEPP_DEV_CAPTIONS,
    looks_like_vse_precomp,
    read_vse_precomp,
    vse_precomp_splits,
)


def _write(root: Path, split: str, images: np.ndarray, captions: list[str]) -> None:
    np.save(root / f"{split}_ims.npy", images)
    (root / f"{split}_caps.txt").write_text("".join(caption + "\n" for caption in captions), encoding="utf-8")


def _captions(num_images: int) -> list[str]:
    return [f"Image {i}, caption {j}." for i in range(num_images) for j in range(5)]


def test_one_row_per_image(tmp_path: Path) -> None:
    images = np.arange(12, dtype=np.float64).reshape(3, 4)
    _write(tmp_path, "test", images, _captions(3))
    split = read_vse_precomp(tmp_path, "test")
    assert split.images.dtype == np.float32 and split.images.shape == (3, 4)
    np.testing.assert_array_equal(split.images, images)
    assert split.captions[7] == "Image 1, caption 2." and len(split.captions) == 15
    np.testing.assert_array_equal(split.caption_image, [0] * 5 + [1] * 5 + [2] * 5)
    assert split.im_div == 5
    assert split.tokens()[7] == ["image", "1", "caption", "2"]


def test_one_row_per_caption_takes_every_fifth_row(tmp_path: Path) -> None:
    images = np.arange(20, dtype=np.float32).reshape(10, 2)  # 2 images x 5 captions, e.g. 10-crop features
    _write(tmp_path, "train", images, _captions(2))
    split = read_vse_precomp(tmp_path, "train")
    assert split.im_div == 1
    np.testing.assert_array_equal(split.images, images[[0, 5]])
    np.testing.assert_array_equal(split.caption_image, [0] * 5 + [1] * 5)


def test_max_captions_keeps_first_images(tmp_path: Path) -> None:
    _write(tmp_path, "dev", np.eye(4, dtype=np.float32), _captions(4))
    split = read_vse_precomp(tmp_path, "dev", max_captions=10)
    assert len(split.captions) == 10 and split.images.shape == (2, 4)
    np.testing.assert_array_equal(split.images, np.eye(4)[:2])
    assert VSEPP_DEV_CAPTIONS == 5000
    with pytest.raises(ValueError, match="multiple of 5"):
        read_vse_precomp(tmp_path, "dev", max_captions=7)


def test_detection_and_splits(tmp_path: Path) -> None:
    assert not looks_like_vse_precomp(tmp_path)
    _write(tmp_path, "testall", np.zeros((1, 2), np.float32), _captions(1))
    np.save(tmp_path / "dev_ims.npy", np.zeros((1, 2), np.float32))  # no dev_caps.txt: not a split
    assert looks_like_vse_precomp(tmp_path) and vse_precomp_splits(tmp_path) == ["testall"]
    assert not looks_like_vse_precomp(tmp_path / "testall_ims.npy")


def test_missing_split_lists_what_was_found(tmp_path: Path) -> None:
    _write(tmp_path, "train", np.zeros((1, 2), np.float32), _captions(1))
    with pytest.raises(FeatureFormatError, match=r"no test_ims\.npy or test_caps\.txt.*train_caps\.txt, "
                                                 r"train_ims\.npy.*splits found: train"):
        read_vse_precomp(tmp_path, "test")
    with pytest.raises(ValueError, match="unknown VSE"):
        read_vse_precomp(tmp_path, "val")


def test_caption_count_not_multiple_of_five(tmp_path: Path) -> None:
    _write(tmp_path, "test", np.zeros((2, 3), np.float32), _captions(2)[:9])
    with pytest.raises(FeatureFormatError, match=r"test_caps\.txt: 9 captions, not a multiple of 5"):
        read_vse_precomp(tmp_path, "test")


def test_rows_not_matching_captions(tmp_path: Path) -> None:
    _write(tmp_path, "test", np.zeros((3, 3), np.float32), _captions(2))
    with pytest.raises(FeatureFormatError, match=r"test_ims\.npy: 3 rows, but test_caps\.txt has 10 captions; "
                                                 r"expected 2 rows"):
        read_vse_precomp(tmp_path, "test")


def test_blank_line_named(tmp_path: Path) -> None:
    captions = _captions(1)
    captions[2] = "   "
    _write(tmp_path, "test", np.zeros((1, 3), np.float32), captions)
    with pytest.raises(FeatureFormatError, match=r"test_caps\.txt: line 3 is blank"):
        read_vse_precomp(tmp_path, "test")


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((5, 3), np.int64), "dtype int64, expected float"),
    (np.zeros((1, 5, 3), np.float32), r"shape \(1, 5, 3\), expected 2-D"),
    (np.array([[1.0], [2.0]], dtype=object), "Python objects.*refused"),
])
def test_bad_arrays_named(tmp_path: Path, array: np.ndarray, message: str) -> None:
    _write(tmp_path, "test", array, _captions(1))
    with pytest.raises(FeatureFormatError, match=rf"test_ims\.npy: .*{message}"):
        read_vse_precomp(tmp_path, "test")


def test_pickle_under_npy_name_refused(tmp_path: Path) -> None:
    _write(tmp_path, "test", np.zeros((1, 3), np.float32), _captions(1))
    (tmp_path / "test_ims.npy").write_bytes(pickle.dumps(np.zeros((1, 3), np.float32)))
    with pytest.raises(FeatureFormatError, match=r"test_ims\.npy: not a NumPy \.npy file.*never unpickle"):
        read_vse_precomp(tmp_path, "test")


def test_large_float32_file_is_memory_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("crossmedia.data.vse_features.MMAP_BYTES", 16)
    _write(tmp_path, "test", np.ones((2, 8), np.float32), _captions(2))
    split = read_vse_precomp(tmp_path, "test")
    assert isinstance(split.images, np.memmap) and float(split.images.sum()) == 16.0
