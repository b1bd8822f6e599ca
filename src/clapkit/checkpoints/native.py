"""clapkit's own checkpoint format: what ``model.save()``, ``clapkit convert --to clapkit`` and training write.

A directory with ``config.json`` (a ``ModelConfig``) and ``model.safetensors`` (``ClapNetwork`` keys), or a single
``.safetensors`` file whose metadata holds the config as JSON under ``clapkit_config`` (every file clapkit writes has
it, so a lone weights file still knows its architecture).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from clapkit.checkpoints.io import damaged_safetensors, read_checkpoint, save_safetensors
from clapkit.config import ModelConfig
from clapkit.errors import CheckpointError, ConfigError, os_reason

CONFIG_METADATA = "clapkit_config"


def is_native(state_dict: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("audio_tower.") for k in state_dict)


def is_native_config(raw: dict[str, Any]) -> bool:
    """A ``config.json`` holding a clapkit ``ModelConfig`` (rather than a transformers config)."""
    return "frontend" in raw and "audio" in raw


def embedded_config(path: Path) -> ModelConfig | None:
    """The config stored in a ``.safetensors`` file's metadata by clapkit, if any."""
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except OSError as exc:
        raise CheckpointError(f"{path}: {os_reason(exc)}") from None
    except Exception as exc:  # SafetensorError: a truncated or random file
        raise damaged_safetensors(path, exc) from None
    return config_from_text(path, meta[CONFIG_METADATA]) if CONFIG_METADATA in meta else None


def config_from_text(source: Path, text: str) -> ModelConfig:
    """The clapkit config stored as JSON in a safetensors file's metadata or a directory's config.json."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{source}: its clapkit config is not valid JSON ({exc}); a damaged file? Save or copy it again"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: its clapkit config is a JSON {type(data).__name__}, not an object")
    try:
        return ModelConfig.from_dict(data)
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: its clapkit config does not describe a model ({exc})") from None


def infer_config(state_dict: dict[str, torch.Tensor], path: Path) -> ModelConfig:
    """A clapkit weights file's config: from its metadata; clapkit keys alone do not tell the architecture."""
    config = embedded_config(path)
    if config is None:
        raise CheckpointError(
            f"{path}: clapkit-layout weights without a config; pass the model name, e.g. "
            f"clapkit.load('laion-htsat-tiny', weights='{path}'), or keep config.json beside the weights"
        )
    return config


def to_clapkit(state_dict: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    return state_dict


def load_directory(
    directory: Path, raw: dict[str, Any], config: ModelConfig | None = None
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, state dict) of a clapkit directory whose ``config.json`` is ``raw``."""
    weights = directory / "model.safetensors"
    if not weights.exists():
        raise CheckpointError(f"{directory}: config.json found but model.safetensors is missing")
    return config or config_from_text(directory / "config.json", json.dumps(raw)), read_checkpoint(weights)


def save_clapkit(directory: str | Path, config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write ``directory/config.json`` + ``directory/model.safetensors`` (atomically, weights first)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_safetensors(
        state_dict, directory / "model.safetensors", metadata={CONFIG_METADATA: json.dumps(config.to_dict())}
    )
    config.to_json(directory / "config.json")
    return directory
