"""MS-CLAP's captioning checkpoint (msclap version ``clapcap``, ``clapcap_weights_2023.pth``).

Layout: ``{'model': state_dict}`` of msclap's ``ClapCaptionModel``:

- ``clap.*``: the audio encoder of a CLAP 2023 model (``clap.base.htsat.*`` HTSAT with its torchlibrosa buffers,
  ``clap.projection.*`` the MS projection to ``prefix_dim``); read as MS-CLAP 2023's audio path.
- ``clap_project.*``: the mapper. Transformer (msclap's default, ``mapping_type: transformer``): ``linear``
  (prefix_dim -> clip_length * width), ``prefix_const`` (prefix_length, width), ``transformer.layers.N.*``; MLP:
  ``model.0`` / ``model.2``.
- ``gpt.transformer.*`` + ``gpt.lm_head.weight``: transformers' ``GPT2LMHeadModel`` (the head tied to ``wte``; msclap
  loads ``lm_head`` after ``wte`` into the one shared tensor, so ``lm_head`` is the value that counts).

Everything is read from the tensors: prefix length (``prefix_const`` rows, or the MLP output / width), clip length
(``linear`` rows / width), prefix dim, mapper layers, feed-forward width, attention biases, GPT-2 size. Two numbers
are not in any shape and come from msclap: the mapper's 8 heads (``TransformerMapper`` hard-codes them) and
``normalize_prefix: True`` (config_clapcap.yml); GPT-2's heads are ``n_embd / 64`` (every GPT-2 release: 768/12,
1024/16, 1280/20, 1600/25).
"""

from __future__ import annotations

import dataclasses
import re

import torch

from clapkit.checkpoints.laion import strip_module_prefix
from clapkit.checkpoints.msclap import IGNORED, audio_config, is_clapcap
from clapkit.config import CaptionConfig, ModelConfig, TextTowerConfig
from clapkit.errors import CheckpointError
from clapkit.registry import get_config

NAME = "ms-clap-clapcap"
MAPPER_HEADS = 8  # msclap's TransformerMapper: Transformer(dim_embedding, 8, num_layers)
GPT2_HEAD_WIDTH = 64
_STALE_GPT2 = re.compile(r"^gpt\.transformer\.h\.\d+\.attn\.(bias|masked_bias)$")
__all__ = ["from_clapkit", "infer_config", "is_clapcap", "to_clapkit"]


