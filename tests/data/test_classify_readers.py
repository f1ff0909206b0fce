"""Classification readers: ImageFolder and the CIFAR-100 binary version, on files written here."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmedia.data.cifar10 import CIFAR100, prepare_cifar100, read_cifar_binary
from crossmedia.data.deephash import read_list
from crossmedia.data.imagefolder import ImageFolderError, load_image_array, read_image_folder
from crossmedia.data.registry import prepare


# ImageFolder

def _image_folder(root: Path, counts: dict[str, int]) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    written = {}
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        written[name] = []
        for i in range(count):
            pixels = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
            written[name].append(pixels)
    return written


def test_image_folder_classes_are_sorted_folders(tmp_path):
    written = _image_folder(tmp_path, {"dog": 2, "cat": 3})
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"\0")  # hidden files are not images, and not errors
    paths, labels, classes = read_image_folder(tmp_path)
    assert classes == ("cat", "dog")
    assert labels.tolist() == [0, 0, 0, 1, 1]
    assert [p.name for p in paths] == ["000.png", "001.png", "002.png", "000.png", "001.png"]
    np.testing.assert_array_equal(load_image_array(paths[3], 6), written["dog"][0])
    assert load_image_array(paths[0], 4).shape == (4, 4, 3)


@pytest.mark.parametrize("damage, named", [
    (lambda root: (root / "cat" / "notes.txt").write_text("x"), "cat/notes.txt: not an image file"),
    (lambda root: (root / "empty").mkdir(), "class folder {root}/empty has no images"),
    (lambda root: (root / "stray.png").write_bytes(b"x"), "{root}/stray.png: a file beside the class folders"),
])
def test_malformed_image_folder_is_refused_naming_the_file(tmp_path, damage, named):
    _image_folder(tmp_path, {"cat": 1, "dog": 1})
    damage(tmp_path)
    with pytest.raises(ImageFolderError) as caught:
        read_image_folder(tmp_path)
    assert named.format(root=tmp_path) in str(caught.value)


def test_image_folder_without_classes_and_undecodable_image_are_refused(tmp_path):
    with pytest.raises(ImageFolderError, match="holds no class folders"):
        read_image_folder(tmp_path)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "broken.png").write_bytes(b"not a png")
    [path], _, _ = read_image_folder(tmp_path)
    with pytest.raises(ImageFolderError, match=r"cat/broken.png: not a readable image"):
        load_image_array(path, 8)


# CIFAR-100 binary: records of coarse byte, fine byte, 3072 CHW pixel bytes

def _fake_cifar100(folder: Path, per_class: dict[str, int]) -> dict[str, tuple]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    written = {}
    for name, per in per_class.items():
        fine = np.repeat(np.arange(100, dtype=np.uint8), per)
        coarse = (fine // 5).astype(np.uint8)
        chw = rng.integers(0, 256, size=(len(fine), 3, 32, 32), dtype=np.uint8)
        np.concatenate([coarse[:, None], fine[:, None], chw.reshape(len(fine), -1)], axis=1).tofile(folder / name)
        written[name] = (chw.transpose(0, 2, 3, 1), coarse, fine)
    (folder / "fine_label_names.txt").write_text("".join(f"class{i}\n" for i in range(100)))
    return written


def test_cifar100_records_are_decoded(tmp_path):
    written = _fake_cifar100(tmp_path / "cifar-100-binary", {"train.bin": 3, "test.bin": 1})
    images, labels, sizes, (coarse_names, fine_names) = read_cifar_binary(tmp_path, CIFAR100)  # parent works
    assert sizes == [300, 100] and images.shape == (400, 32, 32, 3) and labels.shape == (400, 2)
    np.testing.assert_array_equal(images[:300], written["train.bin"][0])
    np.testing.assert_array_equal(labels[300:, 0], written["test.bin"][1])
    np.testing.assert_array_equal(labels[300:, 1], written["test.bin"][2])
    assert fine_names[7] == "class7" and len(coarse_names) == 20


def test_cifar100_prepare_holds_out_validation_images(tmp_path):
    written = _fake_cifar100(tmp_path / "bin", {"train.bin": 3, "test.bin": 1})
    root = prepare_cifar100(tmp_path / "cifar100", source=tmp_path / "bin", val_per_class=1, progress=False)
    lists = {split: read_list(root / f"{split}.txt") for split in ("train", "query", "database")}
    assert [len(lists[s]) for s in ("train", "query", "database")] == [200, 100, 300]
    val = {p for p, _ in lists["database"]} - {p for p, _ in lists["train"]}
    assert len(val) == 100 and len({int(Path(p).stem) // 3 for p in val}) == 100  # one per class
    path, one_hot = lists["query"][5]
    np.testing.assert_array_equal(np.asarray(Image.open(root / path)), written["test.bin"][0][5])
    assert one_hot.argmax() == 5 and one_hot.shape == (100,)
    assert (root / "coarse.txt").read_text().split()[:4] == ["0", "0", "0", "0"]


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.write_bytes(f.read_bytes()[:-5]), "not a whole number of 3074-byte records"),
    (lambda f: f.write_bytes(b"\x00\xc8" + f.read_bytes()[2:]), "record 0 has fine label byte 200, expected 0..99"),
    (lambda f: f.write_bytes(b"\x15" + f.read_bytes()[1:]), "record 0 has coarse label byte 21, expected 0..19"),
])
def test_malformed_cifar100_file_is_named(tmp_path, damage, message):
    _fake_cifar100(tmp_path / "bin", {"train.bin": 1, "test.bin": 1})
    damage(tmp_path / "bin" / "test.bin")
    with pytest.raises(ValueError, match=message) as caught:
        prepare("cifar100", source=tmp_path / "bin", root=tmp_path / "out", progress=False)
    assert str(tmp_path / "bin" / "test.bin") in str(caught.value)


def test_cifar100_python_version_is_refused_without_unpickling(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test", "meta"):
        (folder / name).write_bytes(b"\x80\x04 not to be unpickled")
    with pytest.raises(ValueError, match="never unpickles"):
        prepare("cifar100", source=folder, root=tmp_path / "out")


def test_data_cli_prepare_cifar100_reads_the_local_copy(tmp_path, capsys):
    from crossmedia.data.cli import main

    _fake_cifar100(tmp_path / "cifar-100-binary", {"train.bin": 2, "test.bin": 1})
    code = main(["prepare", "cifar100", "--source", str(tmp_path), "--root", str(tmp_path / "out")])
    assert code == 1  # read and checked, then refused: 2 images per class cannot hold out 50 for validation
    assert "class 0 has 2 training images; holding out 50 per class" in capsys.readouterr().err
