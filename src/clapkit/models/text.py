"""Text towers: a transformers encoder built from a local config (never fetched) plus a pooling rule.

Pooling rules, as each checkpoint family does it:
  pooler      ``pooler_output`` (dense + tanh over the first token): LAION RoBERTa and BERT
  cls         hidden state of the first token: MS-CLAP 2022 BERT
  last_token  hidden state at index (number of tokens != pad id) - 1: MS-CLAP 2023 GPT-2
  eot         CLIP text model's pooled output (the end-of-text token): LAION's CLIP-text ("transformer") tower
  mean        attention-masked mean of the hidden states: sentence-transformers MiniLM
"""

from __future__ import annotations

import torch
from torch import nn

from clapkit.config import TextTowerConfig
from clapkit.errors import ConfigError

POOLINGS = ("pooler", "cls", "last_token", "eot", "mean")


def build_hf_text_model(hf_config: dict) -> nn.Module:
    """Instantiate a transformers model from a config dict (random init; weights come from a checkpoint)."""
    from transformers import AutoConfig, CLIPTextConfig, CLIPTextModel

    config = dict(hf_config)
    model_type = config.pop("model_type", None)
    if model_type is None:
        raise ConfigError(
            "text tower hf_config needs a 'model_type' (e.g. 'roberta', 'bert', 'gpt2', 'clip_text_model')"
        )
    if model_type == "clip_text_model":
        return CLIPTextModel(CLIPTextConfig(**config))
    from transformers import AutoModel

    try:
        hf = AutoConfig.for_model(model_type, **config)
    except ValueError as exc:
        raise ConfigError(f"text tower: transformers does not know model_type {model_type!r} ({exc})") from None
    kwargs = {}
    if model_type in ("roberta", "bert"):
        kwargs["add_pooling_layer"] = True
    return AutoModel.from_config(hf, attn_implementation="sdpa", **kwargs)


class TextTower(nn.Module):
    """Wraps a transformers encoder as ``self.model``; ``forward`` returns the pooled (B, width) features."""

    def __init__(self, config: TextTowerConfig):
        super().__init__()
        if config.pooling not in POOLINGS:
            raise ConfigError(f"unknown text pooling {config.pooling!r}; known: {POOLINGS}")
        self.config = config
        self.model = build_hf_text_model(config.hf_config)
        self.pad_token_id = int(config.hf_config.get("pad_token_id") or 0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.config.hf_config.get("model_type") == "bert":
            kwargs["token_type_ids"] = torch.zeros_like(input_ids)
        out = self.model(**kwargs)
        pooling = self.config.pooling
        if pooling in ("pooler", "eot"):
            return out.pooler_output
        hidden = out.last_hidden_state
        if pooling == "cls":
            return hidden[:, 0]
        if pooling == "last_token":
            last = (input_ids != self.pad_token_id).sum(-1) - 1
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
