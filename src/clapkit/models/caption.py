"""CaptionNetwork: MS-CLAP's captioning model (clapcap) as one ``nn.Module``.

audio -> HTSAT -> MS projection (the CLAP audio embedding, ``prefix_dim`` wide) -> L2 normalisation -> a mapper ->
``prefix_length`` input embeddings of a GPT-2 decoder, which continues them with the caption's tokens (beam search:
``clapkit.captioning``). The decoder's output layer is its token embedding (GPT-2's tied ``lm_head``).

Mappers (``CaptionConfig.mapper``):
  transformer  a linear map of the audio embedding to ``clip_length`` tokens, followed by ``prefix_length`` learned
               tokens; ``num_layers`` pre-norm self-attention layers (``num_heads`` heads, attention in/out
               projections, ReLU feed-forward of width ``hidden``) over all of them; the outputs at the learned
               tokens are the prefix
  mlp          Linear(prefix_dim, hidden) -> Tanh -> Linear(hidden, prefix_length * width)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clapkit.config import CaptionConfig, ModelConfig
from clapkit.errors import ConfigError
from clapkit.models.clap import build_audio_tower
from clapkit.models.heads import build_projection
from clapkit.models.text import build_hf_text_model

MAPPERS = ("transformer", "mlp")


class MapperAttention(nn.Module):
    """Multi-head self-attention: queries from one projection, keys and values from one joint projection
    (first half keys, second half values), softmax(q k^T / sqrt(head width)) v, then an output projection."""

    def __init__(self, width: int, heads: int, bias: bool):
        super().__init__()
        if width % heads:
            raise ConfigError(f"caption mapper: width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.to_queries = nn.Linear(width, width, bias=bias)
        self.to_keys_values = nn.Linear(width, 2 * width, bias=bias)
        self.project = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        split = (batch, length, self.heads, width // self.heads)
        queries = self.to_queries(x).view(split).transpose(1, 2)
        keys, values = (t.reshape(split).transpose(1, 2) for t in self.to_keys_values(x).chunk(2, dim=-1))
        mixed = F.scaled_dot_product_attention(queries, keys, values)
        return self.project(mixed.transpose(1, 2).reshape(batch, length, width))


class MapperFeedForward(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class MapperLayer(nn.Module):
    """Pre-norm residual block: x + attn(norm1(x)), then + mlp(norm2(x))."""

    def __init__(self, width: int, config: CaptionConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = MapperAttention(width, config.num_heads, config.attention_bias)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MapperFeedForward(width, config.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MapperLayers(nn.Module):
    def __init__(self, width: int, config: CaptionConfig):
        super().__init__()
        self.layers = nn.ModuleList(MapperLayer(width, config) for _ in range(config.num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TransformerMapper(nn.Module):
    def __init__(self, config: CaptionConfig, width: int):
        super().__init__()
        self.clip_length = config.clip_length
        self.linear = nn.Linear(config.prefix_dim, config.clip_length * width)
        self.prefix_const = nn.Parameter(torch.randn(config.prefix_length, width))
        self.transformer = MapperLayers(width, config)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        clip = self.linear(embedding).view(embedding.shape[0], self.clip_length, -1)
        learned = self.prefix_const.unsqueeze(0).expand(embedding.shape[0], -1, -1)
        return self.transformer(torch.cat((clip, learned), dim=1))[:, self.clip_length :]


class MlpMapper(nn.Module):
    def __init__(self, config: CaptionConfig, width: int):
        super().__init__()
        self.prefix_length = config.prefix_length
        self.model = nn.Sequential(
            nn.Linear(config.prefix_dim, config.hidden),
            nn.Tanh(),
            nn.Linear(config.hidden, config.prefix_length * width),
        )

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.model(embedding).view(embedding.shape[0], self.prefix_length, -1)


class CaptionNetwork(nn.Module):
    """HTSAT + projection (``audio_tower``, ``audio_projection``), ``mapper`` and the GPT-2 ``decoder`` (a
    transformers ``GPT2Model``). ``encode_audio`` gives the L2-normalised audio embedding, as a CLAP model does."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.caption is None:
            raise ConfigError(f"model {config.name!r} has no caption config: it is a CLAP model, not a captioner")
        caption = config.caption
        if caption.mapper not in MAPPERS:
            raise ConfigError(f"unknown caption mapper {caption.mapper!r}; known: {MAPPERS}")
        if config.joint_dim != caption.prefix_dim:
            raise ConfigError(
                f"caption prefix_dim {caption.prefix_dim} must equal the audio embedding's {config.joint_dim}"
            )
        self.config = config
        self.audio_tower = build_audio_tower(config.audio)
        self.audio_projection = build_projection(config.head, config.audio.embed_dim, config.joint_dim)
        self.decoder = build_hf_text_model(config.text.hf_config)
        width = config.text.width
        mapper = TransformerMapper if caption.mapper == "transformer" else MlpMapper
        self.mapper = mapper(caption, width)

    def audio_features(self, features: torch.Tensor, is_longer: torch.Tensor | None = None) -> torch.Tensor:
        return self.audio_projection(self.audio_tower(features, is_longer))

    def encode_audio(self, features: torch.Tensor, is_longer: torch.Tensor | None = None) -> torch.Tensor:
        return F.normalize(self.audio_features(features, is_longer), dim=-1)

    def prefix(self, features: torch.Tensor, is_longer: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's input embeddings (B, prefix_length, width) for front-end features."""
        embedding = self.audio_features(features, is_longer)
        if self.config.caption.normalize_prefix:
            embedding = embedding / embedding.norm(dim=-1, keepdim=True)
        return self.mapper(embedding)

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder.wte(tokens)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits from decoder hidden states (the tied output layer: hidden @ wte^T)."""
        return F.linear(hidden, self.decoder.wte.weight)

    def encode_text(self, *args, **kwargs):
        raise ConfigError(no_text_message(self.config))

    @property
    def audio_logit_scale(self) -> torch.Tensor:
        raise ConfigError(no_text_message(self.config))

    text_logit_scale = audio_logit_scale


def no_text_message(config: ModelConfig) -> str:
    return (
        f"model {config.name!r} is a captioning model (MS-CLAP clapcap): it writes captions (model.caption(...), "
        "`clapkit caption`) and embeds audio, but has no text encoder, so it cannot embed text, classify or search "
        "by text; use a CLAP model (e.g. CLAP_weights_2023.pth) for those"
    )
