"""Checkpoint families as records: one ``CheckpointFamily`` per family, and ``FAMILIES``, the one tuple of them.

``FAMILIES`` alone drives detection (``load_weights`` asks each record in order: the first whose ``detect`` accepts
a file's state dict, or whose ``detect_directory`` accepts a directory's ``config.json``, reads it), the help text of
every "unknown checkpoint" error (``FAMILIES_HELP``) and the formats ``clapkit convert --to`` writes (``WRITABLE``:
the records with a ``save``). Adding a family: write its module (detect, infer config, to/from clapkit keys, save),
add its record here and put it in ``FAMILIES`` before any family whose ``detect`` would also accept its files
(docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clapkit.checkpoints import clapcap, hf, laion, laion_export, msclap, native
from clapkit.config import ModelConfig
from clapkit.errors import CheckpointError

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class CheckpointFamily:
    """One checkpoint family.

    - ``name``: short id, also the ``clapkit convert --to`` value; ``title``: the family's own name; ``files``: what
      its files look like, for error messages (``FAMILIES_HELP``).
    - ``detect(state_dict) -> bool``: the family's keys, told apart from every family before it in ``FAMILIES``.
    - ``infer_config(state_dict, path) -> ModelConfig``: the architecture read off the weights (and the files beside
      them).
    - ``to_clapkit(state_dict, config)`` / ``from_clapkit(state_dict, config)``: the family's keys to and from
      ``ClapNetwork`` keys, weights unchanged.
    - ``save(destination, config, state_dict) -> Path``: write a file or directory of this family (``None``: clapkit
      only reads it).
    - ``detect_directory(raw) -> bool`` / ``load_directory(directory, raw, config)``: for families that come as a
      directory whose ``config.json`` is ``raw``.
    - ``refuse(source) -> CheckpointError``: for files clapkit recognises but does not load as a CLAP model, the
      error naming the file and the reason (so the user learns what the file is instead of "unknown family").
    """

    name: str
    title: str
    files: str
    detect: Callable[[StateDict], bool]
    infer_config: Callable[[StateDict, Path], ModelConfig] | None = None
    to_clapkit: Callable[[StateDict, ModelConfig], StateDict] | None = None
    from_clapkit: Callable[[StateDict, ModelConfig], StateDict] | None = None
    save: Callable[[str | Path, ModelConfig, StateDict], Path] | None = None
    detect_directory: Callable[[dict[str, Any]], bool] | None = None
    load_directory: Callable[[Path, dict[str, Any], ModelConfig | None], tuple[ModelConfig, StateDict]] | None = None
    refuse: Callable[[str], CheckpointError] | None = None

    def read(
        self, state_dict: StateDict, path: Path, config: ModelConfig | None = None
    ) -> tuple[ModelConfig, StateDict]:
        """(config, ClapNetwork state dict) of a state dict this family detected; ``config`` overrides the inferred."""
        if self.refuse is not None:
            raise self.refuse(str(path))
        if self.infer_config is None or self.to_clapkit is None:
            raise CheckpointError(f"{path}: clapkit cannot load {self.title} files")
        config = config or self.infer_config(state_dict, path)
        return config, self.to_clapkit(state_dict, config)


RECLAP = CheckpointFamily(
    "reclap", "ReCLAP", "LAION-CLAP's .pt layout with a (Flan-)T5 encoder in text_branch (shared.weight, "
    "encoder.block.N.layer.M.*), e.g. the ReCLAP repository's 'CLAP 2.3M (tiny)' and 'ReCLAP Base'", laion.is_reclap,
    infer_config=lambda state_dict, path: laion.infer_config(state_dict, path.name),
    to_clapkit=lambda state_dict, config: laion.to_clapkit(state_dict), save=laion_export.save_reclap,
    from_clapkit=lambda state_dict, config: laion_export.laion_state_dict(config, state_dict, reclap=True))
LAION = CheckpointFamily(
    "laion", "LAION-CLAP", ".pt with 'state_dict', keys audio_branch.*/text_branch.*, e.g. 630k-best.pt, "
    "630k-audioset-fusion-best.pt, music_*.pt, also with a BART text tower", laion.is_laion,
    infer_config=lambda state_dict, path: laion.infer_config(state_dict, path.name),
    to_clapkit=lambda state_dict, config: laion.to_clapkit(state_dict), save=laion_export.save_laion,
    from_clapkit=lambda state_dict, config: laion_export.laion_state_dict(config, state_dict))
MSCLAP = CheckpointFamily(
    "msclap", "MS-CLAP", "CLAP_weights_2022.pth / CLAP_weights_2023.pth: {'model': ...} with keys "
    "audio_encoder.*/caption_encoder.*/logit_scale", msclap.is_msclap, from_clapkit=msclap.from_clapkit,
    infer_config=lambda state_dict, path: msclap.infer_config(state_dict, path.name),
    to_clapkit=lambda state_dict, config: msclap.to_clapkit(state_dict), save=msclap.save_msclap)
MSCLAP_CAPTIONING = CheckpointFamily(
    "clapcap", "MS-CLAP captioning", "clapcap_weights_2023.pth: {'model': ...} with keys clap.*/clap_project.*/gpt.*; "
    "loads as a captioning model (model.caption)", msclap.is_clapcap, from_clapkit=clapcap.from_clapkit,
    infer_config=lambda state_dict, path: clapcap.infer_config(state_dict, path.name),
    to_clapkit=lambda state_dict, config: clapcap.to_clapkit(state_dict))
HF = CheckpointFamily(
    "hf", "Hugging Face CLAP", "a directory with config.json of model_type 'clap' + model.safetensors or "
    "pytorch_model.bin, e.g. laion/clap-htsat-unfused, laion/larger_clap_general; or its weights file, keys "
    "audio_model.*/text_model.*", hf.is_hf, to_clapkit=hf.to_clapkit, from_clapkit=hf.from_clapkit,
    infer_config=lambda state_dict, path: hf.config_for_file(path, state_dict), save=hf.save_hf,
    detect_directory=hf.is_hf_config, load_directory=hf.load_directory)
CLAPKIT = CheckpointFamily(
    "clapkit", "clapkit's own", "a directory with config.json + model.safetensors, or a .safetensors file saved "
    "by model.save()", native.is_native, infer_config=native.infer_config, to_clapkit=native.to_clapkit,
    from_clapkit=native.to_clapkit, save=native.save_clapkit, detect_directory=native.is_native_config,
    load_directory=native.load_directory)

# Detection order: the first family whose detect accepts the state dict reads it.
FAMILIES: tuple[CheckpointFamily, ...] = (RECLAP, LAION, MSCLAP, MSCLAP_CAPTIONING, HF, CLAPKIT)
FAMILIES_HELP = "clapkit knows these checkpoint families: " + "; ".join(f"{f.title} ({f.files})" for f in FAMILIES)
WRITABLE: tuple[str, ...] = tuple(f.name for f in FAMILIES if f.save is not None)


def family_named(name: str) -> CheckpointFamily:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise CheckpointError(f"unknown checkpoint family {name!r}; known: {', '.join(f.name for f in FAMILIES)}")