def _as_msclap_audio(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``clap.*`` keys under msclap CLAP's ``audio_encoder.*`` names."""
    return {"audio_encoder." + k[len("clap.") :]: v for k, v in sd.items() if k.startswith("clap.")}


def _count(sd: dict[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in sd if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def gpt2_config(sd: dict[str, torch.Tensor], source: str) -> TextTowerConfig:
    """The GPT-2 decoder's config, from ``gpt.transformer.*`` shapes."""
    try:
        vocab, width = sd["gpt.transformer.wte.weight"].shape
        positions = sd["gpt.transformer.wpe.weight"].shape[0]
        inner = sd["gpt.transformer.h.0.mlp.c_fc.weight"].shape[1]
    except KeyError as exc:
        raise CheckpointError(f"{source}: clapcap layout without GPT-2 tensor {exc.args[0]!r}") from None
    except ValueError:
        raise CheckpointError(f"{source}: clapcap layout whose GPT-2 tensors are not matrices") from None
    if width % GPT2_HEAD_WIDTH:
        raise CheckpointError(f"{source}: GPT-2 width {width} is not a multiple of GPT-2's head width 64")
    hf_config = {
        "model_type": "gpt2",
        "vocab_size": int(vocab),
        "n_positions": int(positions),
        "n_embd": int(width),
        "n_layer": _count(sd, r"^gpt\.transformer\.h\.(\d+)\."),
        "n_head": int(width) // GPT2_HEAD_WIDTH,
        "n_inner": None if inner == 4 * width else int(inner),
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-05,
        "bos_token_id": int(vocab) - 1,
        "eos_token_id": int(vocab) - 1,
        "pad_token_id": 0,
    }
    return TextTowerConfig(kind="gpt2", hf_config=hf_config, pooling="last_token", context_length=int(positions),
                           width=int(width), tokenizer="gpt2")


def mapper_config(sd: dict[str, torch.Tensor], width: int, source: str) -> CaptionConfig:
    """Mapper kind and geometry, from ``clap_project.*``."""
    if "clap_project.prefix_const" in sd:
        prefix_length = sd["clap_project.prefix_const"].shape[0]
        rows, prefix_dim = sd["clap_project.linear.weight"].shape
        layers = _count(sd, r"^clap_project\.transformer\.layers\.(\d+)\.")
        if layers == 0:
            raise CheckpointError(f"{source}: clapcap transformer mapper without layers")
        return CaptionConfig(
            mapper="transformer", prefix_length=int(prefix_length), clip_length=int(rows) // width,
            prefix_dim=int(prefix_dim), num_layers=layers, num_heads=MAPPER_HEADS,
            hidden=int(sd["clap_project.transformer.layers.0.mlp.fc1.weight"].shape[0]),
            attention_bias="clap_project.transformer.layers.0.attn.to_queries.bias" in sd,
        )
    if "clap_project.model.0.weight" in sd:
        hidden, prefix_dim = sd["clap_project.model.0.weight"].shape
        out = sd["clap_project.model.2.weight"].shape[0]
        return CaptionConfig(mapper="mlp", prefix_length=int(out) // width, clip_length=0, prefix_dim=int(prefix_dim),
                             num_layers=0, num_heads=0, hidden=int(hidden), attention_bias=False)
    raise CheckpointError(
        f"{source}: clapcap layout without a known mapper (clap_project.prefix_const/linear for msclap's transformer "
        "mapper, clap_project.model.0/2 for its MLP)"
    )


def infer_config(state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> ModelConfig:
    """``ms-clap-clapcap``: MS-CLAP 2023's front end, the HTSAT read from ``clap.*``, mapper and GPT-2 from the keys."""
    sd = strip_module_prefix(state_dict)
    base = get_config(NAME)
    text = gpt2_config(sd, source)
    caption = mapper_config(sd, text.width, source)
    projection = sd.get("clap.projection.linear1.weight")
    if projection is None:
        raise CheckpointError(f"{source}: clapcap layout without the audio projection clap.projection.linear1")
    return base.replace(
        audio=audio_config(base.audio, _as_msclap_audio(sd), source),
        text=text,
        caption=dataclasses.replace(caption, normalize_prefix=base.caption.normalize_prefix),
        joint_dim=int(projection.shape[0]),
        description=f"{base.description}; detected from {source}",
    )


def to_clapkit(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """clapcap keys -> CaptionNetwork keys (weights unchanged; torchlibrosa and stale GPT-2 buffers dropped)."""
    from clapkit.checkpoints.msclap import to_clapkit as msclap_to_clapkit

    sd = strip_module_prefix(state_dict)
    audio = {k: v for k, v in _as_msclap_audio(sd).items() if not IGNORED.match(k)}
    out = msclap_to_clapkit(audio)  # audio_tower.* and audio_projection.*
    for key, value in sd.items():
        if key.startswith("clap.") or _STALE_GPT2.match(key):
            continue
        if key.startswith("clap_project."):
            out["mapper." + key[len("clap_project.") :]] = value
        elif key.startswith("gpt.transformer."):
            out.setdefault("decoder." + key[len("gpt.transformer.") :], value)
        elif key == "gpt.lm_head.weight":
            out["decoder.wte.weight"] = value  # tied: msclap's load leaves lm_head's values in the shared tensor
        else:
            raise CheckpointError(f"unexpected clapcap key {key!r}")
    return out


def from_clapkit(state_dict: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """CaptionNetwork keys -> clapcap keys, torchlibrosa buffers and the tied ``lm_head`` included: the state dict
    msclap's ``ClapCaptionModel`` has."""
    from clapkit.checkpoints.msclap import HTSAT_BASE, torchlibrosa_buffers

    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for new, old in (("audio_tower.", "clap.base.htsat."), ("audio_projection.", "clap.projection."),
                         ("mapper.", "clap_project."), ("decoder.", "gpt.transformer.")):
            if key.startswith(new):
                out[old + key[len(new) :]] = value
                break
        else:
            raise CheckpointError(f"unexpected caption network key {key!r}")
    out["gpt.lm_head.weight"] = out["gpt.transformer.wte.weight"]
    prefix = "clap." + HTSAT_BASE[len("audio_encoder.") :]
    out.update({prefix + k: v for k, v in torchlibrosa_buffers(config.frontend).items()})
    return out
