"""Text encoders whose geometry is read off the tensors: BART (laion_clap ``tmodel="bart"``) and T5 (ReCLAP).

Nothing is assumed that the weights show: layers from the block indices, widths from the matrices, T5's heads from
its relative attention bias (``num_buckets x heads``), its per-head width from ``q`` and the heads, gated vs plain
feed-forward from ``wi_0``/``wi_1`` vs ``wi``. What no tensor shows takes the released models' value: T5's gated
activation is GELU (Flan-T5's ``gated-gelu``; a plain one is ReLU, T5 v1.0), relative attention max distance 128,
RMSNorm epsilon 1e-6; BART's attention heads are ``d_model / 64`` (bart-base: 12), GELU, no embedding scaling.
"""

from __future__ import annotations

import re

import torch

from clapkit.config import TextTowerConfig
from clapkit.errors import CheckpointError

BART_PROBE = "encoder.layers.0.self_attn.k_proj.weight"
T5_PROBE = "encoder.block.0.layer.0.SelfAttention.q.weight"


def _indices(sd: dict[str, torch.Tensor], pattern: str) -> set[int]:
    return {int(m.group(1)) for key in sd if (m := re.match(pattern, key))}


def _need(sd: dict[str, torch.Tensor], key: str, source: str) -> torch.Tensor:
    if key not in sd:
        raise CheckpointError(f"{source}: text encoder weights incomplete, {key} is missing")
    return sd[key]


def t5_text_config(sd: dict[str, torch.Tensor], prefix: str, source: str, context_length: int = 77) -> TextTowerConfig:
    """The ``t5`` tower (``T5EncoderModel``, mean over ``context_length`` positions incl. pads) of ``sd[prefix...]``."""
    shared = sd.get(prefix + "shared.weight", sd.get(prefix + "encoder.embed_tokens.weight"))
    if shared is None:
        raise CheckpointError(f"{source}: T5 text encoder without shared.weight / encoder.embed_tokens.weight")
    vocab, d_model = shared.shape
    layers = _indices(sd, re.escape(prefix) + r"encoder\.block\.(\d+)\.")
    if layers != set(range(len(layers))):
        raise CheckpointError(f"{source}: T5 encoder blocks {sorted(layers)} are not numbered 0..{len(layers) - 1}")
    block = prefix + "encoder.block.0.layer."
    bias = _need(sd, block + "0.SelfAttention.relative_attention_bias.weight", source)
    buckets, heads = bias.shape
    inner = _need(sd, block + "0.SelfAttention.q.weight", source).shape[0]
    if inner % heads:
        raise CheckpointError(f"{source}: T5 attention width {inner} is not a multiple of its {heads} heads")
    gated = block + "1.DenseReluDense.wi_0.weight" in sd
    d_ff = _need(sd, block + ("1.DenseReluDense.wi_0.weight" if gated else "1.DenseReluDense.wi.weight"),
                 source).shape[0]
    hf_config = {
        "model_type": "t5", "vocab_size": int(vocab), "d_model": int(d_model), "d_kv": inner // heads,
        "d_ff": int(d_ff), "num_layers": len(layers), "num_heads": int(heads),
        "relative_attention_num_buckets": int(buckets), "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu" if gated else "relu", "layer_norm_epsilon": 1e-6,
        "pad_token_id": 0, "eos_token_id": 1,
    }  # fmt: skip
    return TextTowerConfig(kind="t5", hf_config=hf_config, pooling="mean_padded", context_length=context_length,
                           width=int(d_model), tokenizer="t5")


def bart_text_config(sd: dict[str, torch.Tensor], prefix: str, source: str, context_length: int = 77
                     ) -> TextTowerConfig:
    """The ``bart`` tower (BART's encoder, mean over ``context_length`` positions incl. pads) of ``sd[prefix...]``.
    The decoder's depth and width are recorded too (from its keys when present), so that an export can write the
    whole ``BartModel`` laion_clap loads strictly."""
    shared = sd.get(prefix + "shared.weight", sd.get(prefix + "encoder.embed_tokens.weight"))
    if shared is None:
        raise CheckpointError(f"{source}: BART text encoder without shared.weight / encoder.embed_tokens.weight")
    vocab, d_model = shared.shape
    layers = _indices(sd, re.escape(prefix) + r"encoder\.layers\.(\d+)\.")
    decoder_layers = _indices(sd, re.escape(prefix) + r"decoder\.layers\.(\d+)\.")
    ffn = _need(sd, prefix + "encoder.layers.0.fc1.weight", source).shape[0]
    decoder_ffn = sd.get(prefix + "decoder.layers.0.fc1.weight", torch.empty(ffn, 0)).shape[0]
    positions = _need(sd, prefix + "encoder.embed_positions.weight", source).shape[0] - 2  # BART's offset of 2
    heads = max(1, d_model // 64)
    hf_config = {
        "model_type": "bart", "vocab_size": int(vocab), "d_model": int(d_model), "encoder_layers": len(layers),
        "decoder_layers": len(decoder_layers) or len(layers), "encoder_attention_heads": heads,
        "decoder_attention_heads": heads, "encoder_ffn_dim": int(ffn), "decoder_ffn_dim": int(decoder_ffn),
        "max_position_embeddings": int(positions), "activation_function": "gelu", "scale_embedding": False,
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
    }  # fmt: skip
    return TextTowerConfig(kind="bart", hf_config=hf_config, pooling="mean_padded", context_length=context_length,
                           width=int(d_model), tokenizer="roberta")


def untie_embeddings(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keep one copy of the tied word embedding (``shared.weight``; ``encoder.embed_tokens.weight`` is its alias)."""
    alias, canonical = prefix + "encoder.embed_tokens.weight", prefix + "shared.weight"
    if alias in sd:
        sd = dict(sd)
        value = sd.pop(alias)
        sd.setdefault(canonical, value)
    return sd


def bart_decoder(hf_config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A freshly initialised BART decoder (``decoder.*`` keys, from a fixed seed) for a LAION export: laion_clap's
    BART tower holds a whole ``BartModel`` but its embedding never depends on the decoder, which clapkit drops."""
    from transformers import BartConfig, BartModel

    config = {k: v for k, v in hf_config.items() if k != "model_type"}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BartModel(BartConfig(**config))
    return {k: v for k, v in model.state_dict().items() if k.startswith("decoder.")}
