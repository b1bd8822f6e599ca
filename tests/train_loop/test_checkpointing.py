"""Training checkpoints: atomic step directories, keep_last, weights_only state with RNG states, loadable models."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import clapkit
from clapkit.errors import CheckpointError
from clapkit.models.clap import ClapNetwork
from clapkit.train import checkpointing
from clapkit.train.config import TrainConfig
from clapkit.train.modeling import merge_overrides
from tests.train_loop.tiny import BASE_MODEL, tiny_model_overrides

# the tiny HTSAT's classifier convolution (unused by CLAP) has a zero-size kernel at a 64x64 spectrogram image
pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")



@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    config = merge_overrides(clapkit.get_config(BASE_MODEL), tiny_model_overrides())
    return config, ClapNetwork(config)


def save(tmp_path, step, tiny_model, keep_last=2, extra=None):
    config, module = tiny_model
    state = {"optimizer": {"state": {}, "param_groups": []}, "rng": [checkpointing.capture_rng_state()],
             "data": [{"kind": "map"}], **(extra or {})}
    return checkpointing.save_checkpoint(tmp_path, step, config, TrainConfig(seed=step), module.state_dict(), state,
                                         keep_last)


def test_keep_last_prunes_the_oldest(tmp_path, tiny_model):
    for step in (2, 4, 6, 8, 10):
        save(tmp_path, step, tiny_model, keep_last=2)
    assert [step for step, _ in checkpointing.list_checkpoints(tmp_path)] == [8, 10]
    assert checkpointing.latest_checkpoint(tmp_path).name == "step_00000010"
    assert sorted(p.name for p in checkpointing.checkpoint_root(tmp_path).iterdir()) == ["step_00000008",
                                                                                           "step_00000010"]


def test_incomplete_and_stale_directories_are_never_resumed_from(tmp_path, tiny_model):
    save(tmp_path, 3, tiny_model)
    root = checkpointing.checkpoint_root(tmp_path)
    (root / "step_00000009").mkdir()  # a directory without train_state.pt (not written by save_checkpoint)
    stale = root / ".step_00000012.tmp999"  # what a process killed mid-write leaves behind
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    assert checkpointing.latest_checkpoint(tmp_path).name == "step_00000003"
    save(tmp_path, 5, tiny_model)
    assert not stale.exists()
    assert checkpointing.latest_checkpoint(tmp_path).name == "step_00000005"


def test_resaving_a_step_replaces_it(tmp_path, tiny_model):
    save(tmp_path, 4, tiny_model, extra={"marker": 1})
    save(tmp_path, 4, tiny_model, extra={"marker": 2})
    assert checkpointing.load_train_state(tmp_path / "checkpoints" / "step_00000004")["marker"] == 2


def test_checkpoint_holds_a_loadable_model_and_the_config(tmp_path, tiny_model):
    config, module = tiny_model
    path = save(tmp_path, 7, tiny_model)
    assert TrainConfig.from_file(path / checkpointing.CONFIG_FILE) == TrainConfig(seed=7)
    loaded = clapkit.load(path)  # the directory is a clapkit model as it is
    assert loaded.config == config
    for key, value in module.state_dict().items():
        torch.testing.assert_close(loaded.module.state_dict()[key], value, rtol=0, atol=0)


def test_train_state_loads_with_weights_only_and_restores_rng(tmp_path, tiny_model):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = save(tmp_path, 1, tiny_model)
    expected = (random.random(), np.random.rand(3), torch.rand(3))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    state = torch.load(path / checkpointing.STATE_FILE, weights_only=True)  # what load_train_state does
    checkpointing.restore_rng_state(state["rng"][0])
    assert random.random() == expected[0]
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    torch.testing.assert_close(torch.rand(3), expected[2], rtol=0, atol=0)
    assert state["step"] == 1 and state["format_version"] == checkpointing.FORMAT_VERSION


def test_missing_or_foreign_state_is_refused(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match="train_state.pt"):
        checkpointing.load_train_state(tmp_path)
    path = save(tmp_path, 2, tiny_model)
    torch.save({"format_version": 99}, path / checkpointing.STATE_FILE)
    with pytest.raises(CheckpointError, match="format"):
        checkpointing.load_train_state(path)
