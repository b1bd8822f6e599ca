"""clapkit: CLAP models, checkpoints and inference."""

from clapkit.config import AudioFrontendConfig, AudioTowerConfig, HeadConfig, ModelConfig, TextTowerConfig
from clapkit.errors import AudioError, CheckpointError, ClapkitError, ConfigError, TokenizerError
from clapkit.inference import ClapModel, ClapPipeline
from clapkit.inputs import discover_inputs
from clapkit.jobs import embed_files
from clapkit.loading import load
from clapkit.models.clap import ClapNetwork
from clapkit.registry import get_config, list_models, register_model
from clapkit.store import EmbeddingStore
from clapkit.version import __version__

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
