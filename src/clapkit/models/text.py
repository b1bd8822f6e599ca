"""Text towers: a transformers encoder built from a local config (never fetched) plus a pooling rule.

Pooling rules, as each checkpoint family does it:
  pooler      ``pooler_output`` (dense + tanh over the first token): LAION RoBERTa and BERT
  cls         hidden state of the first token: MS-CLAP 2022 BERT
  last_token  hidden state at index (number of tokens != pad id) - 1: MS-CLAP 2023 GPT-2
  eot         CLIP text model's pooled output (the end-of-text token): LAION's CLIP-text ("transformer") tower
  mean        attention-masked mean of the hidden states: sentence-transformers MiniLM
  mean_padded mean over ``context_length`` positions, pad positions INCLUDED (the input is padded to
              ``context_length`` with the pad id first, as the references' tokenizers pad to 77): laion_clap's BART
              (the encoder's last hidden state) and ReCLAP's T5 (``T5EncoderModel``)

BART keeps only its encoder (``shared`` + ``encoder``, keys as in ``BartModel``): laion_clap runs the whole
``BartModel`` but reads ``encoder_last_hidden_state``, which the decoder never touches. Tied word embeddings
(``shared.weight`` = ``encoder.embed_tokens.weight`` in BART and T5) appear once in the state dict, as ``shared``.
"""

from __future__ import annotations

import torch
from torch import nn

from clapkit.config import TextTowerConfig
from clapkit.errors import ConfigError

POOLINGS = ("pooler", "cls", "last_token", "eot", "mean", "mean_padded")


class BartEncoderOnly(nn.Module):
    """BART's word embedding and encoder (``BartModel`` without its decoder); ``forward`` is the encoder's."""

    def __init__(self, full: nn.Module):
        super().__init__()
        self.config = full.config
        self.shared = full.shared
        self.encoder = full.encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask)


def build_hf_text_model(hf_config: dict) -> nn.Module:
    """Instantiate the encoder of a config dict (random init; weights come from a checkpoint): clapkit's own BERT /
    RoBERTa encoder where it covers the config (same parameter names, no transformers import), else transformers'."""
    from clapkit.models import bert

    if bert.supports(hf_config):
        return bert.BertEncoder(hf_config)
    from transformers import AutoConfig, CLIPTextConfig, CLIPTextModel

    config = dict(hf_config)
    model_type = config.pop("model_type", None)
    if model_type is None:
        raise ConfigError(
            "text tower hf_config needs a 'model_type' (e.g. 'roberta', 'bert', 'gpt2', 'clip_text_model')"
        )
    if model_type == "clip_text_model":
        return CLIPTextModel(CLIPTextConfig(**config))
    if model_type == "t5":
        from transformers import T5Config, T5EncoderModel

        return T5EncoderModel(T5Config(**config))
    from transformers import AutoModel

    try:
        hf = AutoConfig.for_model(model_type, **config)
    except ValueError as exc:
        raise ConfigError(f"text tower: transformers does not know model_type {model_type!r} ({exc})") from None
    kwargs = {}
    if model_type in ("roberta", "bert"):
        kwargs["add_pooling_layer"] = True
    model = AutoModel.from_config(hf, attn_implementation="sdpa", **kwargs)
    return BartEncoderOnly(model) if model_type == "bart" else model


def tied_aliases(model: nn.Module, prefix: str = "") -> dict[str, str]:
    """``{alias: canonical}`` for parameters registered under several names (tied embeddings); the first name wins."""
    first: dict[int, str] = {}
    aliases = {}
    for name, parameter in model.named_parameters(prefix=prefix.rstrip("."), remove_duplicate=False):
        if id(parameter) in first:
            aliases[name] = first[id(parameter)]
        else:
            first[id(parameter)] = name
    return aliases


class TextTower(nn.Module):
    """Wraps a transformers encoder as ``self.model``; ``forward`` returns the pooled (B, width) features."""

    def __init__(self, config: TextTowerConfig):
        super().__init__()
        if config.pooling not in POOLINGS:
            raise ConfigError(f"unknown text pooling {config.pooling!r}; known: {POOLINGS}")
        self.config = config
        self.model = build_hf_text_model(config.hf_config)
        self.pad_token_id = int(config.hf_config.get("pad_token_id") or 0)
        self.aliases = tied_aliases(self.model, "model")
        if self.aliases:
            self._register_state_dict_hook(_drop_aliases)
            self.register_load_state_dict_pre_hook(_fill_aliases)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features (B, width). Without autograd, right-padded batches run as length buckets (see
        ``length_buckets``): the same features as one padded batch (padding is masked) for a fraction of the work.
        With autograd the batch runs as given (one call of the transformer per step, as DDP/FSDP expect)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.config.pooling == "mean_padded":
            return self._pooled(*self._pad_to_context(input_ids, attention_mask))
        if torch.is_grad_enabled():
            return self._pooled(input_ids, attention_mask)
        lengths = attention_mask.sum(-1)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        right_padded = torch.equal(attention_mask != 0, positions[None, :] < lengths[:, None])
        buckets = length_buckets(lengths.tolist()) if right_padded else None
        if buckets is None or len(buckets) == 1 and max(lengths.tolist()) == input_ids.shape[1]:
            return self._pooled(input_ids, attention_mask)
        parts, order = [], []
        for rows, length in buckets:
            index = torch.tensor(rows, device=input_ids.device)
            parts.append(self._pooled(input_ids[index, :length], attention_mask[index, :length]))
            order.extend(rows)
        inverse = torch.argsort(torch.tensor(order, device=input_ids.device))
        return torch.cat(parts).index_select(0, inverse)

    def _pad_to_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        missing = self.config.context_length - input_ids.shape[1]
        if missing <= 0:
            return input_ids, attention_mask
        pad = input_ids.new_full((input_ids.shape[0], missing), self.pad_token_id)
        return torch.cat([input_ids, pad], 1), torch.cat([attention_mask, torch.zeros_like(pad)], 1)

    def _pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
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
        if pooling == "mean_padded":
            return hidden.mean(1)
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def _drop_aliases(module: TextTower, state_dict, prefix: str, local_metadata) -> None:
    for alias in module.aliases:
        state_dict.pop(prefix + alias, None)


def _fill_aliases(module: TextTower, state_dict, prefix: str, *args) -> None:
    for alias, canonical in module.aliases.items():
        if prefix + canonical in state_dict:
            state_dict[prefix + alias] = state_dict[prefix + canonical]


BUCKET_OVERHEAD_TOKENS = 48  # the fixed cost of one more forward call, in padded tokens (measured on 2 CPU cores)


def length_buckets(lengths: list[int], overhead: int = BUCKET_OVERHEAD_TOKENS) -> list[tuple[list[int], int]]:
    """Split a batch into runs of similar length: ``[(row indices, padded length)]``, minimising the padded tokens
    ``sum(rows * length)`` plus ``overhead`` per bucket (an exact dynamic programme over the rows sorted by length)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sorted_lengths = [max(1, lengths[i]) for i in order]
    count = len(order)
    best, cut = [0.0] + [float("inf")] * count, [0] * (count + 1)
    for end in range(1, count + 1):  # bucket = sorted rows [start, end), padded to sorted_lengths[end - 1]
        for start in range(end):
            cost = best[start] + (end - start) * sorted_lengths[end - 1] + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, start
    buckets, end = [], count
    while end > 0:
        start = cut[end]
        buckets.append(([order[i] for i in range(start, end)], sorted_lengths[end - 1]))
        end = start
    return buckets[::-1]
