"""Build the model a training run starts from: a registry config (random weights), a checkpoint to fine-tune, and/or a
pretrained text tower from a local transformers directory (read by ``clapkit.checkpoints.pretrained``); freezing and
the AdamW parameter groups.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from clapkit.checkpoints import load_state_dict_strict, load_weights
from clapkit.checkpoints.pretrained import resolve_local_path, text_tower_from_pretrained
from clapkit.config import ModelConfig
from clapkit.errors import CheckpointError, ConfigError
from clapkit.models.clap import ClapNetwork
from clapkit.registry import get_config
from clapkit.train.config import ModelSetupConfig

log = logging.getLogger(__name__)

__all__ = ["build_model", "count_parameters", "describe", "freeze_towers", "merge_overrides", "parameter_groups",
           "resolve_local_path", "set_train_mode", "text_tower_from_pretrained"]


def merge_overrides(config: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """``config`` with ``overrides`` merged in depth (``{"audio": {"depths": [1, 1, 1, 1]}}``)."""
    if not overrides:
        return config
    data = config.to_dict()
    _deep_merge(data, copy.deepcopy(overrides), "model.overrides")
    return ModelConfig.from_dict(data)


def _deep_merge(base: dict, changes: dict, where: str) -> None:
    for key, value in changes.items():
        if key not in base:
            raise ConfigError(f"{where}: unknown key {key!r}; known: {sorted(base)}")
        if isinstance(value, dict) and isinstance(base[key], dict) and key != "hf_config":
            _deep_merge(base[key], value, f"{where}.{key}")
        elif isinstance(value, dict) and isinstance(base[key], dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value


def build_model(setup: ModelSetupConfig) -> tuple[ModelConfig, ClapNetwork]:
    """The model to train: ``name`` (random init) or ``checkpoint`` (+ ``name`` to choose the architecture),
    ``overrides`` merged, and the text tower from ``text_pretrained`` if given. Weights are checked strictly except
    where the text tower was replaced."""
    state_dict = None
    if setup.checkpoint:
        given = get_config(setup.name) if setup.name else None
        config, state_dict = load_weights(setup.checkpoint, given, trust_pickle=setup.trust_pickle)
    elif setup.name:
        config = get_config(setup.name)
    else:
        raise ConfigError("model: give a registry name (model.name) or a checkpoint to fine-tune (model.checkpoint)")
    config = merge_overrides(config, setup.overrides)
    text_weights = None
    if setup.text_pretrained:
        text_config, text_weights = text_tower_from_pretrained(setup.text_pretrained)
        if text_config != config.text:
            config = config.replace(text=text_config, name=f"{config.name}-{text_config.kind}")
    module = ClapNetwork(config)
    if state_dict is not None:
        _load_checkpoint_weights(module, state_dict, setup.checkpoint, replaced_text=text_weights is not None)
    if text_weights is not None:
        _load_text_weights(module, text_weights, setup.text_pretrained)
    return config, module


def _load_checkpoint_weights(module: ClapNetwork, state_dict: dict, source: str, replaced_text: bool) -> None:
    if not replaced_text:
        load_state_dict_strict(module, state_dict, source)
        return
    own = module.state_dict()
    kept = {k: v for k, v in state_dict.items() if not k.startswith("text_tower.")
            and k in own and tuple(own[k].shape) == tuple(v.shape)}
    module.load_state_dict(kept, strict=False)
    fresh = sorted(set(own) - set(kept) - {k for k in own if k.startswith("text_tower.")})
    if fresh:
        log.info("fine-tuning %s with a new text tower: %d tensors start fresh (%s)", source, len(fresh),
                 ", ".join(fresh[:4]))


def _load_text_weights(module: ClapNetwork, weights: dict[str, torch.Tensor], source: str) -> None:
    result = module.text_tower.load_state_dict(weights, strict=False)
    unused_pooler = module.text_tower.config.pooling not in ("pooler", "eot")
    missing = [k for k in result.missing_keys if not (unused_pooler and ".pooler." in f".{k}")]
    unexpected = [k for k in result.unexpected_keys if not k.endswith("position_ids")]  # a buffer in older files
    if missing or unexpected:
        raise CheckpointError(f"{source}: text weights do not fit the tower; missing {missing[:6]}, unexpected "
                              f"{unexpected[:6]}")


def add_logit_bias(config: ModelConfig, module: ClapNetwork, init_scale: float = 10.0,
                   init_bias: float = -10.0) -> ModelConfig:
    """Give ``module`` SigLIP's learnable ``logit_bias`` (at ``init_bias``) and reset its logit scales to
    ``log(init_scale)``, for training with the sigmoid loss; a module that has a bias already keeps both. Returns the
    config that describes the module now (``logit_bias=True``), which checkpoints then record."""
    if config.logit_bias:
        return config
    import math

    config = config.replace(logit_bias=True)
    module.config = config
    module.logit_bias = nn.Parameter(torch.tensor(float(init_bias)))
    with torch.no_grad():
        for name in ("logit_scale_a", "logit_scale_t", "logit_scale"):
            if hasattr(module, name):
                getattr(module, name).fill_(math.log(init_scale))
    return config


def freeze_towers(module: ClapNetwork, freeze_audio: bool, freeze_text: bool) -> None:
    """Stop gradients into the frozen towers (their projections still train)."""
    for tower, frozen in ((module.audio_tower, freeze_audio), (module.text_tower, freeze_text)):
        for parameter in tower.parameters():
            parameter.requires_grad_(not frozen)


def set_train_mode(module: ClapNetwork, freeze_audio: bool, freeze_text: bool) -> None:
    """Training mode, except frozen towers stay in eval mode (fixed batch-norm statistics, no dropout)."""
    module.train()
    if freeze_audio:
        module.audio_tower.eval()
    if freeze_text:
        module.text_tower.eval()


def parameter_groups(module: nn.Module, weight_decay: float, lr: float | None = None,
                     tower_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """AdamW groups: matrices and convolution kernels decay; biases, norm gains and logit scales do not (LAION).
    With ``lr`` and ``tower_lr_scale != 1`` the audio and text towers' parameters get ``lr * tower_lr_scale``."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        decays = not (parameter.ndim < 2 or "logit_scale" in name)
        top = name.removeprefix("module.").removeprefix("_fsdp_wrapped_module.").split(".")[0]
        in_tower = tower_lr_scale != 1.0 and top in ("audio_tower", "text_tower")
        groups.setdefault((decays, in_tower), []).append(parameter)
    result = []
    for (decays, in_tower), parameters in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1])):
        group: dict[str, Any] = {"params": parameters, "weight_decay": weight_decay if decays else 0.0}
        if in_tower and lr is not None:
            group["lr"] = lr * tower_lr_scale
        result.append(group)
    return result


def count_parameters(module: nn.Module) -> dict[str, int]:
    return {
        "total": sum(p.numel() for p in module.parameters()),
        "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }


def describe(config: ModelConfig) -> str:
    audio, text = config.audio, config.text
    return (f"{config.name}: {audio.kind}-{audio.variant}{' fusion' if audio.enable_fusion else ''} "
            f"({config.frontend.sample_rate} Hz, {config.frontend.clip_seconds:g} s) + {text.kind} text "
            f"({text.pooling} pooling), joint {config.joint_dim}")

