"""Small model configs for fast unit tests (real architectures, shrunk text towers)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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


MICRO_RATE = 16000


def micro_config() -> ModelConfig:
    """HTSAT with 2 narrow stages on a 16 kHz, 16-mel front end (10 s clips), and the 2-layer 32-wide BERT tower."""
    base = small_config()
    frontend = dataclasses.replace(
        base.frontend,
        sample_rate=MICRO_RATE,
        clip_samples=10 * MICRO_RATE,
        n_fft=1024,
        win_length=1024,
        hop_length=640,
        n_mels=16,
        f_max=7600.0,
    )
    audio = dataclasses.replace(
        base.audio, spec_size=64, n_mels=16, depths=(1, 1), num_heads=(1, 1), htsat_embed_dim=8, embed_dim=16
    )
    return base.replace(name="micro-htsat-bert", frontend=frontend, audio=audio, joint_dim=32)


def save_random_model(config: ModelConfig, directory: Path, seed: int = 0) -> Path:
    """``config`` registered, with random weights seeded by ``seed``, saved as config.json + model.safetensors."""
    import torch

    import clapkit

    torch.manual_seed(seed)
    clapkit.register_model(config)
    clapkit.load(config.name, weights="random").save(directory)
    return directory
