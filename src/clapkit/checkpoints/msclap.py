"""MS-CLAP checkpoints (microsoft/CLAP, pip ``msclap``): ``CLAP_weights_2022.pth`` and ``CLAP_weights_2023.pth``.

Layout: ``{'model': state_dict}`` (msclap reads the file and takes ``['model']``) with the keys of msclap's ``CLAP``
module, no DDP prefix (a ``module.`` prefix is tolerated anyway):

- ``audio_encoder.base.*``: 2022 the PANN Cnn14 (``conv_block1`` ... ``fc1``, ``fc_audioset``), 2023 HTSAT under
  ``audio_encoder.base.htsat.*``; both carry the torchlibrosa front end (``spectrogram_extractor.stft.conv_real/
  conv_imag``, ``logmel_extractor.melW``), which clapkit computes in its own front end and drops.
- ``audio_encoder.projection.*`` / ``caption_encoder.projection.*``: MS projections (``linear1``, ``linear2``,
  ``layer_norm``).
- ``caption_encoder.base.*``: the transformers model (2022 BERT ``embeddings``/``encoder``/``pooler``, 2023 GPT-2
  ``wte``/``wpe``/``h``/``ln_f``). Files written with older transformers also hold buffers that today's models
  rebuild (BERT ``embeddings.position_ids``, GPT-2 ``h.N.attn.bias``/``attn.masked_bias``); msclap loads with
  ``strict=False`` and ignores them, and so does clapkit.
- ``logit_scale``: one temperature for both directions.

The version is told from the keys alone: an HTSAT audio encoder with a GPT-2 text encoder is 2023, a Cnn14 with BERT
is 2022. ``from_clapkit`` writes the same layout back, regenerating the torchlibrosa buffers (they are deterministic
functions of the front-end settings), so msclap loads the export even with ``strict=True``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch

from clapkit.audio.torchlibrosa import torchlibrosa_buffers
from clapkit.checkpoints.io import atomic_write
from clapkit.checkpoints.laion import infer_audio_config, strip_module_prefix
from clapkit.config import AudioTowerConfig, ModelConfig
from clapkit.errors import CheckpointError
from clapkit.registry import get_config

AUDIO_BASE = "audio_encoder.base."
HTSAT_BASE = "audio_encoder.base.htsat."
TEXT_BASE = "caption_encoder.base."
_RENAMES = (
    ("audio_encoder.projection.", "audio_projection."),
    ("caption_encoder.projection.", "text_projection."),
    (TEXT_BASE, "text_tower.model."),
)
IGNORED = re.compile(
    r"^audio_encoder\.base\.(htsat\.)?(spectrogram_extractor|logmel_extractor)\."
    r"|^caption_encoder\.base\.(embeddings\.(position_ids|token_type_ids)|h\.\d+\.attn\.(bias|masked_bias))$"
)
VERSIONS = {"2022": ("pann", "bert"), "2023": ("htsat", "gpt2")}


def is_msclap(state_dict: dict[str, torch.Tensor]) -> bool:
    keys = strip_module_prefix(state_dict).keys()
    return "logit_scale" in keys and any(k.startswith(AUDIO_BASE) for k in keys) and any(
        k.startswith(TEXT_BASE) for k in keys
    )


def is_clapcap(state_dict: dict[str, torch.Tensor]) -> bool:
    """MS-CLAP's captioning checkpoint (``clapcap_weights_2023.pth``: ``clap.*`` audio encoder + ``gpt.*`` decoder),
    read by ``checkpoints/clapcap.py``."""
    keys = strip_module_prefix(state_dict).keys()
    return any(k.startswith("clap.base.") for k in keys) and any(k.startswith("gpt.") for k in keys)


def detect_version(state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> str:
    """'2022' (Cnn14 + BERT) or '2023' (HTSAT + GPT-2), from the keys alone."""
    keys = strip_module_prefix(state_dict).keys()
    audio = "htsat" if any(k.startswith(HTSAT_BASE) for k in keys) else (
        "pann" if f"{AUDIO_BASE}conv_block1.conv1.weight" in keys else None
    )
    text = "gpt2" if f"{TEXT_BASE}wte.weight" in keys else (
        "bert" if f"{TEXT_BASE}embeddings.word_embeddings.weight" in keys else None
    )
    for version, towers in VERSIONS.items():
        if (audio, text) == towers:
            return version
    raise CheckpointError(
        f"{source}: MS-CLAP layout (audio_encoder.*, caption_encoder.*) but an unknown combination of towers "
        f"(audio {audio or 'unrecognised'}, text {text or 'unrecognised'}); known: 2022 = Cnn14 + BERT, "
        "2023 = HTSAT + GPT-2"
    )


def _audio_tower_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The audio encoder's own weights, prefix removed (``htsat.`` too), extractors dropped."""
    out = {}
    for key, value in sd.items():
        if IGNORED.match(key):
            continue
        for prefix in (HTSAT_BASE, AUDIO_BASE):
            if key.startswith(prefix):
                out[key[len(prefix) :]] = value
                break
    return out


