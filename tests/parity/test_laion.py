"""LAION-CLAP parity: checkpoints saved by laion_clap 1.1.7 (perturbed random weights, calibrated batch norms) load in
clapkit by detection and give laion_clap's numbers through the public API.

Tolerance 1e-4 max abs difference on L2-normalised embeddings. Every case is generated only for the models it applies
to (fusion, front end, tokenizer), so none passes without asserting.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import pytest
import torch

import clapkit
from tests.parity.conftest import assert_input_sensitive, record


class Spec(NamedTuple):
    kind: str
    variant: str
    fusion: bool
    text: str


# what clapkit must detect for each reference of reference_laion.py (BART towers: their builder adds "...bart" here)
MODELS = {
    "laion_htsat_tiny": Spec("htsat", "tiny", False, "roberta"),
    "laion_htsat_tiny_fusion": Spec("htsat", "tiny", True, "roberta"),
    "laion_htsat_base": Spec("htsat", "base", False, "roberta"),
    "laion_htsat_base_fusion": Spec("htsat", "base", True, "roberta"),
    "laion_htsat_large": Spec("htsat", "large", False, "roberta"),
    "laion_htsat_large_fusion": Spec("htsat", "large", True, "roberta"),
    "laion_pann14": Spec("pann", "cnn14", False, "roberta"),
    "laion_pann14_fusion": Spec("pann", "cnn14", True, "roberta"),
    "laion_pann10": Spec("pann", "cnn10", False, "roberta"),
    "laion_pann6": Spec("pann", "cnn6", False, "roberta"),
    "laion_htsat_tiny_bert": Spec("htsat", "tiny", False, "bert"),
    "laion_htsat_tiny_clip": Spec("htsat", "tiny", False, "clip"),
}
CLIPS = ("a", "b")


def applies(predicate):
    """Generate a test only for the models whose Spec satisfies ``predicate``."""

    def mark(test):
        test.applies = predicate
        return test

    return mark


def pytest_generate_tests(metafunc):
    if "loaded" in metafunc.fixturenames:
        predicate = getattr(metafunc.function, "applies", lambda spec: True)
        names = [name for name, spec in MODELS.items() if predicate(spec)]
        metafunc.parametrize("loaded", names, indirect=True, scope="module")


def load(parity_dir, name: str):
    tokenizer = parity_dir / "laion_tokenizers" / "roberta" if MODELS[name].text == "roberta" else None
    return clapkit.load(parity_dir / f"{name}.pt", tokenizer=tokenizer)


@pytest.fixture(scope="module")
def loaded(request, parity_dir):
    name = request.param
    return name, load(parity_dir, name), dict(np.load(parity_dir / f"{name}.npz"))


def test_every_reference_is_tested(parity_dir):
    assert set(json.loads((parity_dir / "laion_manifest.json").read_text())["models"]) == set(MODELS)


def test_detected_architecture(loaded):
    name, model, _ = loaded
    spec, config = MODELS[name], model.config
    assert config.family == "laion"
    assert (config.audio.kind, config.audio.variant, config.audio.enable_fusion, config.text.kind) == spec


def test_audio_end_to_end(loaded):
    """Waveform -> embedding through the public API (int16 round trip, repeat-pad, front end, tower, head)."""
    name, model, ref = loaded
    for clip in CLIPS:
        ours = model.embed_audio([ref[f"wave_{clip}"]], sample_rate=48000)
        seconds = ref[f"wave_{clip}"].size / 48000
        record(name, f"audio end-to-end {clip} ({seconds:.0f} s)", ref[f"audio_{clip}"], ours)


def test_input_sensitivity(loaded):
    """Two different clips are far apart, in laion_clap and in clapkit (else parity would prove little)."""
    name, model, ref = loaded
    assert_input_sensitive(name, ref["audio_a"], ref["audio_b"])
    assert_input_sensitive(name, ref["text_embed"][0], ref["text_embed"][1], "text")


@applies(lambda spec: spec.fusion)
def test_audio_model_level_fusion(loaded):
    """laion's fused features (2 short clips + a 13 s one, laion's random chunks) into clapkit's model."""
    name, model, ref = loaded
    features = torch.from_numpy(ref["model_mel_fusion"])
    is_longer = torch.from_numpy(ref["model_is_longer"]).bool()
    assert is_longer.tolist() == [False, False, True]
    ours = model.encode_audio(features, is_longer).numpy()
    record(name, "audio model-level fused (2 short + 13 s)", ref["model_audio"], ours)


@applies(lambda spec: not spec.fusion)
def test_front_end_matches_torchlibrosa(loaded):
    """Our log-mel of the repeat-padded clips equals torchlibrosa's (non-fusion models)."""
    name, model, ref = loaded
    from clapkit.audio.fusion import prepare_batch

    waves = [ref[f"wave_{clip}"] for clip in CLIPS]  # int16 round trip on both sides, as laion's numpy API does
    assert model.config.frontend.int16_roundtrip
    batch = prepare_batch(waves, model.config.frontend, fusion=False, train=False)
    record(name, "log-mel dB (3 s, 10 s)", ref["model_logmel"], batch.features.numpy(), tolerance=1e-3)


def test_text_on_same_token_ids(loaded):
    name, model, ref = loaded
    ids, mask = torch.from_numpy(ref["text_input_ids"]), torch.from_numpy(ref["text_attention_mask"])
    record(name, "text (77-token ids)", ref["text_embed"], model.encode_text(ids, mask).numpy())
    longest = int(mask.sum(1).max())  # clapkit pads to the longest caption, not to 77: same embeddings
    trimmed = model.encode_text(ids[:, :longest], mask[:, :longest]).numpy()
    record(name, "text (trimmed to longest)", ref["text_embed"], trimmed)


def test_text_end_to_end(loaded):
    """Captions -> embedding through the public API (our tokenizer: RoBERTa from laion_clap's saved files, BERT's
    bundled vocabulary, CLIP's BPE) against laion_clap's tokenizer + model."""
    name, model, ref = loaded
    captions = [str(c) for c in ref["captions"]]
    ids = model.tokenize(captions)["input_ids"].numpy()
    expected = ref["text_input_ids"]
    pad = {"roberta": 1, "bert": 0, "clip": 0}[MODELS[name].text]
    assert (ids == expected[:, : ids.shape[1]]).all() and (expected[:, ids.shape[1] :] == pad).all()
    record(name, "text end-to-end (embed_text)", ref["text_embed"], model.embed_text(captions))


def test_logit_scales(loaded):
    """laion_clap's two temperatures, set to distinct non-default values: audio-text (a) and text-audio (t)."""
    name, model, ref = loaded
    a, t = float(ref["logit_scale_a"]), float(ref["logit_scale_t"])
    assert abs(a - t) > 1 and abs(a - 1 / 0.07) > 0.1 and abs(t - 1 / 0.07) > 0.1  # not clapkit's initial value
    assert abs(model.logit_scale - a) < 1e-4
    assert abs(float(model.module.audio_logit_scale.exp()) - a) < 1e-4
    assert abs(float(model.module.text_logit_scale.exp()) - t) < 1e-4
