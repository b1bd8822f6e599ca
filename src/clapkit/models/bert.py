"""A BERT/RoBERTa encoder of clapkit's own, with the parameter names of transformers' ``BertModel``/``RobertaModel``.

Why: importing transformers' modelling code takes seconds (it pulls in its generation utilities, and through them
scikit-learn), more than building and running the default model's MiniLM tower. This encoder computes the same
function (post-norm Transformer layers, absolute learned positions, SDPA attention with the padding masked, a tanh
pooler over the first token) from the same state dict (``embeddings.*``, ``encoder.layer.N.*``, ``pooler.dense.*``),
so checkpoints load unchanged; ``tests/models/test_bert.py`` checks it against transformers to <= 1e-5.

Covered: ``model_type`` ``bert`` (positions 0..L-1, token type 0) and ``roberta`` (positions counted over non-pad
tokens from ``pad_token_id + 1``, pads at ``pad_token_id``), absolute positions, GELU/ReLU/tanh-GELU/SiLU, dropout in
training. Anything else (relative positions, decoders, cross-attention) is built with transformers instead
(``supports``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from clapkit.models.fused import linear

_ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}
_DEFAULTS = {  # transformers' BertConfig / RobertaConfig defaults for the keys used here
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "position_embedding_type": "absolute",
}
# keys whose presence with a non-default value this encoder does not implement
_UNSUPPORTED = {"is_decoder": False, "add_cross_attention": False, "chunk_size_feed_forward": 0,
                "position_embedding_type": "absolute"}


def supports(hf_config: dict) -> bool:
    """Whether ``hf_config`` (a transformers config dict) describes an encoder this module computes exactly."""
    if hf_config.get("model_type") not in ("bert", "roberta"):
        return False
    if any(hf_config.get(key, default) != default for key, default in _UNSUPPORTED.items()):
        return False
    return hf_config.get("hidden_act", "gelu") in _ACTIVATIONS


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor


class _Settings:
    def __init__(self, hf_config: dict):
        config = {**_DEFAULTS, **hf_config}
        self.roberta = config["model_type"] == "roberta"
        self.width = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.inner = int(config["intermediate_size"])
        self.vocab = int(config["vocab_size"])
        self.positions = int(config["max_position_embeddings"])
        self.types = int(config["type_vocab_size"])
        self.pad = int(config.get("pad_token_id", 1 if self.roberta else 0) or 0)
        self.eps = float(config["layer_norm_eps"])
        self.dropout = float(config["hidden_dropout_prob"])
        self.attention_dropout = float(config["attention_probs_dropout_prob"])
        self.activation = _ACTIVATIONS[config["hidden_act"]]
        self.init_std = float(config["initializer_range"])
        if self.width % self.heads:
            raise ValueError(f"hidden_size {self.width} is not a multiple of num_attention_heads {self.heads}")


class _Embeddings(nn.Module):
    def __init__(self, s: _Settings):
        super().__init__()
        # given an uninitialised _weight, nn.Embedding skips its own init (BertEncoder initialises once)
        self.word_embeddings = nn.Embedding(s.vocab, s.width, padding_idx=s.pad,
                                            _weight=torch.empty(s.vocab, s.width))
        self.position_embeddings = nn.Embedding(s.positions, s.width, padding_idx=s.pad if s.roberta else None,
                                                _weight=torch.empty(s.positions, s.width))
        self.token_type_embeddings = nn.Embedding(s.types, s.width, _weight=torch.empty(s.types, s.width))
        self.LayerNorm = nn.LayerNorm(s.width, eps=s.eps)
        self.dropout = nn.Dropout(s.dropout)
        self.roberta, self.pad = s.roberta, s.pad

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        if self.roberta:  # positions count the real tokens, starting after the pad index; pads sit at the pad index
            real = (input_ids != self.pad).int()
            positions = torch.cumsum(real, dim=1) * real + self.pad
        else:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        types = self.token_type_embeddings.weight[0] if token_type_ids is None else \
            self.token_type_embeddings(token_type_ids)
        x = self.word_embeddings(input_ids) + types + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class _SelfAttention(nn.Module):
    def __init__(self, s: _Settings):
        super().__init__()
        self.query = nn.Linear(s.width, s.width)
        self.key = nn.Linear(s.width, s.width)
        self.value = nn.Linear(s.width, s.width)
        self.heads, self.dropout = s.heads, s.attention_dropout


class _Output(nn.Module):
    """dense -> dropout -> LayerNorm(+ residual): the ``attention.output`` and ``output`` blocks."""

    def __init__(self, s: _Settings, inner: int):
        super().__init__()
        self.dense = nn.Linear(inner, s.width)
        self.LayerNorm = nn.LayerNorm(s.width, eps=s.eps)
        self.dropout = nn.Dropout(s.dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout.p > 0:
            return self.LayerNorm(self.dropout(self.dense(x)) + residual)
        return self.LayerNorm(linear(self.dense, x, residual=residual))  # the add fused where fused.linear can


class _Attention(nn.Module):
    def __init__(self, s: _Settings):
        super().__init__()
        self.self = _SelfAttention(s)  # transformers' name for the q/k/v block
        self.output = _Output(s, s.width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        qkv = self.self
        batch, length, width = x.shape
        heads = qkv.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, heads, width // heads).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            split(linear(qkv.query, x)), split(linear(qkv.key, x)), split(linear(qkv.value, x)), attn_mask=mask,
            dropout_p=qkv.dropout if self.training else 0.0)
        return self.output(context.transpose(1, 2).reshape(batch, length, width), x)


class _Intermediate(nn.Module):
    def __init__(self, s: _Settings):
        super().__init__()
        self.dense = nn.Linear(s.width, s.inner)
        self.activation = s.activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation is F.gelu:
            return linear(self.dense, x, gelu=True)
        return self.activation(linear(self.dense, x))


class _Layer(nn.Module):
    def __init__(self, s: _Settings):
        super().__init__()
        self.attention = _Attention(s)
        self.intermediate = _Intermediate(s)
        self.output = _Output(s, s.inner)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class _Encoder(nn.Module):
    def __init__(self, s: _Settings):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(s) for _ in range(s.layers))


class _Pooler(nn.Module):
    def __init__(self, s: _Settings):
        super().__init__()
        self.dense = nn.Linear(s.width, s.width)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class BertEncoder(nn.Module):
    """``forward(input_ids, attention_mask=None, token_type_ids=None) -> EncoderOutput(last_hidden_state,
    pooler_output)``, as transformers' ``BertModel``/``RobertaModel`` (with their pooling layer) return them."""

    def __init__(self, hf_config: dict):
        super().__init__()
        if not supports(hf_config):
            raise ValueError(f"clapkit's BERT encoder does not cover this config: {hf_config}")
        s = _Settings(hf_config)
        self.embeddings = _Embeddings(s)
        self.encoder = _Encoder(s)
        self.pooler = _Pooler(s)
        self._init_weights(s.init_std)

    @torch.no_grad()
    def _init_weights(self, std: float) -> None:
        """transformers' initialisation: normal(0, initializer_range) weights, zero biases and padding rows. Nothing
        to do for parameters on the meta device (``clapkit.models.empty``: the weights come from a checkpoint)."""
        if self.embeddings.word_embeddings.weight.is_meta:
            return
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, std)
            if isinstance(module, nn.Linear):
                module.bias.zero_()
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> EncoderOutput:
        x = self.embeddings(input_ids, token_type_ids)
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            # additive mask over the keys, broadcast over heads and queries
            mask = torch.zeros(attention_mask.shape, dtype=x.dtype, device=x.device)
            mask = mask.masked_fill(attention_mask == 0, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return EncoderOutput(last_hidden_state=x, pooler_output=self.pooler(x))
