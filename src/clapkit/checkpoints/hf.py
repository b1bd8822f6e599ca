"""Hugging Face CLAP (``transformers.ClapModel``): ``laion/clap-htsat-{unfused,fused}``, ``laion/larger_clap_*``.

A hub directory holds ``config.json`` (``model_type: "clap"``, ``audio_config``/``text_config``), the weights
(``model.safetensors`` or ``pytorch_model.bin``, possibly sharded with an ``*.index.json``) and usually
``preprocessor_config.json`` (``ClapFeatureExtractor`` settings) and tokenizer files.

Keys: HF renamed LAION's ``audio_branch`` (``audio_model.audio_encoder``: ``bn0`` -> ``batch_norm``, ``norm1/2`` ->
``layernorm_before/after``, ``attn.proj`` -> ``attention.output.dense``, ``mlp.fc1/fc2`` -> ``intermediate.dense`` /
``output.dense``) and split each Swin ``attn.qkv`` into ``attention.self.query/key/value``; ``text_branch`` is
``text_model`` (plus persistent ``position_ids``/``token_type_ids`` buffers, dropped here), the projection MLPs'
``0``/``2`` are ``linear1``/``linear2``. HF keeps neither the Swin ``attn_mask`` buffers (recomputed here from the
geometry) nor HTSAT's AudioSet classifier ``tscam_conv``/``head`` (unused by embeddings: zero-filled here).
The processor front end (``ClapFeatureExtractor``) is reproduced by :func:`frontend_from_processor` (quirks in
``AudioFrontendConfig.quirks`` and ``docs/checkpoints.md``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from clapkit.checkpoints.io import atomic_write, read_checkpoint, read_json, save_safetensors
from clapkit.checkpoints.laion import HTSAT_VARIANTS
from clapkit.config import AudioFrontendConfig, AudioTowerConfig, HeadConfig, ModelConfig, TextTowerConfig
from clapkit.errors import CheckpointError, ConfigError

AUDIO, TEXT = "audio_model.audio_encoder.", "text_model."
TEXT_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"
)
# LAION block key (after "layers.i.blocks.j.") -> HF block key (q/k/v handled apart: fused attn.qkv in LAION)
_BLOCK = {
    "norm1.": "layernorm_before.",
    "norm2.": "layernorm_after.",
    "attn.relative_position_bias_table": "attention.self.relative_position_bias_table",
    "attn.relative_position_index": "attention.self.relative_position_index",
    "attn.proj.": "attention.output.dense.",
    "mlp.fc1.": "intermediate.dense.",
    "mlp.fc2.": "output.dense.",
}
# ClapAudioConfig / ClapTextConfig defaults (transformers 4.57), for config.json files that leave fields out
AUDIO_DEFAULTS: dict[str, Any] = {
    "window_size": 8, "num_mel_bins": 64, "spec_size": 256, "hidden_act": "gelu", "patch_size": 4,
    "patch_stride": [4, 4], "num_classes": 527, "hidden_size": 768, "depths": [2, 2, 6, 2],
    "num_attention_heads": [4, 8, 16, 32], "enable_fusion": False, "fusion_type": None,
    "patch_embed_input_channels": 1, "flatten_patch_embeds": True, "patch_embeds_hidden_size": 96,
    "enable_patch_layer_norm": True, "drop_path_rate": 0.0, "qkv_bias": True, "mlp_ratio": 4.0, "aff_block_r": 4,
    "layer_norm_eps": 1e-5,
}  # fmt: skip
TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 514, "type_vocab_size": 1,
    "layer_norm_eps": 1e-12, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
    "position_embedding_type": "absolute",
}  # fmt: skip
# what ClapFeatureExtractor() computes when a directory has no preprocessor_config.json; frequency_min is the 50 Hz
# the checkpoints were trained with (and the released processors use), not the extractor's own default 0 Hz
PROCESSOR_DEFAULTS: dict[str, Any] = {
    "feature_size": 64, "sampling_rate": 48000, "hop_length": 480, "max_length_s": 10, "fft_window_size": 1024,
    "frequency_min": 50, "frequency_max": 14000, "padding": "repeatpad",
}  # fmt: skip
QUIRKS = (
    "HF ClapFeatureExtractor: numpy STFT (periodic Hann, reflect-padded centre frames) in float64, power 2, "
    "mel floor 1e-10, 10*log10 dB; no int16 round trip of the waveform",
    "truncation 'rand_trunc' (unfused): Slaney mel with Slaney norm; 'fusion' (fused): HTK mel without norm for every "
    "clip, short ones as 4 copies",
    "frequency_min/frequency_max from preprocessor_config.json (ClapFeatureExtractor() defaults to 0 Hz; the released "
    "processors and LAION training use 50 Hz, the value assumed when the file is missing)",
    "top_db in preprocessor_config.json is ignored, as the extractor never passes it to its dB conversion",
    "fused global view: F.interpolate bilinear without antialias (LAION's torchvision Resize antialiases)",
    "not reproduced (evaluation stays deterministic and batch-independent): the random crop of 'rand_trunc', the "
    "random local chunks of 'fusion', and the extractor marking a random clip of an all-short batch as is_longer",
)


# ------------------------------------------------------------------------------------------------ detection
def is_hf(state_dict: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith(AUDIO) for k in state_dict) and any(k.startswith(TEXT) for k in state_dict)


def is_hf_config(raw: dict[str, Any]) -> bool:
    return raw.get("model_type") == "clap" or ("audio_config" in raw and "text_config" in raw)


# ---------------------------------------------------------------------------------------------------- configs
def config_from_hf(raw: dict[str, Any], processor: dict[str, Any] | None, source: str) -> ModelConfig:
    """A clapkit ``ModelConfig`` for a HF ``config.json`` (+ ``preprocessor_config.json``, if any)."""
    audio = {**AUDIO_DEFAULTS, **(raw.get("audio_config") or {})}
    text = {**TEXT_DEFAULTS, **(raw.get("text_config") or {})}
    unsupported = {
        "audio_config.fusion_type": audio["fusion_type"] not in (None, "aff_2d"),
        "audio_config.patch_stride": list(audio["patch_stride"]) != [audio["patch_size"]] * 2,
        "audio_config.patch_embed_input_channels": audio["patch_embed_input_channels"] != 1,
        "audio_config.enable_patch_layer_norm": not audio["enable_patch_layer_norm"],
        "audio_config.flatten_patch_embeds": not audio["flatten_patch_embeds"],
        "audio_config.qkv_bias": not audio["qkv_bias"],
        "audio_config.mlp_ratio": float(audio["mlp_ratio"]) != 4.0,
        "audio_config.aff_block_r": audio["aff_block_r"] != 4,
        "audio_config.hidden_act": audio["hidden_act"] != "gelu",
        "audio_config.layer_norm_eps": float(audio["layer_norm_eps"]) != 1e-5,
        "text_config.position_embedding_type": text["position_embedding_type"] != "absolute",
    }
    bad = [k for k, v in unsupported.items() if v]
    if bad:
        shown = ", ".join(f"{k}={(audio if k.startswith('audio') else text)[k.split('.', 1)[1]]!r}" for k in bad)
        raise ConfigError(f"{source}: HF CLAP config uses settings clapkit does not implement: {shown}")
    width = int(audio["patch_embeds_hidden_size"])
    fusion = bool(audio["enable_fusion"])
    tower = AudioTowerConfig(
        kind="htsat", variant=HTSAT_VARIANTS.get(width, f"width{width}"), embed_dim=int(audio["hidden_size"]),
        enable_fusion=fusion, fusion_type="aff_2d", spec_size=int(audio["spec_size"]),
        patch_size=int(audio["patch_size"]), window_size=int(audio["window_size"]),
        depths=tuple(int(d) for d in audio["depths"]),
        num_heads=tuple(int(h) for h in audio["num_attention_heads"]),
        htsat_embed_dim=width,
        n_mels=int(audio["num_mel_bins"]),
        num_classes=int(audio["num_classes"]),
        drop_path_rate=float(audio["drop_path_rate"]),
    )
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "hidden_act", "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id",
            "bos_token_id", "eos_token_id")  # fmt: skip
    text_tower = TextTowerConfig(
        kind="roberta",
        hf_config={"model_type": "roberta", **{k: text[k] for k in keys}},
        pooling="pooler",
        context_length=int(text["max_position_embeddings"]) - 2,  # HF's tokenizer does not cut captions at 77
        width=int(text["hidden_size"]),
        tokenizer="roberta",
    )
    activation = raw.get("projection_hidden_act", audio.get("projection_hidden_act", "relu"))
    if activation not in ("relu", "gelu"):
        raise ConfigError(f"{source}: projection_hidden_act {activation!r} is not supported (relu or gelu)")
    name = f"hf-htsat-{tower.variant}" + ("-fusion" if fusion else "")
    return ModelConfig(
        name=name,
        family="hf",
        frontend=frontend_from_processor(processor, fusion, tower.n_mels),
        audio=tower,
        text=text_tower,
        head=HeadConfig("laion_mlp", activation),
        joint_dim=int(raw.get("projection_dim", audio.get("projection_dim", 512))),
        separate_logit_scales=True,
        description=f"Hugging Face CLAP ({source})",
    )


def frontend_from_processor(processor: dict[str, Any] | None, fusion: bool, n_mels: int = 64) -> AudioFrontendConfig:
    """``ClapFeatureExtractor`` settings as an ``AudioFrontendConfig`` that computes what the extractor computes."""
    p = {**PROCESSOR_DEFAULTS, **(processor or {})}
    kind = p.get("feature_extractor_type", "ClapFeatureExtractor")
    if kind != "ClapFeatureExtractor":
        raise ConfigError(f"preprocessor_config.json is for {kind}, not ClapFeatureExtractor")
    if int(p["feature_size"]) != n_mels:
        raise ConfigError(f"preprocessor feature_size {p['feature_size']} differs from the model's {n_mels} mel bins")
    notes = QUIRKS
    wanted = "fusion" if fusion else "rand_trunc"
    if processor and processor.get("truncation", wanted) != wanted:
        notes += (f"preprocessor truncation {processor['truncation']!r} does not fit a model with enable_fusion="
                  f"{fusion} (transformers would fail on it); '{wanted}' is used",)  # fmt: skip
    rate, n_fft = int(p["sampling_rate"]), int(p["fft_window_size"])
    return AudioFrontendConfig(
        sample_rate=rate, clip_samples=int(round(float(p["max_length_s"]) * rate)), n_fft=n_fft, win_length=n_fft,
        hop_length=int(p["hop_length"]), n_mels=n_mels, f_min=float(p["frequency_min"]),
        f_max=float(p["frequency_max"]), mel_scale="slaney", mel_norm="slaney", top_db=None, int16_roundtrip=False,
        truncation=wanted, filling=p["padding"], fusion_mel_scale="htk", fusion_mel_norm=None,
        fusion_resize_antialias=False, quirks=notes,
    )  # fmt: skip


def config_to_hf(config: ModelConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.json, preprocessor_config.json) contents for exporting ``config`` as a HF ``ClapModel``."""
    a, t, f = config.audio, config.text, config.frontend
    problems = []
    if a.kind != "htsat" or (a.enable_fusion and a.fusion_type != "aff_2d"):
        problems.append(f"audio tower {a.kind}/{a.fusion_type if a.enable_fusion else 'no fusion'} (HF: HTSAT)")
    if t.hf_config.get("model_type") != "roberta" or t.pooling != "pooler":
        problems.append(f"text tower {t.kind} with {t.pooling} pooling (HF: RoBERTa, pooler)")
    if config.head.kind != "laion_mlp" or not config.separate_logit_scales:
        problems.append(f"projection head {config.head.kind!r} (HF: LAION's MLP and two logit scales)")
    if (f.mel_scale, f.mel_norm, f.fusion_mel_scale, f.fusion_mel_norm) != ("slaney", "slaney", "htk", None) or (
        f.filterbank_sample_rate or f.filterbank_f_max or f.win_length != f.n_fft or not f.center
    ):
        problems.append("audio front end (HF's processor: Slaney mel, HTK fusion mel, win_length = n_fft)")
    if problems:
        raise ConfigError(f"model {config.name!r} cannot be exported to Hugging Face CLAP: {'; '.join(problems)}")
    audio = {
        **AUDIO_DEFAULTS, "model_type": "clap_audio_model", "window_size": a.window_size, "num_mel_bins": a.n_mels,
        "spec_size": a.spec_size, "patch_size": a.patch_size, "patch_stride": [a.patch_size] * 2,
        "num_classes": a.num_classes, "hidden_size": a.embed_dim, "depths": list(a.depths),
        "num_attention_heads": list(a.num_heads), "enable_fusion": a.enable_fusion,
        "patch_embeds_hidden_size": a.htsat_embed_dim, "drop_path_rate": a.drop_path_rate,
        "num_hidden_layers": len(a.depths), "projection_dim": config.joint_dim,
        "projection_hidden_act": config.head.activation,
    }  # fmt: skip
    text_keys = {k: v for k, v in t.hf_config.items() if k != "model_type"}
    text = {**TEXT_DEFAULTS, **text_keys, "model_type": "clap_text_model", "projection_dim": config.joint_dim,
            "projection_hidden_act": config.head.activation}  # fmt: skip
    model = {
        "architectures": ["ClapModel"], "model_type": "clap", "audio_config": audio, "text_config": text,
        "projection_dim": config.joint_dim, "projection_hidden_act": config.head.activation,
        "logit_scale_init_value": 1 / 0.07, "hidden_size": t.width, "initializer_factor": 1.0,
        "torch_dtype": "float32",
    }  # fmt: skip
    seconds = f.clip_samples / f.sample_rate
    processor = {
        "feature_extractor_type": "ClapFeatureExtractor", "feature_size": f.n_mels, "sampling_rate": f.sample_rate,
        "hop_length": f.hop_length, "max_length_s": int(seconds) if seconds == int(seconds) else seconds,
        "fft_window_size": f.n_fft, "frequency_min": f.f_min, "frequency_max": f.f_max,
        "truncation": "fusion" if a.enable_fusion else "rand_trunc", "padding": f.filling, "padding_value": 0.0,
        "return_attention_mask": False, "top_db": None,
    }  # fmt: skip
    return model, processor


