import pickle

import pytest
import torch

from crossmedia.core.checkpoint_io import (WeightsError, check_safetensors_header, load_weights, save_weights,
                                           sha256_file)


def test_round_trip_and_hash(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}
    digest = save_weights(state, tmp_path / "m.safetensors")
    assert digest == sha256_file(tmp_path / "m.safetensors") and len(digest) == 64
    loaded = load_weights(tmp_path / "m.safetensors", sha256=digest)
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["b"], state["b"])


def test_tampered_file_is_refused_naming_both_hashes(tmp_path):
    path = tmp_path / "m.safetensors"
    digest = save_weights({"w": torch.zeros(4)}, path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as err:
        load_weights(path, sha256=digest)
    message = str(err.value)
    assert str(path) in message and digest in message and sha256_file(path) in message


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_pickles_are_refused_with_reason(tmp_path, kind):
    path = tmp_path / "evil.safetensors"
    if kind == "torch":
        torch.save({"w": torch.zeros(2)}, path)
    else:
        path.write_bytes(pickle.dumps({"w": [0.0]}))
    with pytest.raises(WeightsError, match="never unpickles"):
        check_safetensors_header(path)
    with pytest.raises(WeightsError, match="never unpickles"):
        load_weights(path, sha256=sha256_file(path))


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "nope.safetensors")
