"""BART/T5 text towers and the ReCLAP family without the reference environment: geometry read off the tensors (other
depths, widths, head counts, gated or plain feed-forward), the full-size named configs detected from their own
layout, tied embeddings stored once, the pad-inclusive mean, and a T5 tokenizer from a local directory."""

from __future__ import annotations

import json

import pytest
import torch

import clapkit
from clapkit.checkpoints import laion, load_state_dict_strict, load_weights
from clapkit.checkpoints.families import FAMILIES, family_named
from clapkit.checkpoints.laion_export import laion_state_dict
from clapkit.errors import ConfigError
from clapkit.models.clap import ClapNetwork, build_audio_tower
from clapkit.models.heads import LaionProjection
from clapkit.models.text import TextTower
from clapkit.registry import get_config
from clapkit.tokenizers import load_tokenizer

TINY_AUDIO = {"audio": {"depths": [1, 1, 1, 1], "num_heads": [1, 2, 2, 4]}}  # detectable: HTSAT-tiny widths


def small(name: str, text: dict) -> object:
    config = get_config(name)
    data = config.to_dict()
    data["audio"].update(TINY_AUDIO["audio"])
    data["text"]["hf_config"] = {**data["text"]["hf_config"], **text}
    data["text"]["width"] = text.get("d_model", data["text"]["width"])
    return type(config).from_dict(data)


