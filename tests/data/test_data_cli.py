"""``crossmedia data``: every failure of prepare is one line naming the name or file, with an exit code."""
from __future__ import annotations

import numpy as np
import pytest

from crossmedia.data.cli import main


@pytest.fixture(autouse=True)
def _private_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_DATA", str(tmp_path / "data"))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err  # one line, no traceback
    assert "Traceback" not in err
    return err


def test_list_names_every_dataset(capsys):
    code, out, _ = _run(capsys, "list")
    names = [line.split()[0] for line in out.splitlines()]
    assert code == 0 and {"digits", "cifar10", "scenes", "summe", "tvsum-builtin", "coco-captions"} <= set(names)


def test_unknown_dataset_is_one_line_suggesting_the_closest_name(capsys, tmp_path):
    code, _, err = _run(capsys, "prepare", "cifar-10", "--source", str(tmp_path))
    assert code == 2
    assert _one_line(err).startswith("crossmedia data prepare: unknown dataset 'cifar-10'. Did you mean 'cifar10' or 'cifar100'?")
    assert "crossmedia data list" in err


def test_a_real_dataset_without_source_says_how_to_pass_it(capsys):
    code, _, err = _run(capsys, "prepare", "cifar10")
    assert code == 1 and "crossmedia data prepare cifar10 --source DIR" in _one_line(err)


def test_a_missing_source_folder_is_named(capsys, tmp_path):
    code, _, err = _run(capsys, "prepare", "nuswide", "--source", str(tmp_path / "nowhere"))
    assert code == 1 and f"{tmp_path / 'nowhere'} does not exist" in _one_line(err)


def test_a_damaged_cifar10_file_is_named(capsys, tmp_path):
    source = tmp_path / "cifar-10-batches-bin"
    source.mkdir()
    record = np.zeros(3073, dtype=np.uint8)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        record.tofile(source / name)
    with open(source / "data_batch_3.bin", "ab") as handle:
        handle.write(b"\x00" * 5)
    code, _, err = _run(capsys, "prepare", "cifar10", "--source", str(source))
    assert code == 1 and "data_batch_3.bin: 3078 bytes is not a whole number of 3073-byte records" in _one_line(err)


@pytest.mark.parametrize("name", ["summe", "tvsum"])
def test_a_random_bytes_h5_is_named_as_not_hdf5(capsys, tmp_path, name):
    path = tmp_path / f"eccv16_dataset_{name}_google_pool5.h5"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    code, _, err = _run(capsys, "prepare", name, "--source", str(tmp_path))
    assert code == 1
    assert f"{path}: not a readable HDF5 file" in _one_line(err) and "download it again" in err


def test_a_builtin_is_generated_where_asked(capsys, tmp_path):
    code, out, err = _run(capsys, "prepare", "digits", "--root", str(tmp_path / "d"))
    assert code == 0 and out == f"digits ready in {tmp_path / 'd'}\n" and (tmp_path / "d" / "query.txt").is_file()


def test_usage_errors_exit_2(capsys):
    assert main(["prepare"]) == 2 and "the following arguments are required: name" in capsys.readouterr().err
