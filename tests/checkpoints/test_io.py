import numpy as np
import pytest
import torch

from clapkit import CheckpointError
from clapkit.checkpoints.io import atomic_write, extract_state_dict, read_checkpoint, save_safetensors


class NotATensor:  # a pickled class instance: weights_only loading must refuse it
    pass


def test_weights_only_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "extra": NotATensor()}, path)
    with pytest.raises(CheckpointError, match=r"evil.pt: .*trust_pickle=True"):
        read_checkpoint(path)
    loaded = read_checkpoint(path, trust_pickle=True)
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_plain_checkpoint_loads_safely(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"epoch": 3, "state_dict": {"module.a": torch.zeros(3)}}, path)
    assert list(extract_state_dict(read_checkpoint(path), "ok.pt")) == ["module.a"]


def test_numpy_scalars_beside_the_weights_load_without_trusting_pickle(tmp_path):
    # training scripts (LAION's, aiSFX's) store numpy scalars such as the epoch or a best score next to the weights
    path = tmp_path / "laion_like.pt"
    torch.save({"epoch": np.int64(45), "best": np.float64(0.93), "state_dict": {"module.a": torch.ones(2)}}, path)
    loaded = read_checkpoint(path)
    assert loaded["epoch"] == 45 and loaded["best"] == np.float64(0.93)
    assert torch.equal(loaded["state_dict"]["module.a"], torch.ones(2))
    # an object array is not a plain scalar: still refused
    evil = tmp_path / "objects.pt"
    torch.save({"state_dict": {}, "extra": np.array([NotATensor()], dtype=object)}, evil)
    with pytest.raises(CheckpointError, match="trust_pickle=True"):
        read_checkpoint(evil)


def test_missing_empty_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "garbage.pt").write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        read_checkpoint(tmp_path / "garbage.pt")
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="safetensors"):
        read_checkpoint(tmp_path / "garbage.safetensors")


def test_extract_state_dict_rejects_non_mappings():
    with pytest.raises(CheckpointError, match="no state dict"):
        extract_state_dict([1, 2, 3], "list.pt")


def test_safetensors_round_trip_and_atomic_write(tmp_path):
    path = tmp_path / "w.safetensors"
    save_safetensors({"a": torch.arange(4.0)}, path, metadata={"k": "v"})
    assert torch.equal(read_checkpoint(path)["a"], torch.arange(4.0))

    def failing(tmp):
        open(tmp, "wb").write(b"partial")
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        atomic_write(path, failing)
    assert torch.equal(read_checkpoint(path)["a"], torch.arange(4.0))  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left behind
