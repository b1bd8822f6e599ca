"""``clapkit convert``: weights unchanged across formats; LAION export's regenerated front-end tensors and extras."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
from tests.checkpoints.test_hf import small_module

from clapkit.checkpoints import hf, laion, load_weights
from clapkit.checkpoints.io import read_checkpoint
from clapkit.checkpoints.laion_export import laion_state_dict, transform_mlps
from clapkit.cli import main
from clapkit.config import AudioFrontendConfig


@pytest.fixture(scope="module")
def module():
    return small_module(fusion=True, seed=3)


def _equal_weights(state: dict, module) -> None:
    ours = module.state_dict()
    assert set(state) == set(ours)
    for key, value in ours.items():
        if not key.startswith(("audio_tower.tscam_conv.", "audio_tower.head.")):
            assert torch.equal(state[key], value), key


def test_cli_round_trip_hf_clapkit_hf(module, tmp_path, capsys):
    source = hf.save_hf(tmp_path / "hf", module.config, module.state_dict())
    assert main(["convert", str(source), str(tmp_path / "ours"), "--to", "clapkit"]) == 0
    assert "wrote" in capsys.readouterr().out
    config, state = load_weights(tmp_path / "ours")
    assert config == module.config.replace(description=config.description)  # HF front end kept in config.json
    _equal_weights(state, module)
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "hf2"), "--to", "hf"]) == 0
    first = read_checkpoint(source / "model.safetensors")
    second = read_checkpoint(tmp_path / "hf2" / "model.safetensors")
    assert set(first) == set(second) and all(torch.equal(first[k], second[k]) for k in first)
    processor = "preprocessor_config.json"
    assert (source / processor).read_text() == (tmp_path / "hf2" / processor).read_text()


def test_laion_export_has_every_key_laion_clap_wants(module, tmp_path):
    assert main(["convert", str(hf.save_hf(tmp_path / "hf", module.config, module.state_dict())),
                 str(tmp_path / "ckpt.pt"), "--to", "laion"]) == 0  # fmt: skip
    saved = torch.load(tmp_path / "ckpt.pt", map_location="cpu", weights_only=True)
    assert saved["epoch"] == 0 and all(k.startswith("module.") for k in saved["state_dict"])
    state = laion.strip_module_prefix(saved["state_dict"])
    for key in ("audio_branch.spectrogram_extractor.stft.conv_real.weight", "audio_branch.logmel_extractor.melW",
                "audio_transform.sequential.3.bias", "text_transform.sequential.0.weight",
                "text_branch.embeddings.position_ids", "audio_branch.patch_embed.fusion_model.local_att.0.weight",
                "audio_branch.layers.0.blocks.0.attn.qkv.weight", "audio_projection.2.weight"):  # fmt: skip
        assert key in state, key
    assert state["audio_transform.sequential.0.weight"].shape == (32, 32)
    _equal_weights(laion.to_clapkit(state), module)  # what laion files carry beyond the weights is dropped again


def test_torchlibrosa_tensors_are_regenerated_exactly():
    module = small_module(fusion=False)
    config = module.config.replace(frontend=AudioFrontendConfig())  # LAION: 48 kHz, n_fft 1024, 64 mels, 50-14000 Hz
    state = laion_state_dict(config, module.state_dict())
    mel_w = state["audio_branch.logmel_extractor.melW"]
    expected = librosa.filters.mel(sr=48000, n_fft=1024, n_mels=64, fmin=50.0, fmax=14000.0).T
    assert torch.equal(mel_w, torch.from_numpy(expected))  # bit for bit, as torchlibrosa builds it
    real = state["audio_branch.spectrogram_extractor.stft.conv_real.weight"][:, 0].double().numpy()
    imag = state["audio_branch.spectrogram_extractor.stft.conv_imag.weight"][:, 0].double().numpy()
    frame = np.random.default_rng(0).standard_normal(1024)
    spectrum = np.fft.rfft(frame * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)))
    assert np.allclose(real @ frame, spectrum.real, atol=1e-4) and np.allclose(imag @ frame, spectrum.imag, atol=1e-4)


def test_transform_mlps_are_seeded_like_nn_linear():
    first, second = transform_mlps(16), transform_mlps(16)
    assert sorted(first) == sorted(second) and all(torch.equal(first[k], second[k]) for k in first)
    assert all(float(t.abs().max()) <= 0.25 for t in first.values())  # uniform in +-1/sqrt(16)
    assert not torch.equal(first["audio_transform.sequential.0.weight"], first["text_transform.sequential.0.weight"])


def test_unwritable_targets_fail_with_a_reason(module, tmp_path, capsys):
    source = hf.save_hf(tmp_path / "hf", module.config, module.state_dict())
    assert main(["convert", str(source), str(tmp_path / "x.pth"), "--to", "msclap"]) == 2
    assert "cannot be written as MS-CLAP" in capsys.readouterr().err
    assert not (tmp_path / "x.pth").exists()
    with pytest.raises(SystemExit):
        main(["convert", str(source), str(tmp_path / "y"), "--to", "onnx"])
