"""clapkit: CLAP models, checkpoints and inference.

The public names below are imported on first use (PEP 562), so ``import clapkit`` (and the ``clapkit`` command's
``--help``) does not import torch; ``clapkit.load`` imports what a model needs when it is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from clapkit.version import __version__

_EXPORTS = {
    "AudioFrontendConfig": "clapkit.config",
    "AudioTowerConfig": "clapkit.config",
    "HeadConfig": "clapkit.config",
    "ModelConfig": "clapkit.config",
    "TextTowerConfig": "clapkit.config",
    "AudioError": "clapkit.errors",
    "CheckpointError": "clapkit.errors",
    "ClapkitError": "clapkit.errors",
    "ConfigError": "clapkit.errors",
    "TokenizerError": "clapkit.errors",
    "ClapModel": "clapkit.inference",
    "ClapPipeline": "clapkit.inference",
    "ClapNetwork": "clapkit.models.clap",
    "discover_inputs": "clapkit.inputs",
    "embed_files": "clapkit.jobs",
    "load": "clapkit.loading",
    "get_config": "clapkit.registry",
    "list_models": "clapkit.registry",
    "register_model": "clapkit.registry",
    "EmbeddingStore": "clapkit.store",
}

__all__ = [
    "AudioError",
    "AudioFrontendConfig",
    "AudioTowerConfig",
    "CheckpointError",
    "ClapModel",
    "ClapNetwork",
    "ClapPipeline",
    "ClapkitError",
    "ConfigError",
    "EmbeddingStore",
    "HeadConfig",
    "ModelConfig",
    "TextTowerConfig",
    "TokenizerError",
    "__version__",
    "discover_inputs",
    "embed_files",
    "get_config",
    "list_models",
    "load",
    "register_model",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names resolve through __getattr__
    from clapkit.config import AudioFrontendConfig, AudioTowerConfig, HeadConfig, ModelConfig, TextTowerConfig
    from clapkit.errors import AudioError, CheckpointError, ClapkitError, ConfigError, TokenizerError
    from clapkit.inference import ClapModel, ClapPipeline
    from clapkit.inputs import discover_inputs
    from clapkit.jobs import embed_files
    from clapkit.loading import load
    from clapkit.models.clap import ClapNetwork
    from clapkit.registry import get_config, list_models, register_model
    from clapkit.store import EmbeddingStore


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clapkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
