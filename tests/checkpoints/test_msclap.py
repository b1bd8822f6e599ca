"""MS-CLAP checkpoints without the reference environment: detection, conversion both ways, the registry configs,
the regenerated torchlibrosa buffers and msclap's HTSAT crops of long input. Text towers are shrunk for speed."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from tests.small_models import SMALL_BERT

from clapkit import CheckpointError, ModelConfig
from clapkit.audio.frontend import MelFrontend, mel_filterbank
from clapkit.audio.fusion import prepare_batch
from clapkit.checkpoints import load_weights, msclap
from clapkit.models.clap import ClapNetwork
from clapkit.models.htsat import HTSAT
from clapkit.registry import get_config

SMALL_GPT2 = {"model_type": "gpt2", "vocab_size": 600, "n_positions": 128, "n_embd": 32, "n_layer": 2, "n_head": 2,
              "pad_token_id": 0}


def small_ms_config(version: str) -> ModelConfig:
    config = get_config(f"ms-clap-{version}")
    hf_config = SMALL_BERT if version == "2022" else SMALL_GPT2
    return config.replace(text=dataclasses.replace(config.text, hf_config=hf_config, width=32))


@pytest.fixture(scope="module", params=["2022", "2023"])
def small_module(request) -> tuple[str, ClapNetwork]:
    torch.manual_seed(0)
    return request.param, ClapNetwork(small_ms_config(request.param)).eval()


def _file_layout(version: str, module: ClapNetwork) -> dict[str, torch.Tensor]:
    """What an MS-CLAP file holds for ``module``, plus the stale buffers older transformers saved."""
    state = msclap.from_clapkit(module.state_dict(), module.config)
    if version == "2022":
        state["caption_encoder.base.embeddings.position_ids"] = torch.arange(512)[None]
    else:
        state["caption_encoder.base.h.0.attn.bias"] = torch.ones(1, 1, 128, 128, dtype=torch.bool)
        state["caption_encoder.base.h.1.attn.masked_bias"] = torch.tensor(-1e4)
    return state


def test_export_has_msclaps_keys(small_module):
    version, module = small_module
    state = msclap.from_clapkit(module.state_dict(), module.config)
    audio = "audio_encoder.base.htsat." if version == "2023" else "audio_encoder.base."
    assert {k.split(".")[0] for k in state} == {"audio_encoder", "caption_encoder", "logit_scale"}
    assert state[audio + "logmel_extractor.melW"].shape == (513, 64)
    assert state[audio + "spectrogram_extractor.stft.conv_real.weight"].shape == (513, 1, 1024)
    assert torch.equal(state["audio_encoder.projection.linear1.weight"], module.audio_projection.linear1.weight)
    assert torch.equal(state["caption_encoder.projection.layer_norm.bias"], module.text_projection.layer_norm.bias)
    assert (audio + "bn0.running_var") in state and "logit_scale" in state
    assert len(msclap.from_clapkit(module.state_dict(), module.config, frontend_buffers=False)) == len(state) - 3


def test_detect_convert_round_trip(small_module, tmp_path):
    version, module = small_module
    state = _file_layout(version, module)
    assert msclap.is_msclap(state) and msclap.detect_version(state) == version
    assert not msclap.is_clapcap(state)
    ours = module.state_dict()
    converted = msclap.to_clapkit({"module." + k: v for k, v in state.items()})  # a DDP prefix is tolerated
    assert set(converted) == set(ours)  # torchlibrosa buffers and stale transformers buffers dropped
    assert all(torch.equal(converted[k], ours[k]) for k in ours)
    # on disk as msclap reads it: {'model': state_dict}; detected from the keys alone
    torch.save({"model": state}, tmp_path / "CLAP_weights.pth")
    detected, weights = load_weights(tmp_path / "CLAP_weights.pth")
    assert (detected.name, detected.family) == (f"ms-clap-{version}", "msclap")
    assert detected.audio == module.config.audio and detected.frontend == module.config.frontend
    assert detected.joint_dim == 1024 and not detected.separate_logit_scales
    config, weights = load_weights(tmp_path / "CLAP_weights.pth", module.config)
    fresh = ClapNetwork(module.config)
    fresh.load_state_dict(weights, strict=True)
    features = torch.randn(2, 1, 300, 64)
    with torch.no_grad():
        assert torch.equal(fresh.eval().encode_audio(features), module.encode_audio(features))


def test_version_from_keys_and_clear_errors(tmp_path):
    def keys(*names: str) -> dict[str, torch.Tensor]:
        return {name: torch.zeros(1) for name in ("logit_scale", *names)}

    htsat, cnn = "audio_encoder.base.htsat.patch_embed.proj.weight", "audio_encoder.base.conv_block1.conv1.weight"
    gpt2, bert = "caption_encoder.base.wte.weight", "caption_encoder.base.embeddings.word_embeddings.weight"
    assert msclap.detect_version(keys(htsat, gpt2)) == "2023"
    assert msclap.detect_version(keys(cnn, bert)) == "2022"
    with pytest.raises(CheckpointError, match=r"audio htsat, text bert.*2022 = Cnn14 \+ BERT"):
        msclap.detect_version(keys(htsat, bert), "odd.pth")
    assert not msclap.is_msclap({"audio_encoder.base.x": torch.zeros(1)})  # no text encoder, no logit_scale
    clapcap = {"clap.base.htsat.norm.weight": torch.zeros(1), "gpt.transformer.wte.weight": torch.zeros(1)}
    torch.save({"model": clapcap}, tmp_path / "clapcap_weights_2023.pth")
    with pytest.raises(CheckpointError, match="clapcap layout"):  # read as clapcap, and checked
        load_weights(tmp_path / "clapcap_weights_2023.pth")
    with pytest.raises(CheckpointError, match="unexpected MS-CLAP key"):
        msclap.to_clapkit(keys(cnn, bert, "caption_encoder.other.weight"))


def test_export_refuses_non_ms_models():
    config = get_config("laion-htsat-tiny")
    with pytest.raises(CheckpointError, match="cannot be written as MS-CLAP"):
        msclap.from_clapkit({}, config)


def test_save_msclap_writes_model_dict(small_module, tmp_path):
    version, module = small_module
    path = msclap.save_msclap(tmp_path / "export.pth", module.config, module.state_dict())
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert list(saved) == ["model"] and msclap.detect_version(saved["model"]) == version


def test_torchlibrosa_buffers_are_the_stft_and_mel_bank():
    frontend = get_config("ms-clap-2023").frontend
    buffers = msclap.torchlibrosa_buffers(frontend)
    frame = np.random.default_rng(0).standard_normal(1024)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)
    spectrum = np.fft.rfft(frame * window)
    real = buffers["spectrogram_extractor.stft.conv_real.weight"][:, 0].double().numpy() @ frame
    imag = buffers["spectrogram_extractor.stft.conv_imag.weight"][:, 0].double().numpy() @ frame
    assert np.abs(real - spectrum.real).max() < 1e-4 and np.abs(imag - spectrum.imag).max() < 1e-4
    # 2023's bank is built for 32 kHz / 14 kHz whatever the audio rate (msclap's HTSAT config.py)
    melw = buffers["logmel_extractor.melW"]
    assert torch.allclose(melw, mel_filterbank(32000, 1024, 64, 50.0, 14000.0), rtol=0, atol=1e-8)
    assert not torch.allclose(melw, mel_filterbank(44100, 1024, 64, 50.0, 14000.0), rtol=0, atol=1e-4)


@pytest.mark.parametrize("version", ["2022", "2023"])
def test_registry_configs(version, tmp_path):
    config = get_config(f"ms-clap-{version}")
    path = tmp_path / "config.json"
    config.to_json(path)
    assert ModelConfig.from_json(path) == config
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["frontend"]["quirks"] and raw["family"] == "msclap"
    front = config.frontend
    assert (front.sample_rate, front.hop_length, front.n_fft, front.f_min, front.f_max) == (44100, 320, 1024, 50, 14000)
    assert (front.mel_scale, front.mel_norm, front.filling, front.int16_roundtrip) == ("slaney", "slaney", "repeat",
                                                                                       False)
    assert config.head.kind == "ms" and config.joint_dim == 1024 and not config.separate_logit_scales
    if version == "2022":
        assert front.clip_samples == 5 * 44100 and not config.audio.spec_augment
        assert (config.text.pooling, config.text.kind) == ("cls", "bert")
    else:
        assert front.clip_samples == 7 * 44100 and config.audio.long_input == "msclap_crops"
        assert (config.text.pooling, config.text.kind, config.text.hf_config["pad_token_id"]) == ("last_token", "gpt2",
                                                                                                  0)
        assert not torch.equal(MelFrontend(front).filterbank, MelFrontend(dataclasses.replace(
            front, filterbank_sample_rate=None)).filterbank)


def test_clip_fitting_for_2023():
    """Short audio is repeated and cut (no zeros), long audio cropped at its start at evaluation: 965 frames."""
    front = get_config("ms-clap-2023").frontend
    rng = np.random.default_rng(0)
    short, long = rng.standard_normal(44100).astype(np.float32), rng.standard_normal(441000).astype(np.float32)
    batch = prepare_batch([short, long], front, fusion=False)
    assert batch.features.shape == (2, 1, 965, 64) and batch.is_longer.tolist() == [False, True]
    frontend = MelFrontend(front)
    repeated = torch.from_numpy(np.tile(short, 7)[: 7 * 44100])
    assert torch.allclose(batch.features[0, 0], frontend(repeated)[0], atol=1e-4)
    assert torch.allclose(batch.features[1, 0], frontend(torch.from_numpy(long[: 7 * 44100]))[0], atol=1e-4)


def test_htsat_crops_of_long_input():
    """msclap's HTSAT at evaluation: 689-frame crops every 344 frames, mean of the pooled embeddings."""
    torch.manual_seed(0)
    tower = HTSAT(get_config("ms-clap-2023").audio).eval()
    features = torch.randn(2, 1, 1379, 64)  # 10 s at 44.1 kHz: range(0, 1379 - 690, 344) = 0, 344, 688
    with torch.no_grad():
        expected = torch.stack([tower(features[:, :, s : s + 689]) for s in (0, 344, 688)]).mean(0)
        assert torch.allclose(tower(features), expected, atol=1e-5)
        two = torch.randn(1, 1, 1103, 64)  # 8 s: 0, 344
        assert torch.allclose(tower(two), (tower(two[:, :, :689]) + tower(two[:, :, 344:1033])) / 2, atol=1e-5)
        assert tower(features[:, :, :1024]).shape == (2, 768)  # up to 1024 frames: one pass, no crops
    tower.train()
    assert tower(features).shape == (2, 768)  # training: one random 1024-frame crop
    laion = HTSAT(get_config("laion-htsat-tiny").audio).eval()
    with pytest.raises(ValueError, match="at most 1024 frames"):
        laion(features)
