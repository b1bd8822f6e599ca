"""Hugging Face CLAP checkpoints: key conversion against transformers' own ClapModel (small geometry, dev env),
directory / single-file / sharded loading, processor settings, detection errors."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.hub.builders import perturbed

from clapkit import CheckpointError, ConfigError
from clapkit.audio.fusion import prepare_batch
from clapkit.checkpoints import hf, load_weights
from clapkit.checkpoints.io import save_safetensors
from clapkit.models.clap import ClapNetwork
from clapkit.registry import get_config

SMALL_AUDIO = {"patch_embeds_hidden_size": 16, "hidden_size": 128, "depths": [2, 2, 2, 2],
               "num_attention_heads": [1, 2, 2, 4], "num_classes": 10}  # fmt: skip
SMALL_TEXT = {"vocab_size": 120, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 1,
              "intermediate_size": 96, "max_position_embeddings": 40}  # fmt: skip


def small_raw(fusion: bool) -> dict:
    return {"model_type": "clap", "audio_config": {**SMALL_AUDIO, "enable_fusion": fusion},
            "text_config": dict(SMALL_TEXT), "projection_dim": 32}  # fmt: skip


def small_module(fusion: bool, seed: int = 0) -> ClapNetwork:
    """A small HF-geometry ClapNetwork whose every float tensor is non-trivial (biases, batch-norm statistics...)."""
    return perturbed(hf.config_from_hf(small_raw(fusion), None, "test"), seed)


@pytest.mark.parametrize("fusion", [False, True])
def test_export_loads_strictly_in_transformers_with_the_same_numbers(fusion):
    from transformers import ClapConfig, ClapModel

    module = small_module(fusion)
    model_json, _ = hf.config_to_hf(module.config)
    reference = ClapModel(ClapConfig.from_dict(model_json)).eval()
    reference.load_state_dict(hf.from_clapkit(module.state_dict(), module.config), strict=True)

    gen = torch.Generator().manual_seed(1)
    features = torch.randn(2, 4 if fusion else 1, 1001, 64, generator=gen) * 10 - 20
    is_longer = torch.tensor([True, False])
    ids = torch.randint(3, 120, (3, 9), generator=gen)
    ids[:, 0], ids[1, 6:], ids[2, 4:] = 0, 1, 1  # <s> first; rows 1 and 2 padded with <pad> (1)
    mask = (ids != 1).long()
    with torch.no_grad():
        expected_audio = reference.get_audio_features(features, is_longer[:, None])
        expected_text = reference.get_text_features(ids, mask)
        assert float((module.encode_audio(features, is_longer) - expected_audio).abs().max()) < 1e-5
        assert float((module.encode_text(ids, mask) - expected_text).abs().max()) < 1e-5


def test_key_round_trip_rebuilds_what_hf_does_not_store():
    module = small_module(fusion=True)
    ours = module.state_dict()
    exported = hf.from_clapkit(ours, module.config)
    assert not any(k.endswith("attn_mask") or ".qkv." in k for k in exported)
    assert {"text_model.embeddings.position_ids", "audio_model.audio_encoder.batch_norm.running_var"} <= set(exported)
    back = hf.to_clapkit(exported, module.config)
    assert set(back) == set(ours)
    for key, value in ours.items():
        if key.startswith(("audio_tower.tscam_conv.", "audio_tower.head.")):
            assert not back[key].any()  # HF has no AudioSet head: zero-filled
        else:
            assert torch.equal(back[key], value), key  # attn_mask buffers recomputed exactly


def test_qkv_is_split_in_query_key_value_order():
    module = small_module(fusion=False)
    qkv = module.state_dict()["audio_tower.layers.1.blocks.1.attn.qkv.weight"]
    exported = hf.from_clapkit(module.state_dict(), module.config)
    prefix = "audio_model.audio_encoder.layers.1.blocks.1.attention.self."
    assert torch.equal(exported[prefix + "key.weight"], qkv[32:64])
    assert torch.equal(exported[prefix + "value.weight"], qkv[64:])


def _assert_same(loaded, module) -> None:
    config, state = loaded
    assert config.audio == module.config.audio and config.text == module.config.text
    assert set(state) == set(module.state_dict())
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items() if "tscam" not in k and "head" not in k)


def test_directory_single_file_bin_and_shards(tmp_path):
    module = small_module(fusion=False)
    directory = hf.save_hf(tmp_path / "hub", module.config, module.state_dict())
    assert json.loads((directory / "config.json").read_text())["model_type"] == "clap"
    _assert_same(load_weights(directory), module)
    _assert_same(load_weights(directory / "model.safetensors"), module)  # config.json read from beside the file

    alone = tmp_path / "alone" / "model.safetensors"  # no config.json: geometry inferred from the shapes
    alone.parent.mkdir()
    shutil.copy(directory / "model.safetensors", alone)
    config, _ = load_weights(alone)
    assert config.audio.num_classes == 527  # HF stores no AudioSet head: its size is not in the file
    assert dataclasses.replace(config.audio, num_classes=10) == module.config.audio
    assert config.text.hf_config == module.config.text.hf_config

    exported = hf.from_clapkit(module.state_dict(), module.config)
    as_bin = tmp_path / "bin"
    as_bin.mkdir()
    shutil.copy(directory / "config.json", as_bin)
    torch.save(exported, as_bin / "pytorch_model.bin")
    _assert_same(load_weights(as_bin), module)

    sharded = tmp_path / "shards"
    sharded.mkdir()
    shutil.copy(directory / "config.json", sharded)
    keys = sorted(exported)
    weight_map = {}
    for i, part in enumerate((keys[::2], keys[1::2])):
        name = f"model-0000{i + 1}-of-00002.safetensors"
        save_safetensors({k: exported[k] for k in part}, sharded / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    _assert_same(load_weights(sharded), module)


def test_processor_settings_become_the_front_end():
    frontend = hf.frontend_from_processor(
        {"frequency_min": 0, "frequency_max": 18000, "top_db": 80, "truncation": "fusion", "padding": "pad",
         "max_length_s": 5},  # fmt: skip
        fusion=False,
    )
    assert (frontend.f_min, frontend.f_max, frontend.top_db, frontend.clip_samples) == (0.0, 18000.0, None, 240000)
    assert (frontend.truncation, frontend.filling, frontend.int16_roundtrip) == ("rand_trunc", "pad", False)
    assert any("truncation 'fusion'" in note for note in frontend.quirks)
    missing = hf.frontend_from_processor(None, fusion=True)
    assert (missing.f_min, missing.truncation, missing.fusion_resize_antialias) == (50.0, "fusion", False)
    with pytest.raises(ConfigError, match="WhisperFeatureExtractor"):
        hf.frontend_from_processor({"feature_extractor_type": "WhisperFeatureExtractor"}, fusion=False)


def test_fused_global_view_is_not_antialiased():
    frontend = hf.frontend_from_processor(None, fusion=True)
    wave = np.random.default_rng(0).standard_normal(48000 * 23).astype(np.float32) * 0.1
    batch = prepare_batch([wave], frontend, fusion=True)
    mel = prepare_batch([wave[:480000]], frontend, fusion=True).features  # sanity: short clips are 4 copies
    assert torch.equal(mel[0, 0], mel[0, 3])
    from clapkit.audio.frontend import MelFrontend

    whole = MelFrontend(frontend, fusion=True)(torch.from_numpy(wave))[0]
    plain = F.interpolate(whole[None, None], size=(1001, 64), mode="bilinear", align_corners=False)[0, 0]
    assert torch.allclose(batch.features[0, 0], plain, atol=1e-5)
    smooth = F.interpolate(whole[None, None], size=(1001, 64), mode="bilinear", antialias=True)[0, 0]
    assert float((batch.features[0, 0] - smooth).abs().max()) > 1e-2


def test_larger_clap_config_is_htsat_base():
    """laion/larger_clap_*: HTSAT-base geometry (128-wide patches, depths 2-2-12-2, 1024-d pooled output)."""
    raw = {"model_type": "clap", "projection_dim": 512,
           "audio_config": {"patch_embeds_hidden_size": 128, "depths": [2, 2, 12, 2], "hidden_size": 1024},
           "text_config": {}}  # fmt: skip
    config = hf.config_from_hf(raw, {"frequency_min": 50, "truncation": "rand_trunc"}, "larger_clap_general")
    base = get_config("laion-htsat-base").audio
    assert (config.name, config.audio.variant) == ("hf-htsat-base", "base")
    assert dataclasses.replace(config.audio, drop_path_rate=base.drop_path_rate) == base
    assert config.text.hf_config["vocab_size"] == 50265 and config.joint_dim == 512


def test_unsupported_and_unexportable_configs():
    raw = small_raw(fusion=True)
    raw["audio_config"]["fusion_type"] = "channel_map"
    with pytest.raises(ConfigError, match="fusion_type='channel_map'"):
        hf.config_from_hf(raw, None, "x")
    with pytest.raises(ConfigError, match="cannot be exported to Hugging Face CLAP.*audio tower pann"):
        hf.config_to_hf(get_config("laion-pann14"))


def test_detection_errors_name_the_families(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(small_raw(fusion=False)))
    with pytest.raises(CheckpointError, match="no weights.*model.safetensors.*pytorch_model.bin"):
        load_weights(tmp_path)
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="unknown checkpoint family.*Hugging Face CLAP"):
        load_weights(tmp_path / "other.pt")
