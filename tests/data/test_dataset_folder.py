"""The dataset-folder protocol: meta.json deleted first, written last, and read back as the mark of a ready folder."""
from __future__ import annotations

import pytest

from crossmedia.data.folder import DatasetFolder, DatasetFolderError, read_meta, recorded_seed, write_meta


def _files_there(root, meta):
    return (root / "data.txt").is_file()


def test_a_folder_is_ready_only_with_the_expected_meta_and_complete_files(tmp_path):
    folder = DatasetFolder(tmp_path / "set", {"name": "set", "seed": 1}, complete=_files_there)
    assert not folder.ready()
    with folder.rewriting() as meta:
        assert not (tmp_path / "set" / "meta.json").exists() and (tmp_path / "set").is_dir()
        (tmp_path / "set" / "data.txt").write_text("x")
        meta.update(name="set", kind="image", seed=1)
    assert folder.ready() and read_meta(tmp_path / "set") == {"name": "set", "kind": "image", "seed": 1}
    assert not DatasetFolder(tmp_path / "set", {"name": "set", "seed": 2}).ready()  # another seed
    (tmp_path / "set" / "data.txt").unlink()
    assert not folder.ready()  # files gone


def test_an_interrupted_rewrite_leaves_no_meta(tmp_path):
    folder = DatasetFolder(tmp_path, {"name": "set"})
    write_meta(tmp_path, {"name": "set", "seed": 0})
    with pytest.raises(RuntimeError, match="interrupted"), folder.rewriting() as meta:
        meta.update(name="set")
        raise RuntimeError("interrupted")
    assert read_meta(tmp_path) is None and not folder.ready()


def test_a_meta_without_the_expected_values_is_refused(tmp_path):
    with pytest.raises(ValueError, match="expected values of seed"), \
            DatasetFolder(tmp_path, {"name": "set", "seed": 3}).rewriting() as meta:
        meta.update(name="set", seed=4)
    assert read_meta(tmp_path) is None


def test_recorded_seed_is_that_of_the_same_dataset_only(tmp_path):
    assert recorded_seed(tmp_path, "set") == 0
    write_meta(tmp_path, {"name": "set", "seed": 7})
    assert recorded_seed(tmp_path, "set") == 7 and recorded_seed(tmp_path, "other") == 0


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_broken_meta_names_the_file(tmp_path, text):
    (tmp_path / "meta.json").write_text(text)
    with pytest.raises(DatasetFolderError, match=rf"{tmp_path / 'meta.json'}: .*delete it to re-prepare"):
        read_meta(tmp_path)


def test_concurrent_prepares_of_one_folder_write_it_once(tmp_path, monkeypatch):
    """Two callers preparing the same folder at once (two runs, two test workers): the second waits
    for the first's lock, then finds the folder ready and keeps it; without the lock both write."""
    import threading
    import time

    from crossmedia.data import registry

    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path / "home"))
    writes, inside, most_inside = [], [0], [0]

    def preparer(root, *, source, seed, progress):
        folder = DatasetFolder(root, {"name": "slow", "seed": seed})
        if folder.ready():
            return root
        with folder.rewriting() as meta:
            inside[0] += 1
            most_inside[0] = max(most_inside[0], inside[0])
            time.sleep(0.3)  # a long generation: the other caller arrives meanwhile
            writes.append(threading.get_ident())
            inside[0] -= 1
            meta.update(name="slow", seed=seed)
        return root

    monkeypatch.setitem(registry._REGISTRY, "slow", registry._Entry(
        registry.DatasetInfo("slow", "image", True, "a slow built-in"), preparer,
        lambda root: DatasetFolder(root, {"name": "slow"}).ready()))
    root = tmp_path / "data" / "slow"
    threads = [threading.Thread(target=registry.prepare, args=("slow",), kwargs={"root": root}) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(writes) == 1 and most_inside[0] == 1
    assert read_meta(root) == {"name": "slow", "seed": 0}
    assert not any(path.name.endswith(".lock") for path in root.parent.iterdir())  # nothing beside the user's folder
