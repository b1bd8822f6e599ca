"""clapkit's own BERT/RoBERTa encoder: transformers' function from transformers' state dict, without transformers."""

from __future__ import annotations

import pytest
import torch

from clapkit.models.bert import BertEncoder, supports

TINY = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64}
CONFIGS = {
    "bert": {"model_type": "bert", **TINY, "max_position_embeddings": 40, "type_vocab_size": 2, "pad_token_id": 0},
    "roberta": {"model_type": "roberta", **TINY, "max_position_embeddings": 42, "type_vocab_size": 1,
                "pad_token_id": 1, "layer_norm_eps": 1e-5},
    "bert-relu": {"model_type": "bert", **TINY, "hidden_act": "relu", "pad_token_id": 0},
}


def _reference(hf_config: dict) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModel

    config = dict(hf_config)
    model = AutoModel.from_config(AutoConfig.for_model(config.pop("model_type"), **config),
                                  attn_implementation="sdpa", add_pooling_layer=True).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # perturb every learned tensor (layer norms and biases start at 1/0)
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return model


def _batch(pad: int):
    ids = torch.randint(3, 99, (4, 13), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, 9:], mask[2, 4:], mask[3, 1:] = 0, 0, 0
    return ids.masked_fill(mask == 0, pad), mask


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_function_as_transformers(name):
    hf_config = CONFIGS[name]
    reference = _reference(hf_config)
    ours = BertEncoder(hf_config).eval()
    assert set(ours.state_dict()) == set(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    ids, mask = _batch(hf_config["pad_token_id"])
    types = torch.zeros_like(ids) if hf_config["model_type"] == "bert" else None
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, token_type_ids=types)
        got = ours(ids, mask, types)
    real = mask.bool()
    assert (got.last_hidden_state - expected.last_hidden_state)[real].abs().max() <= 1e-5
    assert (got.pooler_output - expected.pooler_output).abs().max() <= 1e-5
    with torch.no_grad():  # no mask at all = every token real
        full = ours(ids[:1, :9])
        assert (full.pooler_output - reference(input_ids=ids[:1, :9]).pooler_output).abs().max() <= 1e-5


def test_training_mode_has_dropout_and_gradients():
    ours = BertEncoder(CONFIGS["bert"]).train()
    ids, mask = _batch(0)
    first, second = ours(ids, mask).pooler_output, ours(ids, mask).pooler_output
    assert not torch.allclose(first, second)  # dropout is active
    first.sum().backward()
    assert all(p.grad is not None for n, p in ours.named_parameters() if "token_type" not in n)


def test_random_init_follows_transformers():
    torch.manual_seed(0)
    ours = BertEncoder({**CONFIGS["bert"], "vocab_size": 3000, "hidden_size": 64, "num_attention_heads": 4})
    weight = ours.embeddings.word_embeddings.weight
    assert abs(weight[1:].std().item() - 0.02) < 1e-3 and weight[0].abs().max() == 0  # padding row zero
    layer = ours.encoder.layer[0]
    assert layer.attention.self.query.bias.abs().max() == 0 and layer.output.LayerNorm.weight.eq(1).all()


def test_configs_it_does_not_cover_go_to_transformers():
    assert supports(CONFIGS["bert"]) and supports(CONFIGS["roberta"])
    assert not supports({**CONFIGS["bert"], "position_embedding_type": "relative_key"})
    assert not supports({**CONFIGS["bert"], "is_decoder": True})
    assert not supports({"model_type": "gpt2"})
    with pytest.raises(ValueError, match="does not cover"):
        BertEncoder({**CONFIGS["bert"], "hidden_act": "quick_gelu"})
