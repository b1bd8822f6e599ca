"""``clapkit convert SRC DST --to {clapkit,hf,laion,msclap}``: rewrite a checkpoint in another family's format.

The weights are carried over unchanged (only their names and the q/k/v split change), so every target loads to the
same embeddings. What a target format needs but a source may not have is regenerated or filled, and said so:

- ``laion``: laion_clap's model keeps its torchlibrosa front end in the state dict
  (``spectrogram_extractor.stft.conv_real/conv_imag.weight``, ``logmel_extractor.melW``): regenerated exactly from
  the front-end config with torchlibrosa's formulas. The ``audio_transform``/``text_transform`` MLPs are used only by
  LAION's training loss (``mlp_loss``) and no other format stores them: they are written freshly initialised (seeded,
  PyTorch's ``nn.Linear`` distribution). ``text_branch.embeddings.position_ids`` is written because laion_clap's
  ``load_ckpt`` deletes it unconditionally. HTSAT's unused AudioSet head (``tscam_conv``/``head``) is zero when the
  source was a Hugging Face checkpoint, which has none.
- ``hf``: ``config.json`` + ``preprocessor_config.json`` + ``model.safetensors`` for ``transformers.ClapModel`` /
  ``ClapFeatureExtractor.from_pretrained`` (HTSAT + RoBERTa models only). No tokenizer files are written.
- ``clapkit``: ``config.json`` + ``model.safetensors``, as ``model.save(dir)``.
- ``msclap``: ``{'model': state_dict}`` as msclap's ``CLAPWrapper`` reads it (MS-CLAP models only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

FORMATS = ("clapkit", "hf", "laion", "msclap")
TRANSFORM_SEED = 0


def convert_checkpoint(source: str | Path, destination: str | Path, to: str, *, trust_pickle: bool = False) -> Path:
    """Read any checkpoint clapkit knows, check its weights fit the detected model, write it in format ``to``."""
    from clapkit.checkpoints import hf, load_weights, msclap, save_clapkit
    from clapkit.errors import ConfigError
    from clapkit.loading import load_state_dict_strict
    from clapkit.models.clap import ClapModule

    if to not in FORMATS:
        raise ConfigError(f"unknown checkpoint format {to!r}; known: {', '.join(FORMATS)}")
    config, state_dict = load_weights(source, trust_pickle=trust_pickle)
    module = ClapModule(config)
    load_state_dict_strict(module, state_dict, str(source))  # a broken source fails here, before anything is written
    state_dict = module.state_dict()
    if to == "clapkit":
        return save_clapkit(destination, config, state_dict)
    if to == "hf":
        return hf.save_hf(destination, config, state_dict)
    if to == "msclap":
        return msclap.save_msclap(destination, config, state_dict)
    return save_laion(destination, config, state_dict)


def laion_state_dict(config, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The complete state dict of laion_clap's ``CLAP`` module for a ClapModule's weights (see the module docstring)."""
    from clapkit.checkpoints import laion, msclap
    from clapkit.errors import ConfigError

    if config.head.kind != "laion_mlp" or not config.separate_logit_scales or config.text.kind not in (
        "roberta",
        "bert",
        "clip",
    ):
        raise ConfigError(
            f"model {config.name!r} cannot be written as LAION-CLAP: laion_clap needs LAION's MLP projection heads, "
            f"two logit scales and a RoBERTa, BERT or CLIP text tower (this one: {config.head.kind} heads, "
            f"{config.text.kind} text)"
        )
    out = laion.from_clapkit(state_dict)
    extractors = msclap.torchlibrosa_buffers(config.frontend)  # torchlibrosa's STFT kernels + librosa's Slaney mel
    extractors["logmel_extractor.melW"] = librosa_mel_weights(config.frontend)
    out.update({"audio_branch." + k: v for k, v in extractors.items()})
    out.update(transform_mlps(config.joint_dim))
    positions = int(config.text.hf_config.get("max_position_embeddings", config.text.context_length))
    out["text_branch.embeddings.position_ids"] = torch.arange(positions)[None]
    return out


def librosa_mel_weights(frontend) -> torch.Tensor:
    """``librosa.filters.mel(...).T`` (torchlibrosa's ``melW``) bit for bit: librosa rounds the triangles to float32
    before applying the Slaney norm, where clapkit's front end (like HF's) normalises in float64 and rounds once."""
    from clapkit.audio.frontend import _hz_to_mel, _mel_to_hz, mel_filterbank

    f = frontend
    rate = f.filterbank_sample_rate or f.sample_rate
    top = f.filterbank_f_max if f.filterbank_f_max is not None else f.f_max
    triangles = mel_filterbank(rate, f.n_fft, f.n_mels, f.f_min, top, "slaney", None).double()
    hz = _mel_to_hz(np.linspace(_hz_to_mel(f.f_min, "slaney"), _hz_to_mel(top, "slaney"), f.n_mels + 2), "slaney")
    return (triangles * torch.from_numpy(2.0 / (hz[2:] - hz[:-2]))).float()


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


def save_laion(path: str | Path, config, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write a LAION-CLAP training checkpoint (``{'epoch', 'name', 'state_dict'}`` with DDP's ``module.`` prefix)
    that ``laion_clap.CLAP_Module.load_ckpt`` loads strictly."""
    from clapkit.checkpoints.io import atomic_write

    path = Path(path)
    tensors = {"module." + k: v.detach().cpu().contiguous() for k, v in laion_state_dict(config, state_dict).items()}
    payload = {"epoch": 0, "name": config.name, "state_dict": tensors}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def cmd_convert(args: argparse.Namespace) -> int:
    out = convert_checkpoint(args.source, args.destination, args.to, trust_pickle=args.trust_pickle)
    print(f"wrote {out} ({args.to})")
    return 0


def add_parsers(sub) -> None:
    parser = sub.add_parser(
        "convert",
        help="rewrite a checkpoint in another format (clapkit, hf, laion, msclap); weights unchanged",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="a checkpoint file or directory of any family clapkit loads")
    parser.add_argument("destination", help="output: a directory (clapkit, hf) or a file (laion .pt, msclap .pth)")
    parser.add_argument("--to", required=True, choices=FORMATS)
    parser.add_argument("--trust-pickle", action="store_true", help="allow full unpickling of a trusted source")
    parser.set_defaults(func=cmd_convert)
