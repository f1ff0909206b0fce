"""A tiny built-in ``puppets`` copy shared by the posevideo tests (27 clips x 16 frames, 3 per action)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_puppets(tmp_path_factory):
    from crossmedia.data.builtin.puppets import make_puppets

    return make_puppets(tmp_path_factory.mktemp("puppets") / "puppets", num_clips=27, frames=16, progress=False)