@pytest.mark.parametrize("text", [
    {"num_layers": 3, "d_model": 48, "num_heads": 5, "d_kv": 8, "d_ff": 40, "feed_forward_proj": "gated-gelu",
     "vocab_size": 120, "relative_attention_num_buckets": 16},
    {"num_layers": 1, "d_model": 32, "num_heads": 2, "d_kv": 20, "d_ff": 24, "feed_forward_proj": "relu",
     "vocab_size": 90},
])
def test_t5_geometry_is_read_off_the_tensors(tmp_path, text):
    config = small("reclap-htsat-tiny-t5", text)
    module = ClapNetwork(config)
    path = family_named("reclap").save(tmp_path / "reclap.pt", config, module.state_dict())
    detected, weights = load_weights(path)
    assert detected.text == config.text and detected.family == "reclap"
    assert detected.name == "reclap-htsat-tiny-t5"
    assert set(weights) == set(module.state_dict())  # tied embedding stored once, as shared.weight
    assert "text_tower.model.shared.weight" in weights and "text_tower.model.encoder.embed_tokens.weight" not in weights
    loaded = ClapNetwork(detected).eval()
    load_state_dict_strict(loaded, weights, "reclap.pt")
    ids = torch.randint(2, text["vocab_size"], (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_text(ids), module.eval().encode_text(ids))


def test_bart_geometry_and_the_laion_record(tmp_path):
    config = small("laion-htsat-tiny-bart", {"d_model": 128, "encoder_layers": 3, "decoder_layers": 2,
                                              "encoder_attention_heads": 2, "decoder_attention_heads": 2,
                                              "encoder_ffn_dim": 64, "decoder_ffn_dim": 48, "vocab_size": 70,
                                              "max_position_embeddings": 90})
    module = ClapNetwork(config)
    path = family_named("laion").save(tmp_path / "bart.pt", config, module.state_dict())
    assert not laion.is_reclap(torch.load(path, weights_only=True)["state_dict"])
    detected, _ = load_weights(path)
    assert detected.text == config.text and detected.name == "laion-htsat-tiny-bart"
    with pytest.raises(ConfigError, match="--to reclap"):
        family_named("laion").save(tmp_path / "t5.pt", small("reclap-htsat-tiny-t5", {}), {})


def test_reclap_base_is_detected_from_its_own_layout():
    """ReCLAP Base's full geometry (HTSAT-base with fusion + Flan-T5-large: 24 blocks of 16 heads, gated d_ff 2816;
    the T5 as meta tensors, shapes only) comes back as the named config ``reclap-htsat-base-fusion-t5``."""
    name = "reclap-htsat-base-fusion-t5"
    config = get_config(name)
    with torch.device("meta"):  # Flan-T5-large's 335 M parameters as shapes only
        text = TextTower(config.text)
    own = {f"audio_tower.{k}": v for k, v in build_audio_tower(config.audio).state_dict().items()}
    own.update({f"text_tower.{k}": v for k, v in text.state_dict().items()})
    for branch, width in (("audio", config.audio.embed_dim), ("text", config.text.width)):
        head = LaionProjection(width, config.joint_dim)
        own.update({f"{branch}_projection.{k}": v for k, v in head.state_dict().items()})
    own.update({"logit_scale_a": torch.tensor(2.0), "logit_scale_t": torch.tensor(2.0)})
    state_dict = {"module." + k: v for k, v in laion_state_dict(config, own, reclap=config.text.kind == "t5").items()}
    family = next(f for f in FAMILIES if f.detect(state_dict))
    assert family.name == config.family
    detected = laion.infer_config(state_dict, "meta")
    assert detected.name == name
    for part in ("frontend", "audio", "text", "head", "joint_dim", "separate_logit_scales"):
        assert getattr(detected, part) == getattr(config, part), part


def test_mean_includes_pad_positions_up_to_the_context_length():
    config = small("reclap-htsat-tiny-t5", {"num_layers": 1, "d_model": 32, "num_heads": 2, "d_kv": 16, "d_ff": 32,
                                             "vocab_size": 50})
    tower = ClapNetwork(config).text_tower.eval()
    ids = torch.tensor([[5, 6, 7, 1]])
    padded = torch.cat([ids, torch.zeros(1, 73, dtype=torch.long)], 1)
    mask = (padded != 0).long()
    with torch.no_grad():
        hidden = tower.model(input_ids=padded, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(tower(ids), hidden.mean(1))  # all 77 positions, pads included
        assert not torch.allclose(tower(ids), hidden[:, :4].mean(1))


def test_t5_tokenizer_from_a_local_directory(tmp_path):
    """``tokenizer=`` a local transformers tokenizer directory (here a tiny word-level one with T5's pad 0 and
    ``</s>`` 1): captions become ids, and embed_text equals encode_text on those ids padded to 77."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "</s>", "<unk>", "a", "dog", "barks", "rain", "falls"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(tmp_path / "tok")
    config = small("reclap-htsat-tiny-t5", {"num_layers": 1, "d_model": 32, "num_heads": 2, "d_kv": 16, "d_ff": 32,
                                             "vocab_size": 20})
    tokens = load_tokenizer(config.text, tmp_path / "tok")(["a dog barks", "rain falls"])
    assert tokens["input_ids"].tolist() == [[3, 4, 5, 1], [6, 7, 1, 0]]
    module = ClapNetwork(config).eval()
    (tmp_path / "model").mkdir()
    family_named("clapkit").save(tmp_path / "model", config, module.state_dict())
    model = clapkit.load(tmp_path / "model", tokenizer=tmp_path / "tok")
    ids = torch.zeros(2, 77, dtype=torch.long)
    ids[0, :4], ids[1, :3] = torch.tensor([3, 4, 5, 1]), torch.tensor([6, 7, 1])
    with torch.no_grad():
        expected = module.encode_text(ids, (ids != 0).long()).numpy()
    torch.testing.assert_close(torch.as_tensor(model.embed_text(["a dog barks", "rain falls"])),
                               torch.as_tensor(expected), rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "model" / "config.json").read_text())["text"]["pooling"] == "mean_padded"


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_text_tower_from_a_local_transformers_directory(tmp_path, kind):
    """A saved T5ForConditionalGeneration / BartForConditionalGeneration directory gives the tower (encoder only,
    mean_padded) with its weights; the decoder and LM head are left out, and training can start from it."""
    import transformers

    from clapkit.checkpoints.pretrained import text_tower_from_pretrained
    from clapkit.models.text import TextTower
    from clapkit.train.config import ModelSetupConfig
    from clapkit.train.modeling import build_model

    if kind == "t5":
        hf = transformers.T5ForConditionalGeneration(transformers.T5Config(
            vocab_size=40, d_model=32, d_kv=8, num_heads=2, d_ff=24, num_layers=1, num_decoder_layers=1,
            feed_forward_proj="gated-gelu"))
    else:
        hf = transformers.BartForConditionalGeneration(transformers.BartConfig(
            vocab_size=40, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=24, max_position_embeddings=80))
    hf.save_pretrained(tmp_path / kind)
    config, weights = text_tower_from_pretrained(tmp_path / kind)
    assert (config.kind, config.pooling, config.width) == (kind, "mean_padded", 32)
    assert not any(".decoder." in f".{k}" or "lm_head" in k for k in weights)
    tower = TextTower(config).eval()
    tower.load_state_dict(weights, strict=True)
    encoder = hf.get_encoder().eval()
    ids = torch.randint(3, 40, (2, 6))
    padded = torch.cat([ids, torch.full((2, 71), config.hf_config["pad_token_id"])], 1)
    with torch.no_grad():
        expected = encoder(input_ids=padded, attention_mask=(torch.arange(77) < 6).long().expand(2, 77))
        torch.testing.assert_close(tower(ids), expected.last_hidden_state.mean(1))
    name = "reclap-htsat-tiny-t5" if kind == "t5" else "laion-htsat-tiny-bart"
    _, module = build_model(ModelSetupConfig(name=name, text_pretrained=str(tmp_path / kind)))
    assert torch.equal(module.text_tower.model.shared.weight, hf.get_input_embeddings().weight)
