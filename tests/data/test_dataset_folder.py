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


def _snapshot(root):
    return {path.relative_to(root).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(root.rglob("*")) if path.is_file()}


def _user_folder(root):
    """A user's caption folder: their JSON and an image named as the built-in generators name theirs."""
    (root / "images").mkdir(parents=True)
    (root / "images" / "00000.png").write_bytes(b"the user's own picture")
    (root / "my_captions.json").write_text('{"images": []}')
    return _snapshot(root)


def test_every_dataset_refuses_to_write_into_a_folder_of_user_files(tmp_path, monkeypatch):
    """The bug of issue 18: a built-in generated INTO the user's folder. Every registered dataset,
    built-in or real, is refused before anything there is written, changed or deleted."""
    from crossmedia.data import registry
    from crossmedia.data.folder import ForeignFolderError

    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path / "home"))
    user = tmp_path / "mine"
    before = _user_folder(user)
    names = sorted(registry.list_datasets())
    assert {"scenes", "digits", "puppets", "spoken-scenes", "cifar10"} <= set(names)
    for name in names:
        source = None if registry.list_datasets()[name].builtin else tmp_path / "download"
        with pytest.raises(ForeignFolderError) as error:
            registry.prepare(name, root=user, source=source)
        assert str(user) in str(error.value) and "my_captions.json" in str(error.value), name
        assert _snapshot(user) == before, f"{name} changed the user's folder"
        assert sorted(p.name for p in user.iterdir()) == ["images", "my_captions.json"]


def test_ensure_with_the_default_dataset_refuses_a_user_folder_instead_of_training_on_builtins(tmp_path, monkeypatch):
    """`fit --data.init_args.root=DIR` with the dataset left at its default used to fill DIR with the scenes."""
    from crossmedia.data.folder import ForeignFolderError
    from crossmedia.data.registry import ensure

    monkeypatch.setenv("CROSSMEDIA_HOME", str(tmp_path / "home"))
    user = tmp_path / "mine"
    before = _user_folder(user)
    with pytest.raises(ForeignFolderError, match="Refusing to write dataset 'scenes'"):
        ensure("scenes", user, progress=False)
    assert _snapshot(user) == before


def test_a_generator_called_directly_refuses_another_datasets_folder_but_resumes_its_own(tmp_path):
    from crossmedia.data.folder import ForeignFolderError

    other = DatasetFolder(tmp_path / "d", {"name": "other"})
    with other.rewriting() as meta:
        (tmp_path / "d" / "x.txt").write_text("other's file")
        meta.update(name="other")
    before = _snapshot(tmp_path / "d")
    with pytest.raises(ForeignFolderError, match="dataset 'other'"):
        with DatasetFolder(tmp_path / "d", {"name": "mine"}).rewriting():
            pass
    assert _snapshot(tmp_path / "d") == before
    # an interrupted run leaves its mark, so the same dataset may write there again
    folder = DatasetFolder(tmp_path / "e", {"name": "mine"})
    with pytest.raises(KeyboardInterrupt):
        with folder.rewriting():
            (tmp_path / "e" / "half.txt").write_text("half written")
            raise KeyboardInterrupt
    assert not folder.ready() and read_meta(tmp_path / "e") is None
    with folder.rewriting() as meta:
        meta.update(name="mine")
    assert folder.ready() and sorted(p.name for p in (tmp_path / "e").iterdir()) == ["half.txt", "meta.json"]
