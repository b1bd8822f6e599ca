"""Small model configs for fast unit tests (real architectures, shrunk text towers)."""

from __future__ import annotations

import dataclasses

from clapkit.config import ModelConfig
from clapkit.registry import get_config

SMALL_BERT = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}


def small_config(base: str = "laion-htsat-tiny-bert", **audio_changes) -> ModelConfig:
    """``base`` with a 2-layer, 32-wide BERT text tower (the bundled vocabulary tokenizes for it)."""
    config = get_config(base)
    text = dataclasses.replace(config.text, kind="bert", hf_config=SMALL_BERT, width=32, tokenizer="bert")
    audio = dataclasses.replace(config.audio, **audio_changes)
    return config.replace(name=f"{base}-small-text", text=text, audio=audio)
