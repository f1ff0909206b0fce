"""ACMR-style labelled cross-modal features: the .npy (ACMR names) and .mat (DSCMR) layouts, labels, errors, pickles."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat
from scipy.sparse import csr_matrix

from crossmedia.data.acmr_features import (
    PICKLE_CONVERSION,
    acmr_layout,
    class_ids,
    looks_like_acmr_features,
    read_acmr_features,
)
from crossmedia.data.features import FeatureFormatError

RNG = np.random.default_rng(0)
TRAIN = {"img": RNG.standard_normal((6, 4)), "txt": RNG.random((6, 5)), "lab": np.array([1, 2, 3, 1, 2, 3])}
TEST = {"img": RNG.standard_normal((3, 4)), "txt": RNG.random((3, 5)), "lab": np.array([3, 1, 2])}


def _write_npy(root: Path, split: str, data: dict[str, np.ndarray]) -> None:
    np.save(root / f"{split}_img_feats.npy", data["img"])
    np.save(root / f"{split}_txt_vecs.npy", data["txt"])
    np.save(root / f"{split}_labels.npy", data["lab"])


def _write_mat(root: Path, split: str, data: dict[str, np.ndarray]) -> None:
    savemat(root / f"{split}_img.mat", {f"{split}_img": data["img"]})
    savemat(root / f"{split}_txt.mat", {f"{split}_txt": csr_matrix(data["txt"])})  # sparse bag of words
    savemat(root / f"{split}_img_lab.mat", {f"{split}_img_lab": data["lab"].reshape(-1, 1) - 1})  # 0-based


def test_npy_layout_values_and_one_based_labels(tmp_path: Path) -> None:
    _write_npy(tmp_path, "train", TRAIN)
    _write_npy(tmp_path, "test", TEST)
    assert acmr_layout(tmp_path) == "npy" and looks_like_acmr_features(tmp_path)
    splits = read_acmr_features(tmp_path)
    assert list(splits) == ["train", "test"]
    test = splits["test"]
    assert test.images.dtype == np.float32 and test.texts.dtype == np.float32
    np.testing.assert_allclose(test.images, TEST["img"].astype(np.float32))
    np.testing.assert_allclose(test.texts, TEST["txt"].astype(np.float32))
    np.testing.assert_array_equal(test.labels, [2, 0, 1])
    np.testing.assert_array_equal(splits["train"].labels, TRAIN["lab"] - 1)
    assert test.files[2].name == "test_labels.npy"


def test_mat_layout_zero_based_labels_and_val(tmp_path: Path) -> None:
    for split, data in (("train", TRAIN), ("val", TEST), ("test", TEST)):
        _write_mat(tmp_path, split, data)
    assert acmr_layout(tmp_path) == "mat"
    splits = read_acmr_features(tmp_path)
    assert list(splits) == ["train", "val", "test"]
    np.testing.assert_allclose(splits["test"].texts, TEST["txt"].astype(np.float32))
    np.testing.assert_allclose(splits["train"].images, TRAIN["img"].astype(np.float32))
    np.testing.assert_array_equal(splits["test"].labels, [2, 0, 1])


def test_one_hot_labels_and_label_base(tmp_path: Path) -> None:
    one_hot = np.eye(3, dtype=np.uint8)[[2, 0, 1]]
    np.testing.assert_array_equal(class_ids("x", one_hot, 3, base=1), [2, 0, 1])  # base is for ids only
    np.testing.assert_array_equal(class_ids("x", np.array([[0.0, 2.0, 1.0]]), 3, base=0), [0, 2, 1])  # a row
    _write_npy(tmp_path, "train", {**TRAIN, "lab": TRAIN["lab"] - 1})
    _write_npy(tmp_path, "test", TEST)
    with pytest.raises(FeatureFormatError, match=r"train_labels\.npy: class id 0 below 1.*label_base=0"):
        read_acmr_features(tmp_path)
    assert read_acmr_features(tmp_path, label_base=0)["train"].labels.tolist() == (TRAIN["lab"] - 1).tolist()


@pytest.mark.parametrize(("labels", "message"), [
    (np.array([[1, 1, 0], [0, 1, 0], [1, 0, 0]]), "row 0 has 2 classes set"),
    (np.array([[2, 0, 0], [0, 1, 0], [1, 0, 0]]), "not one-hot"),
    (np.array([1.5, 2, 3]), "not whole numbers"),
    (np.array([1, 2]), r"shape \(2,\), expected 3 class ids"),
])
def test_bad_labels_named(labels: np.ndarray, message: str) -> None:
    with pytest.raises(FeatureFormatError, match=rf"test_labels\.npy: .*{message}"):
        class_ids("test_labels.npy", labels, 3, base=1)


def test_row_counts_and_widths_must_agree(tmp_path: Path) -> None:
    _write_npy(tmp_path, "train", TRAIN)
    _write_npy(tmp_path, "test", {**TEST, "txt": TEST["txt"][:2]})
    with pytest.raises(FeatureFormatError, match=r"test_txt_vecs\.npy: 2 rows, but test_img_feats\.npy has 3"):
        read_acmr_features(tmp_path)
    _write_npy(tmp_path, "test", {**TEST, "img": TEST["img"][:, :3]})
    with pytest.raises(FeatureFormatError, match=r"test_img_feats\.npy: 3 columns, but train_img_feats\.npy has 4"):
        read_acmr_features(tmp_path)


def test_missing_test_split_lists_folder(tmp_path: Path) -> None:
    _write_npy(tmp_path, "train", TRAIN)
    with pytest.raises(FeatureFormatError, match=r"no test_img_feats\.npy, test_txt_vecs\.npy, test_labels\.npy "
                                                 r"for split 'test'; the folder holds train_img_feats\.npy"):
        read_acmr_features(tmp_path)
    with pytest.raises(FeatureFormatError, match="no cross-modal feature files.*holds nothing"):
        read_acmr_features(tmp_path / "empty")


def test_bad_feature_arrays_named(tmp_path: Path) -> None:
    _write_npy(tmp_path, "train", {**TRAIN, "txt": (TRAIN["txt"] > 0.5).astype(np.int32)})
    _write_npy(tmp_path, "test", TEST)
    with pytest.raises(FeatureFormatError, match=r"train_txt_vecs\.npy: text features have dtype int32"):
        read_acmr_features(tmp_path)
    np.save(tmp_path / "train_txt_vecs.npy", np.array([[0.5]] * 6, dtype=object))
    with pytest.raises(FeatureFormatError, match=r"train_txt_vecs\.npy: array of Python objects.*refused"):
        read_acmr_features(tmp_path)


def test_mat_errors_named(tmp_path: Path) -> None:
    _write_mat(tmp_path, "train", TRAIN)
    _write_mat(tmp_path, "test", TEST)
    savemat(tmp_path / "test_img.mat", {"features": TEST["img"]})
    with pytest.raises(FeatureFormatError, match=r"test_img\.mat: no variable 'test_img'.*holds features"):
        read_acmr_features(tmp_path)
    (tmp_path / "test_img.mat").write_bytes(b"not a mat file")
    with pytest.raises(FeatureFormatError, match=r"test_img\.mat: not a readable MATLAB file"):
        read_acmr_features(tmp_path)


class _MakesDir:
    """Unpickling this creates a folder: proof that nothing was unpickled when the folder is absent."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.path),)


def test_acmr_pickles_refused_with_conversion(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    for name in ("train_img_feats", "train_txt_vecs", "train_labels"):
        (tmp_path / f"{name}.pkl").write_bytes(pickle.dumps(_MakesDir(marker)))
    assert acmr_layout(tmp_path) == "pickle" and looks_like_acmr_features(tmp_path)
    with pytest.raises(FeatureFormatError, match=r"(?s)never unpickle.*np\.save") as error:
        read_acmr_features(tmp_path)
    assert PICKLE_CONVERSION in str(error.value) and not marker.exists()
    compile(PICKLE_CONVERSION, "conversion", "exec")  # the script we print is valid Python


def test_pickle_under_npy_name_refused(tmp_path: Path) -> None:
    _write_npy(tmp_path, "train", TRAIN)
    _write_npy(tmp_path, "test", TEST)
    (tmp_path / "test_labels.npy").write_bytes(pickle.dumps(TEST["lab"]))
    with pytest.raises(FeatureFormatError, match=r"test_labels\.npy: not a NumPy \.npy file"):
        read_acmr_features(tmp_path)
