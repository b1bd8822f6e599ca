"""LAION-CLAP checkpoints (``630k-best.pt``, ``630k-audioset-fusion-best.pt``, ``music_*.pt``, ...).

Layout: ``{'state_dict': {...}, 'epoch': ..., ...}`` with a ``module.`` prefix (DDP). Our audio towers keep LAION's
``audio_branch`` key names, so conversion is mostly a prefix change. What we drop on the way in: the torchlibrosa
front-end weights (``spectrogram_extractor``/``logmel_extractor``: our front end computes them), the training-only
``audio_transform``/``text_transform`` MLPs, and the stale ``position_ids`` buffers of older transformers versions.
"""

from __future__ import annotations

import re

import torch

from clapkit.checkpoints import encoders
from clapkit.config import AudioFrontendConfig, AudioTowerConfig, HeadConfig, ModelConfig
from clapkit.errors import CheckpointError
from clapkit.registry import get_config

IGNORED = re.compile(
    r"^(audio_branch\.(spectrogram_extractor|logmel_extractor)\.|audio_transform\.|text_transform\."
    r"|text_branch\.embeddings\.(position_ids|token_type_ids)$|attn_mask$|text_branch\.decoder\.)"
)
HTSAT_VARIANTS = {96: "tiny", 128: "base", 256: "large"}
_CLIP_TOP = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
}
_CLIP_BLOCK = {
    "attn.out_proj": "self_attn.out_proj",
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def is_laion(state_dict: dict[str, torch.Tensor]) -> bool:
    keys = strip_module_prefix(state_dict).keys()
    return "logit_scale_a" in keys and any(k.startswith("audio_branch.") for k in keys)


def is_reclap(state_dict: dict[str, torch.Tensor]) -> bool:
    """ReCLAP: LAION's layout with a T5 encoder (``text_branch.encoder.block.N.layer.M...``) as the text tower."""
    return is_laion(state_dict) and any(k.endswith("text_branch." + encoders.T5_PROBE) for k in state_dict)


def _count_blocks(keys: list[str], pattern: str) -> tuple[int, ...]:
    found: dict[int, set[int]] = {}
    for key in keys:
        m = re.match(pattern, key)
        if m:
            found.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return tuple(len(found[i]) for i in sorted(found))


def infer_audio_config(sd: dict[str, torch.Tensor], source: str) -> AudioTowerConfig:
    keys = list(sd)
    fusion = any(
        k.startswith("audio_branch.patch_embed.fusion_model.") or k.startswith("audio_branch.fusion_model.")
        for k in keys
    )
    if "audio_branch.patch_embed.proj.weight" in sd:
        width = sd["audio_branch.patch_embed.proj.weight"].shape[0]
        if width not in HTSAT_VARIANTS:
            raise CheckpointError(
                f"{source}: HTSAT patch embedding width {width} is not tiny (96), base (128) or large (256)"
            )
        depths = _count_blocks(keys, r"audio_branch\.layers\.(\d+)\.blocks\.(\d+)\.")
        heads = tuple(
            sd[f"audio_branch.layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1]
            for i in range(len(depths))
        )
        return AudioTowerConfig(
            kind="htsat",
            variant=HTSAT_VARIANTS[width],
            embed_dim=sd["audio_branch.norm.weight"].shape[0],
            enable_fusion=fusion,
            depths=depths,
            num_heads=heads,
            htsat_embed_dim=width,
            num_classes=sd["audio_branch.head.weight"].shape[0],
        )
    if "audio_branch.conv_block1.conv1.weight" in sd:
        if "audio_branch.conv_block6.conv1.weight" in sd:
            variant = "cnn14"
        elif "audio_branch.conv_block1.conv2.weight" in sd:
            variant = "cnn10"
        else:
            variant = "cnn6"
        return AudioTowerConfig(
            kind="pann",
            variant=variant,
            embed_dim=sd["audio_branch.fc1.weight"].shape[0],
            enable_fusion=fusion,
            num_classes=sd["audio_branch.fc_audioset.weight"].shape[0],
        )
    raise CheckpointError(f"{source}: LAION audio_branch is neither HTSAT (patch_embed.proj) nor PANN (conv_block1)")


def infer_text_kind(sd: dict[str, torch.Tensor], source: str) -> str:
    if "text_branch.resblocks.0.attn.in_proj_weight" in sd:
        return "clip"
    if "text_branch." + encoders.T5_PROBE in sd:
        return "t5"
    if "text_branch." + encoders.BART_PROBE in sd:
        return "bart"
    emb = sd.get("text_branch.embeddings.word_embeddings.weight")
    if emb is None:
        raise CheckpointError(
            f"{source}: no text_branch embeddings found (RoBERTa, BERT, CLIP-text, BART or T5 expected)"
        )
    return "bert" if "text_branch.pooler.dense.weight" in sd and emb.shape[0] == 30522 else "roberta"


def infer_config(state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> ModelConfig:
    """A ModelConfig for a LAION state dict, from its keys and shapes."""
    sd = strip_module_prefix(state_dict)
    audio = infer_audio_config(sd, source)
    text_kind = infer_text_kind(sd, source)
    base = get_config({"roberta": "laion-htsat-tiny", "t5": "reclap-htsat-tiny-t5"}.get(
        text_kind, f"laion-htsat-tiny-{text_kind}"))
    text = base.text
    if text_kind == "t5":  # ReCLAP (a laion_clap fork): LAION's layout with a T5 encoder in text_branch
        text = encoders.t5_text_config(sd, "text_branch.", source)
    elif text_kind == "bart":
        text = encoders.bart_text_config(sd, "text_branch.", source)
    name = f"{'reclap' if text_kind == 't5' else 'laion'}-"
    name += f"{'htsat-' + audio.variant if audio.kind == 'htsat' else audio.variant.replace('cnn', 'pann')}"
    name += ("-fusion" if audio.enable_fusion else "") + ("" if text_kind == "roberta" else f"-{text_kind}")
    joint = sd["audio_projection.2.weight"].shape[0]
    return base.replace(
        name=name,
        text=text,
        audio=audio,
        frontend=AudioFrontendConfig(truncation="fusion" if audio.enable_fusion else "rand_trunc"),
        head=HeadConfig("laion_mlp", "relu"),
        joint_dim=joint,
        description=f"detected from {source}",
    )


def to_clapkit(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LAION keys -> ClapNetwork keys (weights unchanged)."""
    out = {}
    for key, value in strip_module_prefix(state_dict).items():
        if IGNORED.match(key):
            continue
        if key.startswith("audio_branch."):
            out["audio_tower." + key[len("audio_branch.") :]] = value
        elif key.startswith("text_branch.resblocks."):
            out.update(_clip_block_to_hf(key, value))
        elif key in _CLIP_TOP:
            out["text_tower.model." + _CLIP_TOP[key]] = value
        elif key.startswith("text_branch."):
            out["text_tower.model." + key[len("text_branch.") :]] = value
        else:
            out[key] = value
    return encoders.untie_embeddings(out, "text_tower.model.")


def _clip_block_to_hf(key: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    m = re.match(r"text_branch\.resblocks\.(\d+)\.(.+)$", key)
    prefix = f"text_tower.model.text_model.encoder.layers.{m.group(1)}."
    rest = m.group(2)
    if rest.startswith("attn.in_proj_"):
        kind = rest.rsplit("_", 1)[1]  # weight | bias
        q, k, v = value.chunk(3, dim=0)
        return {f"{prefix}self_attn.{n}_proj.{kind}": t for n, t in zip("qkv", (q, k, v))}
    for old, new in _CLIP_BLOCK.items():
        if rest.startswith(old + "."):
            return {prefix + new + rest[len(old) :]: value}
    raise CheckpointError(f"unexpected LAION CLIP-text key {key}")


def from_clapkit(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ClapNetwork keys -> LAION keys (inverse of ``to_clapkit`` for the weights it keeps)."""
    top = {v: k for k, v in _CLIP_TOP.items()}
    block = {v: k for k, v in _CLIP_BLOCK.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if key.startswith("audio_tower."):
            out["audio_branch." + key[len("audio_tower.") :]] = value
        elif key.startswith("text_tower.model.text_model."):
            rest = key[len("text_tower.model.") :]
            if rest in top:
                out[top[rest]] = value
                continue
            m = re.match(r"text_model\.encoder\.layers\.(\d+)\.(.+)$", rest)
            i, sub = m.group(1), m.group(2)
            mq = re.match(r"self_attn\.([qkv])_proj\.(weight|bias)$", sub)
            if mq:
                qkv.setdefault(f"text_branch.resblocks.{i}.attn.in_proj_{mq.group(2)}", {})[mq.group(1)] = value
                continue
            for new, old in block.items():
                if sub.startswith(new + "."):
                    out[f"text_branch.resblocks.{i}.{old}{sub[len(new) :]}"] = value
        elif key.startswith("text_tower.model."):
            out["text_branch." + key[len("text_tower.model.") :]] = value
        else:
            out[key] = value
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out
