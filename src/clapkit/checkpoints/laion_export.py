"""Writing a clapkit model as a LAION-CLAP training checkpoint that ``laion_clap.CLAP_Module.load_ckpt`` loads strictly.

laion_clap's model keeps its torchlibrosa front end in the state dict (``spectrogram_extractor.stft.conv_*``,
``logmel_extractor.melW``): regenerated exactly from the front-end config. The ``audio_transform``/``text_transform``
MLPs serve only LAION's training loss and no other format stores them: written freshly initialised from a fixed seed.
``text_branch.embeddings.position_ids`` is written because ``load_ckpt`` deletes it unconditionally. A BART tower
(laion_clap ``tmodel="bart"`` holds a whole ``BartModel``) gets a decoder freshly initialised from a fixed seed: the
embeddings never depend on it and clapkit does not keep it. Tied word embeddings are written under every name
(``shared``, ``encoder.embed_tokens``, ``decoder.embed_tokens``), as ``state_dict()`` lists them.

ReCLAP (``save_reclap``): the same layout with the T5 encoder's keys in ``text_branch`` and no ``position_ids``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from clapkit.audio.torchlibrosa import librosa_mel_weights, torchlibrosa_buffers  # noqa: F401 (public here)
from clapkit.checkpoints import encoders, laion
from clapkit.errors import ConfigError
from clapkit.files import atomic_write

TRANSFORM_SEED = 0


LAION_TEXT = ("roberta", "bert", "clip", "bart")


def laion_state_dict(config, state_dict: dict[str, torch.Tensor], *, reclap: bool = False) -> dict[str, torch.Tensor]:
    """The complete state dict of laion_clap's ``CLAP`` module for a ClapNetwork's weights (see the module docstring);
    ``reclap``: of ReCLAP's (a T5 text tower)."""
    allowed = ("t5",) if reclap else LAION_TEXT
    if config.head.kind != "laion_mlp" or not config.separate_logit_scales or config.text.kind not in allowed:
        what = "ReCLAP" if reclap else "LAION-CLAP"
        towers = "a T5" if reclap else "a RoBERTa, BERT, CLIP or BART"
        hint = {"t5": " (T5 towers are ReCLAP's: --to reclap)"}.get(config.text.kind, "") if not reclap else ""
        raise ConfigError(
            f"model {config.name!r} cannot be written as {what}: it needs LAION's MLP projection heads, two logit "
            f"scales and {towers} text tower (this one: {config.head.kind} heads, {config.text.kind} text){hint}"
        )
    out = laion.from_clapkit(state_dict)
    extractors = torchlibrosa_buffers(config.frontend, scale="slaney", slaney_norm=True)  # laion_clap: always Slaney
    out.update({"audio_branch." + k: v for k, v in extractors.items()})
    out.update(transform_mlps(config.joint_dim))
    if config.text.kind in ("bart", "t5"):
        shared = out["text_branch.shared.weight"]
        out["text_branch.encoder.embed_tokens.weight"] = shared
        if config.text.kind == "bart":
            decoder = encoders.bart_decoder(config.text.hf_config, TRANSFORM_SEED)
            decoder["decoder.embed_tokens.weight"] = shared
            out.update({"text_branch." + k: v for k, v in decoder.items()})
    if not reclap:
        positions = int(config.text.hf_config.get("max_position_embeddings", config.text.context_length))
        out["text_branch.embeddings.position_ids"] = torch.arange(positions)[None]
    return out


def transform_mlps(joint_dim: int, seed: int = TRANSFORM_SEED) -> dict[str, torch.Tensor]:
    """LAION's training-only ``audio_transform``/``text_transform`` (``MLPLayers``: Linear at ``sequential.0`` and
    ``sequential.3``), freshly initialised like ``nn.Linear``: uniform in +-1/sqrt(fan_in), from a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    bound = joint_dim**-0.5
    out = {}
    for branch in ("audio_transform", "text_transform"):
        for index in (0, 3):
            for name, shape in (("weight", (joint_dim, joint_dim)), ("bias", (joint_dim,))):
                out[f"{branch}.sequential.{index}.{name}"] = (torch.rand(shape, generator=gen) * 2 - 1) * bound
    return out


def save_laion(path: str | Path, config, state_dict: dict[str, torch.Tensor], *, reclap: bool = False) -> Path:
    """Write a LAION-CLAP training checkpoint (``{'epoch', 'name', 'state_dict'}`` with DDP's ``module.`` prefix)
    that ``laion_clap.CLAP_Module.load_ckpt`` loads strictly (``reclap``: ReCLAP's layout, a T5 text tower)."""
    path = Path(path)
    tensors = {"module." + k: v.detach().cpu().contiguous()
               for k, v in laion_state_dict(config, state_dict, reclap=reclap).items()}
    payload = {"epoch": 0, "name": config.name, "state_dict": tensors}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def save_reclap(path: str | Path, config, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write a ReCLAP checkpoint: LAION's layout with the T5 encoder in ``text_branch``."""
    return save_laion(path, config, state_dict, reclap=True)
