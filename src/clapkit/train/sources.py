"""Where training pairs come from: a dataset factory, manifests or folders (``ManifestDataset``), webdataset shards
(``ShardDataset``), and a seeded hold-out split of the training clips for validation.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clapkit.errors import ConfigError
from clapkit.train.config import DataConfig
from clapkit.train.manifests import write_manifest

log = logging.getLogger("clapkit.train")

HOLDOUT_MANIFEST = "heldout.jsonl"


def build_datasets(data: DataConfig, sample_rate: int, seed: int, rank: int, world_size: int,
                   output_dir: str | Path | None = None) -> tuple[Any, Any]:
    """(train, val) datasets; val is ``None`` when neither ``data.val``, a hold-out nor a factory gives one.
    With ``holdout_fraction`` the held-out clips are written to ``output_dir/heldout.jsonl`` (main process only)."""
    train = build_dataset(data, "train", sample_rate, seed, rank, world_size)
    if data.factory or data.val or not data.holdout_fraction:
        val = build_dataset(data, "val", sample_rate, seed, 0, 1) if (data.factory or data.val) else None
        return train, val
    return holdout_split(train, data.holdout_fraction, seed, sample_rate,
                         Path(output_dir) / HOLDOUT_MANIFEST if output_dir is not None and rank == 0 else None)


def build_dataset(data: DataConfig, split: str, sample_rate: int, seed: int, rank: int, world_size: int):
    """The dataset of ``split`` ("train"/"val"): from the factory, the manifest(s)/folder(s), or the shards."""
    if data.factory:
        module_name, _, attribute = data.factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"data.factory {data.factory!r}: cannot import ({exc}); use 'package.module:function'"
                              ) from None
        return factory(split=split, sample_rate=sample_rate, seed=seed, rank=rank, world_size=world_size,
                       **data.factory_args)
    path = data.train if split == "train" else data.val
    if not path:
        return None
    kind = data.format if data.format != "auto" else _detect_format(path)
    if kind == "shards":
        from clapkit.train.shards import ShardDataset

        options = {"sample_rate": sample_rate, "seed": seed, "rank": rank, "world_size": world_size,
                   "shuffle_buffer": data.shuffle_buffer if split == "train" else 1, "shuffle": split == "train"}
        return ShardDataset(path, **_accepted(ShardDataset, options))
    from clapkit.train.data import ManifestDataset

    parts = [ManifestDataset(p.strip(), sample_rate, seed=seed) for p in path.split(",") if p.strip()]
    if len(parts) == 1:
        return parts[0]
    return ManifestDataset([entry for part in parts for entry in part.entries], sample_rate, seed=seed)


def holdout_split(dataset, fraction: float, seed: int, sample_rate: int, manifest_path: Path | None = None):
    """Split a map-style dataset into (train, held out): a seeded random ``fraction`` of the clips is held out.
    Manifest datasets are split by entry, so a bad entry is replaced only by one of its own split."""
    from clapkit.train.batches import is_iterable

    if is_iterable(dataset):
        raise ConfigError("data.holdout_fraction needs a manifest or folder (map-style data), not shards; give "
                          "data.val instead")
    count = len(dataset)
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x401D])).permutation(count)
    held = int(round(count * fraction))
    if held < 2 or count - held < 2:
        raise ConfigError(f"holding out {fraction:.0%} of {count} clips leaves too few on one side")
    held_index, train_index = sorted(order[:held].tolist()), sorted(order[held:].tolist())
    entries = getattr(dataset, "entries", None)
    if entries is not None:
        from clapkit.train.data import ManifestDataset

        train = ManifestDataset([entries[i] for i in train_index], sample_rate, seed=seed)
        val = ManifestDataset([entries[i] for i in held_index], sample_rate, seed=seed)
        if manifest_path is not None:
            write_manifest([entries[i] for i in held_index], manifest_path)
    else:
        train = torch.utils.data.Subset(dataset, train_index)
        val = torch.utils.data.Subset(dataset, held_index)
    log.info("held out %d of %d clips for validation", held, count)
    return train, val


def _detect_format(path: str) -> str:
    first = Path(path.split(",")[0].strip())
    if not first.exists():
        raise ConfigError(f"training data {first} does not exist")
    if first.is_dir() and any(first.glob("*.tar")):
        return "shards"
    return "manifest" if first.is_file() else "folder"


def _accepted(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return options
    return {k: v for k, v in options.items() if k in parameters}
