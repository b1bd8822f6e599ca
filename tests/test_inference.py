"""The public API on a small random-weight model: shapes, normalisation, batch independence, save/load, errors."""

import numpy as np
import pytest
import torch

import clapkit
from clapkit import AudioError, CheckpointError, TokenizerError
from tests.small_models import small_config

SR = 48000


@pytest.fixture(scope="module")
def model():
    config = small_config()
    clapkit.register_model(config)
    torch.manual_seed(0)
    return clapkit.load(config.name, weights="random")


def _clips():
    rng = np.random.default_rng(1)
    return [0.1 * rng.standard_normal(int(SR * s)).astype(np.float32) for s in (1.0, 3.5, 10.0, 12.0)]


def test_embed_audio_shapes_and_norms(model):
    emb = model.embed_audio(_clips(), sample_rate=SR)
    assert emb.shape == (4, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_batch_size_and_order_do_not_change_embeddings(model):
    clips = _clips()
    a = model.embed_audio(clips, sample_rate=SR, batch_size=4)
    b = model.embed_audio(clips[::-1], sample_rate=SR, batch_size=1)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_files_and_arrays_agree(model, tmp_path):
    import soundfile as sf

    clip = _clips()[1]
    sf.write(tmp_path / "a.wav", clip, SR, subtype="FLOAT")
    np.testing.assert_allclose(
        model.embed_audio(tmp_path / "a.wav"), model.embed_audio(clip, sample_rate=SR), atol=1e-6
    )


def test_embed_text_classify_similarity(model):
    text = model.embed_text(["a dog barking", "rain on a roof", "a car horn"])
    assert text.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    audio = model.embed_audio(_clips()[:2], sample_rate=SR)
    logits = model.similarity(audio, text)
    np.testing.assert_allclose(logits, model.logit_scale * audio @ text.T, rtol=1e-6)
    probs = model.classify(_clips()[:2], ["dog", "rain", "car"], sample_rate=SR)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    multi = model.classify(_clips()[:2], ["dog", "rain", "car"], sample_rate=SR, multi_label=True)
    assert ((multi > 0) & (multi < 1)).all() and not np.allclose(multi.sum(1), 1.0)
    ensemble = model.label_embeddings(["dog"], ["a {}", "the sound of a {}"])
    np.testing.assert_allclose(np.linalg.norm(ensemble, axis=1), 1.0, atol=1e-6)


def test_save_and_reload_gives_same_embeddings(model, tmp_path):
    clip = _clips()[:1]
    before = model.embed_audio(clip, sample_rate=SR)
    model.save(tmp_path / "saved")
    assert {p.name for p in (tmp_path / "saved").iterdir()} == {"config.json", "model.safetensors"}
    for source in (tmp_path / "saved", tmp_path / "saved" / "model.safetensors"):
        again = clapkit.load(source)
        assert again.config == model.config
        np.testing.assert_allclose(again.embed_audio(clip, sample_rate=SR), before, atol=1e-6)


def test_errors_are_actionable(model, tmp_path):
    with pytest.raises(AudioError, match=r"array\[0\].*sample_rate="):
        model.embed_audio([np.zeros(100, np.float32)])
    with pytest.raises(CheckpointError, match="weights=PATH"):
        clapkit.load("laion-htsat-tiny")
    with pytest.raises(CheckpointError, match="not a model name"):
        clapkit.load(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"weights do not fit.*missing"):
        torch.save(
            {
                "state_dict": {
                    "module.logit_scale_a": torch.zeros(()),
                    "module.audio_branch.bn0.weight": torch.zeros(64),
                }
            },
            tmp_path / "partial.pt",
        )
        clapkit.load(model.config.name, weights=tmp_path / "partial.pt")


def test_roberta_model_without_tokenizer_still_encodes_ids(monkeypatch):
    monkeypatch.delenv("CLAPKIT_TOKENIZERS", raising=False)
    torch.manual_seed(0)
    roberta = clapkit.load("laion-htsat-tiny", weights="random")
    with pytest.raises(TokenizerError, match="encode_text"):
        roberta.embed_text(["a dog"])
    ids = torch.tensor([[0, 250, 1000, 2, 1, 1]])
    emb = roberta.encode_text(ids, (ids != 1).long())
    assert emb.shape == (1, 512)
    assert torch.allclose(emb, roberta.encode_text(ids[:, :4], torch.ones(1, 4, dtype=torch.long)), atol=1e-5)


def test_former_names_stay_aliases_of_the_current_ones(model):
    from clapkit.models.clap import ClapModule, ClapNetwork

    assert clapkit.ClapModel is clapkit.ClapPipeline and ClapModule is ClapNetwork is clapkit.ClapNetwork
    assert isinstance(model, clapkit.ClapModel) and isinstance(model.module, ClapModule)
