"""clapkit: CLAP models, checkpoints and inference."""

from clapkit.config import AudioFrontendConfig, AudioTowerConfig, HeadConfig, ModelConfig, TextTowerConfig
from clapkit.errors import AudioError, CheckpointError, ClapkitError, ConfigError, TokenizerError
from clapkit.inference import ClapModel
from clapkit.loading import load
from clapkit.registry import get_config, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "AudioFrontendConfig",
    "AudioTowerConfig",
    "CheckpointError",
    "ClapModel",
    "ClapkitError",
    "ConfigError",
    "HeadConfig",
    "ModelConfig",
    "TextTowerConfig",
    "__version__",
    "get_config",
    "list_models",
    "load",
    "register_model",
]