# ------------------------------------------------------------------------------------------------------- keys
def to_clapkit(state_dict: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """HF ``ClapModel`` keys -> ClapNetwork keys (weights unchanged; q/k/v fused into LAION's ``attn.qkv``)."""
    reverse = {hf: ours for ours, hf in _BLOCK.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if key.startswith(AUDIO):
            rest = key[len(AUDIO) :]
            m = re.match(r"(layers\.\d+\.blocks\.\d+\.)(.+)$", rest)
            if m:
                prefix, sub = m.groups()
                mq = re.match(r"attention\.self\.(query|key|value)\.(weight|bias)$", sub)
                if mq:
                    qkv.setdefault(f"audio_tower.{prefix}attn.qkv.{mq.group(2)}", {})[mq.group(1)] = value
                    continue
                new = next((ours + sub[len(hf) :] for hf, ours in reverse.items() if sub.startswith(hf)), None)
                if new is None:
                    raise CheckpointError(f"unexpected HF CLAP audio key {key}")
                rest = prefix + new
            elif rest.startswith("batch_norm."):
                rest = "bn0." + rest[len("batch_norm.") :]
            out["audio_tower." + rest] = value
        elif key.startswith(TEXT):
            if key[len(TEXT) :] not in TEXT_BUFFERS:
                out["text_tower.model." + key[len(TEXT) :]] = value
        else:
            m = re.match(r"(audio|text)_projection\.linear([12])\.(.+)$", key)
            out[f"{m.group(1)}_projection.{0 if m.group(2) == '1' else 2}.{m.group(3)}" if m else key] = value
    for key, parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise CheckpointError(f"HF CLAP checkpoint has only {sorted(parts)} of query/key/value for {key}")
        out[key] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    out.update(derived_audio_tensors(config.audio))
    return out


def derived_audio_tensors(audio: AudioTowerConfig) -> dict[str, torch.Tensor]:
    """What HF does not store: the shifted-window masks (computed from the geometry, as HTSAT builds them) and the
    AudioSet classifier ``tscam_conv``/``head`` (zeros; CLAP embeddings never use them)."""
    from clapkit.models.swin import shifted_window_mask

    out = {}
    grid, stages = audio.spec_size // audio.patch_size, len(audio.depths)
    for i, depth in enumerate(audio.depths):
        size = grid // 2**i
        for j in range(1, depth, 2):
            if size > audio.window_size:  # else one window covers the grid and the block is not shifted
                mask = shifted_window_mask(size, size, audio.window_size, audio.window_size // 2)
                out[f"audio_tower.layers.{i}.blocks.{j}.attn_mask"] = mask
    features = audio.htsat_embed_dim * 2 ** (stages - 1)
    rows = audio.spec_size // 2 ** (stages - 1) // audio.patch_size // (audio.spec_size // audio.n_mels)
    out["audio_tower.tscam_conv.weight"] = torch.zeros(audio.num_classes, features, rows, 3)
    out["audio_tower.tscam_conv.bias"] = torch.zeros(audio.num_classes)
    out["audio_tower.head.weight"] = torch.zeros(audio.num_classes, audio.num_classes)
    out["audio_tower.head.bias"] = torch.zeros(audio.num_classes)
    return out


def from_clapkit(state_dict: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """ClapNetwork keys -> HF ``ClapModel`` keys (inverse of :func:`to_clapkit`; the derived tensors are dropped)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("audio_tower."):
            rest = key[len("audio_tower.") :]
            if rest.startswith(("tscam_conv.", "head.")) or rest.endswith("attn_mask"):
                continue
            m = re.match(r"(layers\.\d+\.blocks\.\d+\.)(.+)$", rest)
            if m and m.group(2).startswith("attn.qkv."):
                kind = m.group(2).rsplit(".", 1)[1]
                for part, tensor in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                    out[f"{AUDIO}{m.group(1)}attention.self.{part}.{kind}"] = tensor.clone()
                continue
            if m:
                sub = m.group(2)
                new = next((hf + sub[len(ours) :] for ours, hf in _BLOCK.items() if sub.startswith(ours)), None)
                if new is None:
                    raise CheckpointError(f"clapkit key {key} has no HF CLAP counterpart")
                rest = m.group(1) + new
            elif rest.startswith("bn0."):
                rest = "batch_norm." + rest[len("bn0.") :]
            out[AUDIO + rest] = value
        elif key.startswith("text_tower.model."):
            out[TEXT + key[len("text_tower.model.") :]] = value
        else:
            m = re.match(r"(audio|text)_projection\.([02])\.(.+)$", key)
            out[f"{m.group(1)}_projection.linear{1 if m.group(2) == '0' else 2}.{m.group(3)}" if m else key] = value
    positions = int(config.text.hf_config.get("max_position_embeddings", 514))
    out[TEXT + TEXT_BUFFERS[0]] = torch.arange(positions)[None]
    out[TEXT + TEXT_BUFFERS[1]] = torch.zeros(1, positions, dtype=torch.long)
    return out


# ------------------------------------------------------------------------------------------------------- files
def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The state dict of a HF directory: single-file or sharded, safetensors preferred."""
    for name in WEIGHT_FILES:
        path = directory / name
        if not path.exists():
            continue
        if not name.endswith(".index.json"):
            return read_checkpoint(path)
        shards = sorted(set(read_json(path, "weights index").get("weight_map", {}).values()))
        if not shards:
            raise CheckpointError(f"{path}: index has no weight_map")
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(read_checkpoint(directory / shard))
        return state
    raise CheckpointError(
        f"{directory}: HF CLAP config.json found but no weights (looked for {', '.join(WEIGHT_FILES)})"
    )


def read_processor(directory: Path) -> dict[str, Any] | None:
    path = directory / "preprocessor_config.json"
    return read_json(path, "preprocessor_config.json") if path.exists() else None


def load_directory(
    directory: Path, raw: dict[str, Any], config: ModelConfig | None = None
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, ClapNetwork state dict) of a HF CLAP directory whose ``config.json`` is ``raw``."""
    detected = config_from_hf(raw, read_processor(directory), directory.name)
    return config or detected, to_clapkit(read_weights(directory), config or detected)


def config_for_file(path: Path, state_dict: dict[str, torch.Tensor]) -> ModelConfig:
    """Config of a lone HF weights file: from ``config.json`` beside it, else inferred from the tensor shapes."""
    beside = path.parent / "config.json"
    if beside.exists():
        raw = read_json(beside)
        if isinstance(raw, dict) and is_hf_config(raw):
            return config_from_hf(raw, read_processor(path.parent), path.parent.name)
    return config_from_hf(infer_raw_config(state_dict), None, f"{path.name}, config inferred from tensor shapes")


def infer_raw_config(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A HF config.json equivalent read off a HF CLAP state dict (text settings not visible in shapes: HF defaults)."""
    blocks: dict[int, set[int]] = {}
    for key in sd:
        m = re.match(re.escape(AUDIO) + r"layers\.(\d+)\.blocks\.(\d+)\.", key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    table = AUDIO + "layers.{}.blocks.0.attention.self.relative_position_bias_table"
    window = (int(sd[table.format(0)].shape[0] ** 0.5) + 1) // 2
    text_layers = {int(m.group(1)) for k in sd if (m := re.match(r"text_model\.encoder\.layer\.(\d+)\.", k))}
    hidden = sd["text_model.embeddings.word_embeddings.weight"].shape[1]
    audio = {
        "patch_embeds_hidden_size": sd[AUDIO + "patch_embed.proj.weight"].shape[0],
        "patch_size": sd[AUDIO + "patch_embed.proj.weight"].shape[-1], "window_size": window,
        "depths": [len(blocks[i]) for i in sorted(blocks)], "hidden_size": sd[AUDIO + "norm.weight"].shape[0],
        "num_attention_heads": [sd[table.format(i)].shape[1] for i in sorted(blocks)],
        "num_mel_bins": sd[AUDIO + "batch_norm.weight"].shape[0],
        "enable_fusion": any(k.startswith(AUDIO + "patch_embed.fusion_model.") for k in sd),
    }  # fmt: skip
    text = {
        "vocab_size": sd["text_model.embeddings.word_embeddings.weight"].shape[0], "hidden_size": hidden,
        "num_hidden_layers": len(text_layers), "num_attention_heads": hidden // 64,
        "intermediate_size": sd["text_model.encoder.layer.0.intermediate.dense.weight"].shape[0],
        "max_position_embeddings": sd["text_model.embeddings.position_embeddings.weight"].shape[0],
        "type_vocab_size": sd["text_model.embeddings.token_type_embeddings.weight"].shape[0],
    }  # fmt: skip
    return {"model_type": "clap", "audio_config": audio, "text_config": text,
            "projection_dim": sd["audio_projection.linear2.weight"].shape[0]}  # fmt: skip


def save_hf(directory: str | Path, config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write a directory ``transformers.ClapModel.from_pretrained`` and ``ClapFeatureExtractor.from_pretrained`` load:
    ``config.json``, ``preprocessor_config.json`` and ``model.safetensors`` (weights first, atomically)."""
    directory = Path(directory)
    model_json, processor_json = config_to_hf(config)
    directory.mkdir(parents=True, exist_ok=True)
    save_safetensors(from_clapkit(state_dict, config), directory / "model.safetensors", metadata={"format": "pt"})
    for name, data in (("config.json", model_json), ("preprocessor_config.json", processor_json)):
        text = json.dumps(data, indent=2) + "\n"
        atomic_write(directory / name, lambda tmp, text=text: Path(tmp).write_text(text))
    return directory
