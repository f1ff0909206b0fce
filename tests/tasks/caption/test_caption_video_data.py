"""The video DataModule finds or makes its stream features: a user's ``<root>/features`` is read as it
is; otherwise the streams are extracted once into data/video-features/<folder>-<key> (never into the
dataset folder), found again by the next data module with the same extractor, and a different
extractor gets its own folder."""
import pytest

from crossmedia.data.builtin.puppet_captions import make_puppet_captions
from crossmedia.tasks.caption.video.data import VideoCaptionDataModule

SMALL = {"appearance": "test_resnet", "pretrained": False, "image_size": 32}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_puppet_captions(tmp_path_factory.mktemp("vc") / "my-clips", num_clips=27, progress=False)


def _tree(root):
    return sorted((p.relative_to(root).as_posix(), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_streams_are_extracted_once_outside_the_dataset_folder(clips, tmp_path, monkeypatch, one_thread, caplog):
    monkeypatch.setenv("CROSSMEDIA_DATA", str(tmp_path / "data"))
    before = _tree(clips)
    dm = VideoCaptionDataModule(root=str(clips), extract_with=SMALL, min_count=0, batch_size=4)
    with caplog.at_level("INFO"):
        dm.prepare_data()
    out = dm.features_dir
    assert out.parent == tmp_path / "data" / "video-features" and out.name.startswith("my-clips-")
    assert "extracting the streams of 27 videos" in caplog.text
    dm.setup("fit")
    assert _tree(clips) == before  # nothing written into the dataset folder
    assert (dm.appearance_dim, dm.motion_dim) == (96, 256)  # test_resnet pooled, the action tagger and dm.tag_words[0] == "<none>"
    batch = next(iter(dm.train_dataloader()))
    assert batch["appearance"].shape == (4, 16, 96) and batch["motion"].shape == (4, 3, 256)
    assert batch["tags"].shape == (4, 2) and batch["captions"].shape[:2] == (4, 5)
    made = _tree(out)
    again = VideoCaptionDataModule(root=str(clips), extract_with=SMALL, min_count=0)
    again.prepare_data()
    assert again.features_dir == out and _tree(out) == made  # found, not redone
    other = VideoCaptionDataModule(root=str(clips), extract_with={**SMALL, "image_size": 48}, min_count=0)
    assert other.features_dir != out


def test_a_users_features_folder_is_read_and_a_missing_file_named(clips, tmp_path):
    import shutil

    root = tmp_path / "theirs"
    shutil.copytree(clips, root)
    (root / "features").mkdir()
    (root / "features" / "tags.json").write_text("{}")
    dm = VideoCaptionDataModule(root=str(root), extract_with=SMALL, min_count=0)
    assert dm.features_dir == root / "features"
    with pytest.raises(FileNotFoundError, match=r"features folder .*theirs/features lacks appearance.h5, motion.h5"):
        dm.prepare_data()
