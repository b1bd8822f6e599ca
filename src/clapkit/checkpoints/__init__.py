"""Checkpoint families: tell a file's family from its contents and convert it to clapkit's ``ClapNetwork`` keys.

The families are records (``families.py``: one ``CheckpointFamily`` per family, in one tuple ``FAMILIES``);
``load_weights`` only asks them in order. clapkit's own format (``native.py``) is a directory with ``config.json``
(a ``ModelConfig``) and ``model.safetensors``, or a single ``.safetensors`` file whose metadata holds the config.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from clapkit.checkpoints.families import FAMILIES, FAMILIES_HELP, WRITABLE, CheckpointFamily, family_named
from clapkit.checkpoints.io import extract_state_dict, load_state_dict_strict, read_checkpoint, read_json
from clapkit.checkpoints.native import save_clapkit
from clapkit.config import ModelConfig
from clapkit.errors import CheckpointError, ConfigError

__all__ = [
    "FAMILIES",
    "FAMILIES_HELP",
    "WRITABLE",
    "CheckpointFamily",
    "family_named",
    "load_state_dict_strict",
    "load_weights",
    "save_clapkit",
]


def _describe(state_dict: dict[str, torch.Tensor]) -> str:
    prefixes = Counter(k.split(".")[0] for k in state_dict)
    return f"{len(state_dict)} tensors with top-level prefixes {dict(prefixes.most_common(8))}"


def load_weights(
    path: str | Path, config: ModelConfig | None = None, *, trust_pickle: bool = False
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Read ``path`` and return (config, state dict in ClapNetwork keys). ``config`` overrides the detected one."""
    path = Path(path)
    if path.is_dir():
        return _load_directory(path, config)
    state_dict = extract_state_dict(read_checkpoint(path, trust_pickle=trust_pickle), str(path))
    for family in FAMILIES:
        if family.detect(state_dict):
            return family.read(state_dict, path, config)
    raise CheckpointError(f"{path}: unknown checkpoint family ({_describe(state_dict)}). {FAMILIES_HELP}")


def _load_directory(path: Path, config: ModelConfig | None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    cfg_path = path / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{path}: directory has no config.json. {FAMILIES_HELP}")
    raw = read_json(cfg_path)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{cfg_path}: a JSON {type(raw).__name__}, not a config object. {FAMILIES_HELP}")
    for family in FAMILIES:
        if family.detect_directory is not None and family.load_directory is not None and family.detect_directory(raw):
            try:
                return family.load_directory(path, raw, config)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # settings missing or of the wrong type
                if isinstance(exc, ConfigError):
                    raise CheckpointError(f"{cfg_path}: {exc}") from None
                raise CheckpointError(
                    f"{cfg_path}: a {family.title} config.json with missing or malformed settings "
                    f"({type(exc).__name__}: {exc}); copy the checkpoint directory again"
                ) from None
    raise CheckpointError(f"{path}: config.json is not a clapkit config (keys {sorted(raw)[:8]}). {FAMILIES_HELP}")
