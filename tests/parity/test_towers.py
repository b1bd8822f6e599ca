"""BART and T5 text towers: laion_clap 1.1.7's ``tmodel="bart"`` and a ReCLAP-layout model (T5 encoder in laion_clap's
CLAP, HTSAT with feature fusion), both with perturbed weights (tests/parity/reference_towers.py), load with
``clapkit.load(path)`` and give the reference's embeddings (max abs difference <= 1e-4), audio end to end from the
waveform and text from token ids; the export writes the reference's layout back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clapkit
from clapkit.checkpoints import load_weights
from clapkit.checkpoints.io import extract_state_dict, read_checkpoint
from tests.parity.conftest import record

CLIPS = ["clip_10s", "clip_4s", "clip_7_3s"]
EXPECTED = {  # name -> (family, text kind, fusion, text geometry read off the tensors)
    "laion_htsat_tiny_bart": ("laion", "bart", False, {"d_model": 768, "encoder_layers": 2, "decoder_layers": 1,
                                                       "encoder_attention_heads": 12, "encoder_ffn_dim": 256,
                                                       "vocab_size": 500, "max_position_embeddings": 80}),
    "reclap_htsat_tiny_t5_fusion": ("reclap", "t5", True, {"d_model": 64, "d_kv": 24, "num_heads": 3, "d_ff": 96,
                                                            "num_layers": 2, "feed_forward_proj": "gated-gelu",
                                                            "vocab_size": 300,
                                                            "relative_attention_num_buckets": 32}),
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def loaded(request, parity_dir):
    name = request.param
    path = parity_dir / f"{name}.pt"
    return name, clapkit.load(path), dict(np.load(parity_dir / f"{name}.npz")), path


def test_detected_family_and_geometry(loaded):
    name, model, _, _ = loaded
    family, kind, fusion, geometry = EXPECTED[name]
    config = model.config
    assert (config.family, config.text.kind, config.audio.enable_fusion) == (family, kind, fusion)
    assert config.text.pooling == "mean_padded" and config.text.context_length == 77
    assert {k: config.text.hf_config[k] for k in geometry} == geometry
    assert config.name == ("reclap-htsat-tiny-fusion-t5" if kind == "t5" else "laion-htsat-tiny-bart")


def test_audio_end_to_end(loaded):
    """Waveform -> embedding through the public API (int16 round trip, repeat-pad, fusion input, tower, head)."""
    name, model, ref, _ = loaded
    for clip in CLIPS:
        record(name, f"audio end-to-end {clip}", ref[f"audio_{clip}"],
               model.embed_audio([ref[f"wave_{clip}"]], sample_rate=48000))


def test_text_on_the_same_token_ids(loaded):
    """The mean includes the pad positions: 77-token ids, and the same ids trimmed to the longest caption (the tower
    pads them back to 77 itself), give the reference's embeddings."""
    name, model, ref, _ = loaded
    ids, mask = torch.from_numpy(ref["text_input_ids"]), torch.from_numpy(ref["text_attention_mask"])
    record(name, "text (77-token ids)", ref["text_embed"], model.encode_text(ids, mask).numpy())
    longest = int(mask.sum(1).max())
    record(name, "text (trimmed to longest)", ref["text_embed"],
           model.encode_text(ids[:, :longest], mask[:, :longest]).numpy())
    assert abs(model.logit_scale - float(ref["logit_scale_a"])) < 1e-4


def test_export_writes_the_reference_layout_back(loaded, tmp_path):
    """``--to laion`` (BART) / ``--to reclap`` (T5): every reference key with the reference's shape, the weights
    clapkit keeps unchanged, and the file loads back to the same model."""
    from clapkit.checkpoints import family_named

    name, model, ref, path = loaded
    family = family_named(EXPECTED[name][0])
    out = family.save(tmp_path / "export.pt", model.config, model.module.state_dict())
    source = extract_state_dict(read_checkpoint(out), "export")
    original = extract_state_dict(read_checkpoint(path), "reference")
    # laion_clap's load_ckpt deletes text_branch.embeddings.position_ids before loading strictly: LAION files carry it
    extra = {"module.text_branch.embeddings.position_ids"} if family.name == "laion" else set()
    assert set(source) == set(original) | extra
    for key, value in original.items():
        assert tuple(source[key].shape) == tuple(value.shape), key
        if "decoder." not in key and "_transform." not in key:
            assert torch.equal(source[key].to(value.dtype), value), key
    config, _ = load_weights(out)
    assert config.text == model.config.text
    again = clapkit.load(out)
    ids, mask = torch.from_numpy(ref["text_input_ids"]), torch.from_numpy(ref["text_attention_mask"])
    record(name, "text after export + reload", ref["text_embed"], again.encode_text(ids, mask).numpy())
