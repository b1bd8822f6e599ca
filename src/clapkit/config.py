"""Configs are data: frozen dataclasses, saved as JSON next to every checkpoint.

A ``ModelConfig`` says everything needed to rebuild a CLAP model and its input pipeline: the audio front end
(how a waveform becomes a log-mel), the audio tower, the text tower, the projection heads and the joint size.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clapkit.errors import ConfigError
from clapkit.files import write_text_atomic


@dataclass(frozen=True)
class AudioFrontendConfig:
    """Waveform -> log-mel, parameterised to reproduce each checkpoint family.

    ``mel_scale``/``mel_norm``: LAION's non-fusion models use librosa's Slaney mel with Slaney area norm (torchlibrosa),
    LAION's fusion input and HF's processor use HTK mel without norm (torchaudio ``MelSpectrogram(norm=None)``).
    ``filterbank_sample_rate``/``filterbank_f_max``: set only to reproduce a reference whose filterbank was built for
    another rate than the audio's (MS-CLAP 2023); ``None`` means the audio rate / ``f_max``.
    """

    sample_rate: int = 48000
    clip_samples: int = 480000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 480
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 14000.0
    mel_scale: str = "slaney"  # "slaney" | "htk"
    mel_norm: str | None = "slaney"  # "slaney" | None
    center: bool = True
    pad_mode: str = "reflect"
    power: float = 2.0
    amin: float = 1e-10
    ref: float = 1.0
    top_db: float | None = None
    int16_roundtrip: bool = True  # LAION quantises waveforms to int16 and back before the front end
    truncation: str = "rand_trunc"  # "rand_trunc" | "fusion"  (what to do with audio longer than clip_samples)
    filling: str = "repeatpad"  # "repeatpad" | "pad" | "repeat"  (what to do with shorter audio)
    fusion_mel_scale: str = "htk"  # the fused (4-channel) input uses this mel variant (LAION: torchaudio, HTK)
    fusion_mel_norm: str | None = None
    filterbank_sample_rate: int | None = None
    filterbank_f_max: float | None = None
    # the fused global view shrinks the whole mel with bilinear interpolation; LAION (torchvision Resize) antialiases,
    # HF's ClapFeatureExtractor (F.interpolate) does not
    fusion_resize_antialias: bool = True
    # "db": 10 log10(max(mel, amin)) - ref (every public CLAP); "log10_1p": log10(1 + log_gain * mel) * log_scale
    # (aiSFX's compression, used by the clapkit default model)
    scaling: str = "db"
    log_gain: float = 10000.0
    log_scale: float = 1.0
    peak_normalize: bool = False  # divide each whole waveform by its peak before cropping (aiSFX)
    quirks: tuple[str, ...] = ()  # human-readable notes on reference behaviour reproduced here

    @property
    def chunk_frames(self) -> int:
        """Frames of one clip-length chunk (LAION: 480000 // 480 + 1 = 1001)."""
        return self.clip_samples // self.hop_length + 1

    @property
    def clip_seconds(self) -> float:
        return self.clip_samples / self.sample_rate


@dataclass(frozen=True)
class AudioTowerConfig:
    """The audio encoder. ``kind``: "htsat" | "pann" | "sfxcnn"; ``variant``: htsat tiny/base/large, pann
    cnn6/cnn10/cnn14, sfxcnn cnn8 (aiSFX's 4-block CNN: max pooling, mean over mel bins then max over time)."""

    kind: str = "htsat"
    variant: str = "tiny"
    embed_dim: int = 768  # width of the tower's pooled output (HTSAT-tiny 768, base 1024, CNN14 2048, ...)
    enable_fusion: bool = False
    fusion_type: str = "aff_2d"  # LAION's released fusion models use aff_2d
    # HTSAT geometry (LAION): spec_size 256, patch 4, window 8, freq_ratio = spec_size // n_mels
    spec_size: int = 256
    patch_size: int = 4
    window_size: int = 8
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    htsat_embed_dim: int = 96  # patch-embedding width (tiny 96, base 128, large 256)
    n_mels: int = 64
    num_classes: int = 527  # HTSAT's tscam/head and PANN's fc_audioset (kept for checkpoint round trips)
    spec_augment: bool = True  # SpecAugment in training mode only
    drop_path_rate: float = 0.1
    # HTSAT input longer than spec_size * freq_ratio frames: "error", or "msclap_crops" (MS-CLAP 2023: evaluation
    # averages the pooled embeddings of 689-frame crops taken every 344 frames; training takes one random crop)
    long_input: str = "error"


@dataclass(frozen=True)
class TextTowerConfig:
    """The text encoder.

    ``kind``: "roberta" | "bert" | "gpt2" | "clip" | "minilm".  ``hf_config`` holds the transformers config as a dict
    (built locally, never fetched); ``pooling``: "pooler" (LAION RoBERTa/BERT), "cls", "last_token" (MS-CLAP GPT-2),
    "mean" (MiniLM), "eot" (CLIP: the position of the highest token id).
    """

    kind: str = "roberta"
    hf_config: dict[str, Any] = field(default_factory=dict)
    pooling: str = "pooler"
    context_length: int = 77
    width: int = 768
    tokenizer: str = "roberta"  # which tokenizer family the tower expects


@dataclass(frozen=True)
class HeadConfig:
    """Projection head. ``kind``: "laion_mlp" (Linear, ReLU, Linear), "ms" (Linear, GELU, Linear, Dropout, residual,
    LayerNorm), "linear" (one Linear) or "identity" (the tower's space itself; input and joint dimensions must match).
    ``centre``: the head L2-normalises its output and subtracts a stored vector (buffer ``centre``, e.g. the mean
    embedding of a large caption set: a hubness correction); the embedding is normalised again afterwards."""

    kind: str = "laion_mlp"
    activation: str = "relu"
    dropout: float = 0.5
    centre: bool = False


@dataclass(frozen=True)
class CaptionConfig:
    """A captioning head (MS-CLAP's clapcap): the projected audio embedding -> ``prefix_length`` GPT-2 input
    embeddings (the "prefix"), from which the GPT-2 decoder described by the model's ``text`` config writes a caption.

    ``mapper``: "transformer" (a linear map to ``clip_length`` tokens, concatenated with ``prefix_length`` learned
    tokens, through ``num_layers`` self-attention layers of ``num_heads`` heads; the learned tokens' outputs are the
    prefix) or "mlp" (Linear -> Tanh -> Linear of width ``hidden``). ``hidden``: the mapper's MLP width (transformer:
    each layer's feed-forward). ``normalize_prefix``: L2-normalise the audio embedding first. ``stop_text``: the text
    whose first token ends a caption (msclap: ' <|endoftext|>', whose first GPT-2 token is the space, id 220).
    """

    mapper: str = "transformer"
    prefix_length: int = 40
    clip_length: int = 40
    prefix_dim: int = 1024
    num_layers: int = 8
    num_heads: int = 8
    attention_bias: bool = False
    hidden: int = 1536
    normalize_prefix: bool = True
    stop_text: str = " <|endoftext|>"


@dataclass(frozen=True)
class ModelConfig:
    name: str
    family: str = "laion"  # "laion" | "msclap" | "hf" | "clapkit"
    frontend: AudioFrontendConfig = field(default_factory=AudioFrontendConfig)
    audio: AudioTowerConfig = field(default_factory=AudioTowerConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    joint_dim: int = 512
    text_head: HeadConfig | None = None  # the text side's head when it differs from ``head`` (None: the same)
    separate_logit_scales: bool = True  # LAION: logit_scale_a and logit_scale_t; MS-CLAP: one logit_scale
    logit_bias: bool = False  # a learnable logit bias (trained with the sigmoid loss; embeddings never use it)
    description: str = ""
    # set for captioning models (MS-CLAP clapcap): ``text`` then describes the GPT-2 decoder, not a text encoder
    caption: CaptionConfig | None = None

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["caption"] is None:  # CLAP models' configs (and their identity hashes) stay as they were
            del data["caption"]
        return data

    def to_json(self, path: str | Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return build_dataclass(cls, data, "model config", coerce=False)

    @classmethod
    def from_json(cls, path: str | Path) -> ModelConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


def build_dataclass(cls: type, data: Any, what: str, *, coerce: bool = True) -> Any:
    """Build a frozen dataclass from a mapping, naming any unknown key: the one config builder (model configs here,
    training configs in ``clapkit.train.config``).

    Nested dataclass fields are built from nested mappings and tuple fields from lists (both from the type hints,
    ``typing.get_origin``). ``coerce=True`` also converts scalars to the annotated type (YAML and command-line
    overrides give ``"1e-4"`` or ``"true"`` as strings) and raises naming the key when a value does not fit;
    ``coerce=False`` (JSON model configs) keeps scalars as written.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a mapping (a JSON object), got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{what} has unknown keys {unknown}; known keys: {sorted(names)}")
    kwargs = {key: _coerce(value, hints[key], f"{what}.{key}", coerce) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def _coerce(value: Any, hint: Any, what: str, scalars: bool) -> Any:
    """``value`` as the annotated type: nested sections and tuples always; with ``scalars`` also numbers from strings
    (YAML reads ``1e-4`` as a string), booleans from words, ``None`` where optional."""
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, what, coerce=scalars)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (scalars and isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        options = [a for a in args if a is not type(None)]
        return _coerce(value, options[0], what, scalars)
    if not scalars:
        return tuple(value) if origin is tuple and isinstance(value, list) else value
    try:
        if hint is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                return value.lower() in ("true", "yes", "1", "on")
            if isinstance(value, bool):
                return value
            raise ValueError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(float(value)) if isinstance(value, str) else int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
        if origin is tuple:
            items = _parse_list(value)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], what, scalars) for v in items)
            if len(items) != len(args):
                raise ValueError
            return tuple(_coerce(v, a, what, scalars) for v, a in zip(items, args, strict=True))
        if origin is dict:
            if not isinstance(value, dict):
                raise ValueError
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: expected {_type_name(hint)}, got {value!r}") from None
    return value


def _parse_list(value: Any) -> list:
    if isinstance(value, str):
        import yaml  # a dependency of transformers: always installed

        value = yaml.safe_load(value if value.strip().startswith("[") else f"[{value}]")
    if not isinstance(value, (list, tuple)):
        raise ValueError
    return list(value)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
