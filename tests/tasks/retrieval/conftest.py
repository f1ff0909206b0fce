"""A small built-in ``scenes`` copy shared by the retrieval tests (48 images: 40 train, 4 val, 4 test)."""
import pytest


@pytest.fixture(scope="session")
def mini_scenes(tmp_path_factory):
    from crossmedia.data.builtin.scenes import make_scenes

    return make_scenes(tmp_path_factory.mktemp("retrieval_scenes") / "scenes", num_images=48, progress=False)
