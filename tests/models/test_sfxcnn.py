"""The aiSFX CNN tower: same numbers as aiSFX's own EmbeddingNet on its released weights; any length; safe reading."""

from __future__ import annotations

import importlib.util
import pickle
import sys

import numpy as np
import pytest
import torch

from clapkit.checkpoints.aisfx import find_aisfx_checkpoint, read_aisfx_tower
from clapkit.config import AudioTowerConfig
from clapkit.errors import AudioError, CheckpointError, ConfigError
from clapkit.models.sfxcnn import SfxCNN

CONFIG = AudioTowerConfig(kind="sfxcnn", variant="cnn8", embed_dim=512, n_mels=96)


def _aisfx_embedding_net():
    """aiSFX's EmbeddingNet class, loaded from the installed package's file (its package __init__ needs librosa 0.9)."""
    path = find_aisfx_checkpoint().parent / "cnn2d.py"
    spec = importlib.util.spec_from_file_location("aisfx_cnn2d_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EmbeddingNet


@pytest.fixture(scope="module")
def tower() -> dict[str, torch.Tensor]:
    return read_aisfx_tower()


def test_matches_aisfx_embedding_net(tower):
    reference = _aisfx_embedding_net()("max", 3, 1, 64)
    reference.load_state_dict(tower, strict=True)
    ours = SfxCNN(CONFIG)
    ours.load_state_dict(tower, strict=True)
    reference.eval(), ours.eval()
    x = torch.rand(3, 100, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x)
        got = ours(x)
        got_4d = ours(x[:, None])
    assert got.shape == (3, 512)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(got, got_4d)
    assert sum(v.numel() for v in tower.values()) == 4_689_992


def test_any_length_and_batch_independent(tower):
    model = SfxCNN(CONFIG).eval()
    model.load_state_dict(tower)
    x = torch.rand(4, 216, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(x)
        one = torch.cat([model(x[i : i + 1]) for i in range(4)])
        short = model(x[:, :9])
    assert torch.allclose(whole, one, atol=1e-6)
    assert short.shape == (4, 512) and torch.isfinite(short).all()
    with pytest.raises(AudioError, match="too short"):
        model(x[:, :7])
    with pytest.raises(AudioError, match="frames, mels"):
        model(torch.zeros(2, 4, 100, 96))


def test_inference_path_is_the_same_function(tower):
    """Without autograd the tower runs channels-last with the batch norms folded in: the same numbers as the plain
    path (which autograd uses), and a weight change is seen at the next call (the folded weights are cached)."""
    model = SfxCNN(CONFIG).eval()
    model.load_state_dict(tower)
    x = torch.rand(3, 120, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fast = model(x)
    plain = model(x).detach()  # grad enabled: the module-by-module path
    assert torch.allclose(fast, plain, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        model.conv_block2.bn1.running_var.mul_(4.0)
        changed = model(x)
    assert not torch.allclose(changed, fast, rtol=1e-3)
    assert torch.allclose(changed, model(x).detach(), rtol=1e-5, atol=1e-5)


def test_bad_config():
    with pytest.raises(ConfigError, match="variant"):
        SfxCNN(AudioTowerConfig(kind="sfxcnn", variant="cnn99", embed_dim=512))
    with pytest.raises(ConfigError, match="512"):
        SfxCNN(AudioTowerConfig(kind="sfxcnn", variant="cnn8", embed_dim=256))
    with pytest.raises(ConfigError, match="fusion"):
        SfxCNN(AudioTowerConfig(kind="sfxcnn", variant="cnn8", embed_dim=512, enable_fusion=True))


def test_reads_the_wheel_too(tower, tmp_path):
    import zipfile

    wheel = tmp_path / "aisfx-0.1.2-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(find_aisfx_checkpoint(), "aisfx/models/checkpoint.pth")
    from_wheel = read_aisfx_tower(wheel)
    assert from_wheel.keys() == tower.keys()
    assert all(torch.equal(from_wheel[k], tower[k]) for k in tower)
    empty = tmp_path / "other.whl"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("x.txt", "x")
    with pytest.raises(CheckpointError, match="aisfx/models/checkpoint.pth"):
        read_aisfx_tower(empty)


class _Boom:
    def __reduce__(self):
        return (sys.exit, ("pickle code ran",))


def test_refuses_code_in_the_pickle(tmp_path):
    """Only tensors and numpy scalars are allowed: a checkpoint that would call a function is refused unrun."""
    path = tmp_path / "checkpoint.pth"
    with path.open("wb") as handle:
        pickle.dump(({"embedding_net.x": np.float64(1.0)}, _Boom()), handle)
    with pytest.raises(CheckpointError, match="not aiSFX's checkpoint"):
        read_aisfx_tower(path)
    with pytest.raises(CheckpointError, match="no such file"):
        read_aisfx_tower(tmp_path / "missing.pth")


def test_missing_package_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointError, match="pip install --no-deps aisfx"):
        read_aisfx_tower()
