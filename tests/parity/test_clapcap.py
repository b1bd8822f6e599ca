"""MS-CLAP captioning parity: clapcap files saved by msclap 1.3.4 (random, perturbed weights; a small GPT-2 and an
offline byte-level vocabulary: ``reference_clapcap.py``) load in clapkit by detection, give msclap's prefix
embeddings (<= 1e-4) and exactly the token ids and text of msclap's ``generate_caption``, for a short clip (repeated
to 7 s), one of exactly 7 s and a 10 s one (msclap's random crop pinned to clapkit's offset 0), beam sizes 1 and 5,
a caption cut by ``entry_length`` and a temperature; for msclap's transformer mapper and its MLP mapper.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import clapkit
from clapkit.audio.fusion import prepare_batch
from clapkit.captioning import DecodingOptions, beam_search, decode_caption, stop_token_id
from tests.parity.conftest import record

VARIANTS = ["transformer", "mlp"]


@pytest.fixture(scope="module", params=VARIANTS)
def loaded(request, parity_dir):
    variant = request.param
    model = clapkit.load(parity_dir / f"clapcap_{variant}.pth", tokenizer=parity_dir / "clapcap_tokenizer")
    manifest = json.loads((parity_dir / "clapcap_manifest.json").read_text())
    reference = dict(np.load(parity_dir / f"clapcap_{variant}.npz"))
    with torch.inference_mode():
        prefixes = {
            clip: model.module.prefix(prepare_batch([reference[f"wave_{clip}"]], model.config.frontend,
                                                    fusion=False).features)
            for clip in ("short", "exact", "long")
        }
    return variant, model, reference, manifest, prefixes


def test_geometry_read_from_the_file(loaded):
    variant, model, _, manifest, _ = loaded
    config, gpt2 = model.config, manifest["gpt2"]
    caption = config.caption
    assert (config.name, config.family, config.joint_dim, caption.prefix_dim) == ("ms-clap-clapcap", "msclap", 1024,
                                                                                 1024)
    assert (caption.mapper, caption.prefix_length) == (manifest["variants"][variant]["mapping_type"],
                                                       manifest["variants"][variant]["prefix_length"])
    if variant == "transformer":
        assert (caption.clip_length, caption.num_layers, caption.num_heads, caption.hidden) == (40, 8, 8, 256)
        assert not caption.attention_bias
    else:
        assert caption.hidden == 128 * 10 // 2
    hf = config.text.hf_config
    assert (hf["vocab_size"], hf["n_embd"], hf["n_layer"], hf["n_head"], hf["n_positions"]) == (
        gpt2["vocab_size"], gpt2["n_embd"], gpt2["n_layer"], gpt2["n_head"], gpt2["n_positions"]
    )
    assert (config.audio.kind, config.audio.variant, config.frontend.clip_samples) == ("htsat", "tiny", 7 * 44100)


def test_prefix_embeddings(loaded):
    variant, _, reference, _, prefixes = loaded
    for clip, prefix in prefixes.items():
        record(f"clapcap-{variant}", f"prefix {clip}", reference[f"prefix_{clip}"], prefix.numpy())


def test_caption_token_ids_and_text(loaded):
    variant, model, reference, manifest, prefixes = loaded
    tokenizer = model.tokenizer.hf_tokenizer
    stop_id = stop_token_id(tokenizer, model.config.caption.stop_text)
    assert stop_id == 220
    lengths = set()
    for setting in manifest["variants"][variant]["settings"]:
        options = DecodingOptions(setting["beam_size"], setting["entry_length"], setting["temperature"])
        ids = beam_search(model.module, prefixes[setting["clip"]], stop_id, options)
        expected = reference[f"ids_{setting['key']}"].tolist()
        assert ids == expected, f"{variant} {setting['key']}: clapkit {ids} != msclap {expected}"
        assert decode_caption(tokenizer, ids) == setting["text"]
        lengths.add((len(ids), ids[-1] == stop_id))
        assert len(set(ids)) > 5  # not one repeated token (what a randomly initialised GPT-2 writes)
    if variant == "transformer":  # captions cut by entry_length and one ended by the stop token before it
        assert (12, False) in lengths and any(stopped and n < 67 for n, stopped in lengths)


def test_public_caption_api_matches(loaded):
    variant, model, reference, manifest, _ = loaded
    setting = next(s for s in manifest["variants"][variant]["settings"] if s["clip"] == "short")
    wave = reference["wave_short"]
    options = {k: setting[k] for k in ("beam_size", "entry_length", "temperature")}
    assert model.caption([wave], sample_rate=44100, **options) == [setting["text"]]
