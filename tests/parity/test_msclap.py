"""MS-CLAP parity: checkpoints saved in msclap's format (msclap 1.3.4, perturbed random weights, calibrated batch norms,
a non-default temperature) load in clapkit by detection and give msclap's numbers. Tolerance 1e-4 max abs difference
on L2-normalised embeddings.

Audio end to end: msclap's public file API (``get_audio_embeddings``: fit to the version's duration, front end, model)
against ``ClapPipeline.embed_audio`` on the same samples, for a short clip (repeated) and one of exactly the duration.
Model level: whole waveforms into msclap's model (``_get_audio_embeddings``), including 8 s and 10 s for 2023 (more
than its 1024-frame image: two and three crops of 689 frames), against our front end + ``encode_audio``.
The export test below uses one key table both ways; the parity tests above check that table against msclap itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clapkit
from clapkit.audio.frontend import MelFrontend
from clapkit.checkpoints import msclap
from tests.parity.conftest import assert_input_sensitive, record

VERSIONS = ["2022", "2023"]


@pytest.fixture(scope="module", params=VERSIONS)
def loaded(request, parity_dir):
    version = request.param
    model = clapkit.load(
        parity_dir / f"msclap_{version}.pth", tokenizer=parity_dir / "msclap_tokenizers" / version
    )
    return version, model, dict(np.load(parity_dir / f"msclap_{version}.npz")), parity_dir


def test_detected_family_and_version(loaded):
    version, model, _, _ = loaded
    config = model.config
    assert (config.family, config.name, config.joint_dim, config.separate_logit_scales) == (
        "msclap", f"ms-clap-{version}", 1024, False
    )
    if version == "2022":
        assert (config.audio.kind, config.audio.variant, config.audio.embed_dim, config.text.kind) == (
            "pann", "cnn14", 2048, "bert"
        )
        assert (config.frontend.clip_samples, config.frontend.filterbank_sample_rate) == (5 * 44100, None)
    else:
        assert (config.audio.kind, config.audio.variant, config.audio.embed_dim, config.text.kind) == (
            "htsat", "tiny", 768, "gpt2"
        )
        assert (config.frontend.clip_samples, config.frontend.filterbank_sample_rate) == (7 * 44100, 32000)


def test_audio_end_to_end(loaded):
    version, model, ref, _ = loaded
    for clip in ("short", "exact"):
        ours = model.embed_audio([ref[f"wave_{clip}"]], sample_rate=44100)
        seconds = ref[f"wave_{clip}"].size / 44100
        record(f"ms-clap-{version}", f"audio end-to-end {clip} ({seconds:.1f} s)", ref[f"audio_{clip}"], ours)


def test_input_sensitivity(loaded):
    version, _, ref, _ = loaded
    assert_input_sensitive(f"ms-clap-{version}", ref["audio_short"], ref["audio_exact"])
    assert_input_sensitive(f"ms-clap-{version}", ref["text_embed"][0], ref["text_embed"][1], "text")


def test_audio_model_level(loaded):
    """Whole waveforms into the model (2023: 8 s = 1103 frames -> 2 crops, 10 s = 1379 frames -> 3 crops)."""
    version, model, ref, _ = loaded
    frontend = MelFrontend(model.config.frontend)
    clips = [k[len("model_audio_") :] for k in ref if k.startswith("model_audio_")]
    assert len(clips) == (4 if version == "2023" else 3)
    for clip in clips:
        features = frontend(torch.from_numpy(ref[f"wave_{clip}"])[None])[:, None]
        ours = model.encode_audio(features).numpy()
        what = f"audio model-level {clip} ({features.shape[2]} frames)"
        record(f"ms-clap-{version}", what, ref[f"model_audio_{clip}"], ours)


def test_front_end_matches_torchlibrosa(loaded):
    """Our log-mel equals msclap's torchlibrosa one (2023: the filterbank built for 32 kHz, fmax 14 kHz)."""
    version, model, ref, _ = loaded
    features = MelFrontend(model.config.frontend)(torch.from_numpy(ref["wave_exact"])[None])[:, None]
    record(f"ms-clap-{version}", "log-mel dB (clip of the duration)", ref["logmel_exact"], features.numpy(),
           tolerance=1e-3)


def test_text_on_same_token_ids(loaded):
    version, model, ref, _ = loaded
    ids, mask = torch.from_numpy(ref["text_input_ids"]), torch.from_numpy(ref["text_attention_mask"])
    assert ids.shape[1] == (100 if version == "2022" else 77)
    record(f"ms-clap-{version}", f"text ({ids.shape[1]}-token ids)", ref["text_embed"],
           model.encode_text(ids, mask).numpy())
    longest = int(mask.sum(1).max())
    record(f"ms-clap-{version}", "text (trimmed to longest)", ref["text_embed"],
           model.encode_text(ids[:, :longest], mask[:, :longest]).numpy())


def test_tokenizer_and_embed_text(loaded):
    """Our tokenizer on msclap's saved tokenizer gives msclap's ids (GPT-2: ' <|endoftext|>' appended, '!' = 0 pads)
    and embed_text gives msclap's get_text_embeddings."""
    version, model, ref, _ = loaded
    captions = [str(c) for c in ref["captions"]]
    ids = model.tokenize(captions)["input_ids"].numpy()
    expected = ref["text_input_ids"]
    assert (ids == expected[:, : ids.shape[1]]).all() and (expected[:, ids.shape[1] :] == 0).all()
    if version == "2023":  # the caption with '!' holds real id-0 tokens: msclap pools it before its last token
        assert ((ref["text_input_ids"][1] == 0) & (ref["text_attention_mask"][1] == 1)).any()
    record(f"ms-clap-{version}", "text end-to-end (embed_text)", ref["text_embed"], model.embed_text(captions))


def test_logit_scale(loaded):
    _, model, ref, _ = loaded
    scale = float(ref["logit_scale"])
    assert abs(scale - 1 / 0.07) > 1  # set to a non-default value by the reference builder
    assert abs(model.logit_scale - scale) < 1e-4
    assert abs(float(model.module.text_logit_scale.exp()) - scale) < 1e-4  # MS-CLAP: one temperature


def test_export_is_msclaps_state_dict(loaded):
    """from_clapkit gives back msclap's own state dict bit for bit: same keys, same tensors, the torchlibrosa
    front-end buffers regenerated from the config."""
    version, model, _, parity_dir = loaded
    original = torch.load(parity_dir / f"msclap_{version}.pth", map_location="cpu", weights_only=True, mmap=True)
    assert list(original) == ["model"]
    original = original["model"]
    exported = msclap.from_clapkit(model.module.state_dict(), model.config)
    assert list(exported) != [] and set(exported) == set(original)
    for key, value in original.items():
        assert torch.equal(exported[key], value), key
