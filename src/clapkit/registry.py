"""Named model configs: ``src/clapkit/model_configs/<name>.json`` plus any registered at run time."""

from __future__ import annotations

from importlib import resources

from clapkit.config import ModelConfig
from clapkit.errors import ConfigError

_REGISTERED: dict[str, ModelConfig] = {}


def _packaged_names() -> list[str]:
    folder = resources.files("clapkit") / "model_configs"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def list_models() -> list[str]:
    """Names accepted by ``clapkit.load(name)`` and ``get_config(name)``."""
    return sorted(set(_packaged_names()) | set(_REGISTERED))


def get_config(name: str) -> ModelConfig:
    if name in _REGISTERED:
        return _REGISTERED[name]
    path = resources.files("clapkit") / "model_configs" / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"unknown model name {name!r}; known names: {', '.join(list_models())}")
    return ModelConfig.from_json(str(path))


def register_model(config: ModelConfig) -> None:
    """Make ``config`` loadable by name for the rest of this process."""
    _REGISTERED[config.name] = config