def infer_config(state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> ModelConfig:
    """The registry's ``ms-clap-2022``/``ms-clap-2023`` config with the audio tower and joint size read from the
    weights (the text tower is the registry's: BERT-base / GPT-2; a different one fails the strict load, by key)."""
    sd = strip_module_prefix(state_dict)
    version = detect_version(sd, source)
    base = get_config(f"ms-clap-{version}")
    audio = audio_config(base.audio, sd, source)
    return base.replace(
        audio=audio,
        joint_dim=sd["audio_encoder.projection.linear1.weight"].shape[0],
        description=f"{base.description}; detected from {source}",
    )


def audio_config(base: AudioTowerConfig, sd: dict[str, torch.Tensor], source: str) -> AudioTowerConfig:
    """``base`` with the audio tower's geometry read from the ``audio_encoder.base.*`` weights of ``sd``."""
    tower = infer_audio_config({"audio_branch." + k: v for k, v in _audio_tower_keys(sd).items()}, source)
    return dataclasses.replace(
        base,
        embed_dim=tower.embed_dim,
        num_classes=tower.num_classes,
        **(
            {"variant": tower.variant, "depths": tower.depths, "num_heads": tower.num_heads,
             "htsat_embed_dim": tower.htsat_embed_dim}
            if tower.kind == "htsat"
            else {"variant": tower.variant}
        ),
    )


def to_clapkit(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MS-CLAP keys -> ClapNetwork keys (weights unchanged; torchlibrosa and stale transformers buffers dropped)."""
    sd = strip_module_prefix(state_dict)
    out = {"audio_tower." + k: v for k, v in _audio_tower_keys(sd).items()}
    for key, value in sd.items():
        if IGNORED.match(key) or key.startswith(AUDIO_BASE):
            continue
        for old, new in _RENAMES:
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            if key != "logit_scale":
                raise CheckpointError(f"unexpected MS-CLAP key {key!r}")
            out[key] = value
    return out


def from_clapkit(
    state_dict: dict[str, torch.Tensor], config: ModelConfig, *, frontend_buffers: bool = True
) -> dict[str, torch.Tensor]:
    """ClapNetwork keys -> MS-CLAP keys: the inverse of ``to_clapkit``, plus (by default) msclap's torchlibrosa
    front-end buffers regenerated from ``config.frontend``, so the result is exactly the state dict msclap's
    ``CLAP`` module has."""
    if config.head.kind != "ms" or config.separate_logit_scales or config.audio.kind not in ("pann", "htsat"):
        raise CheckpointError(
            f"model {config.name!r} cannot be written as MS-CLAP: msclap needs MS projection heads, one logit_scale "
            "and a Cnn14 or HTSAT audio encoder"
        )
    audio_prefix = HTSAT_BASE if config.audio.kind == "htsat" else AUDIO_BASE
    inverse = [(new, old) for old, new in _RENAMES] + [("audio_tower.", audio_prefix)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for new, old in inverse:
            if key.startswith(new):
                out[old + key[len(new) :]] = value
                break
        else:
            out[key] = value
    if frontend_buffers:
        out.update({audio_prefix + k: v for k, v in torchlibrosa_buffers(config.frontend).items()})
    return out


def save_msclap(path: str | Path, config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write ``{'model': MS-CLAP state dict}`` as msclap's ``CLAPWrapper`` reads it (atomically)."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in from_clapkit(state_dict, config).items()}
    atomic_write(path, lambda tmp: torch.save({"model": tensors}, tmp))
    return path
