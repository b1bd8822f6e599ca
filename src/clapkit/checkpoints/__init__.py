"""Checkpoint families: tell a file's family from its contents and convert it to clapkit's ``ClapModule`` keys.

Our own format is a directory with ``config.json`` (a ``ModelConfig``) and ``model.safetensors`` (ClapModule keys),
or a single ``.safetensors`` file whose metadata holds the config under ``clapkit_config``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from clapkit.checkpoints import hf, laion, msclap
from clapkit.checkpoints.io import extract_state_dict, read_checkpoint, save_safetensors
from clapkit.config import ModelConfig
from clapkit.errors import CheckpointError

FAMILIES_HELP = (
    "clapkit knows these checkpoint families: LAION-CLAP (.pt with 'state_dict', keys audio_branch.*/text_branch.*, "
    "e.g. 630k-best.pt, 630k-audioset-fusion-best.pt, music_*.pt), MS-CLAP (CLAP_weights_2022.pth / "
    "CLAP_weights_2023.pth: {'model': ...} with keys audio_encoder.*/caption_encoder.*/logit_scale), Hugging Face CLAP "
    "(a directory with config.json of model_type 'clap' + model.safetensors or pytorch_model.bin, e.g. "
    "laion/clap-htsat-unfused, laion/larger_clap_general; or its weights file, keys audio_model.*/text_model.*), "
    "and clapkit's own (a directory with config.json + model.safetensors, or a .safetensors file saved by "
    "model.save())"
)


def _describe(state_dict: dict[str, torch.Tensor]) -> str:
    prefixes = Counter(k.split(".")[0] for k in state_dict)
    return f"{len(state_dict)} tensors with top-level prefixes {dict(prefixes.most_common(8))}"


def load_weights(
    path: str | Path, config: ModelConfig | None = None, *, trust_pickle: bool = False
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Read ``path`` and return (config, state dict in ClapModule keys). ``config`` overrides the detected one."""
    path = Path(path)
    if path.is_dir():
        return _load_directory(path, config)
    if path.suffix == ".safetensors" and path.exists():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        if "clapkit_config" in meta:
            own = ModelConfig.from_dict(json.loads(meta["clapkit_config"]))
            return config or own, read_checkpoint(path)
    state_dict = extract_state_dict(read_checkpoint(path, trust_pickle=trust_pickle), str(path))
    if laion.is_laion(state_dict):
        return config or laion.infer_config(state_dict, path.name), laion.to_clapkit(state_dict)
    if msclap.is_msclap(state_dict):
        return config or msclap.infer_config(state_dict, path.name), msclap.to_clapkit(state_dict)
    if msclap.is_clapcap(state_dict):
        raise msclap.clapcap_error(str(path))
    if hf.is_hf(state_dict):
        detected = config or hf.config_for_file(path, state_dict)
        return detected, hf.to_clapkit(state_dict, detected)
    if any(k.startswith("audio_tower.") for k in state_dict):
        if config is None:
            raise CheckpointError(
                f"{path}: clapkit-layout weights without a config; pass the model name, e.g. "
                f"clapkit.load('laion-htsat-tiny', weights='{path}'), or keep config.json beside the weights"
            )
        return config, state_dict
    raise CheckpointError(f"{path}: unknown checkpoint family ({_describe(state_dict)}). {FAMILIES_HELP}")


def _load_directory(path: Path, config: ModelConfig | None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    cfg_path = path / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{path}: directory has no config.json. {FAMILIES_HELP}")
    raw = json.loads(cfg_path.read_text())
    if "frontend" in raw and "audio" in raw:
        weights = path / "model.safetensors"
        if not weights.exists():
            raise CheckpointError(f"{path}: config.json found but model.safetensors is missing")
        return config or ModelConfig.from_json(cfg_path), read_checkpoint(weights)
    if hf.is_hf_config(raw):
        return hf.load_directory(path, raw, config)
    raise CheckpointError(f"{path}: config.json is not a clapkit config (keys {sorted(raw)[:8]}). {FAMILIES_HELP}")


def save_clapkit(directory: str | Path, config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write ``directory/config.json`` + ``directory/model.safetensors`` (atomically, weights first)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_safetensors(
        state_dict, directory / "model.safetensors", metadata={"clapkit_config": json.dumps(config.to_dict())}
    )
    config.to_json(directory / "config.json")
    return directory
