"""The registry of evaluation datasets: name -> adapter, expected layout and default splits, built once.

Adding a dataset adapter: write ``load_NAME(root, split=..., allow_missing=..., **_)`` returning an ``EvalDataset``
(``clapkit.eval.layouts`` has the standard ones) with its ``NAME_LAYOUT`` text, and add one ``DatasetSpec`` to
``DATASETS`` below (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clapkit.eval import layouts
from clapkit.eval.datasets import (
    CSV_LAYOUT,
    FOLDER_LAYOUT,
    SOUNDCORPUS_LAYOUT,
    DatasetError,
    EvalDataset,
    load_csv_manifest,
    load_folder_per_class,
    load_sound_corpus,
)


@dataclass(frozen=True)
class DatasetSpec:
    loader: Callable[..., EvalDataset]
    layout: str
    default_split: str | None = None  # for zero-shot / retrieval
    probe_split: str | None = None  # the split holding train + test clips for the linear probe


DATASETS: dict[str, DatasetSpec] = {
    "esc50": DatasetSpec(layouts.load_esc50, layouts.ESC50_LAYOUT),
    "urbansound8k": DatasetSpec(layouts.load_urbansound8k, layouts.US8K_LAYOUT),
    "clotho": DatasetSpec(layouts.load_clotho, layouts.CLOTHO_LAYOUT, "evaluation"),
    "audiocaps": DatasetSpec(layouts.load_audiocaps, layouts.AUDIOCAPS_LAYOUT, "test"),
    "fsd50k": DatasetSpec(layouts.load_fsd50k, layouts.FSD50K_LAYOUT, "eval", "all"),
    "gtzan": DatasetSpec(layouts.load_gtzan, layouts.GTZAN_LAYOUT),
    "folder": DatasetSpec(load_folder_per_class, FOLDER_LAYOUT),
    "csv": DatasetSpec(load_csv_manifest, CSV_LAYOUT),
    "soundcorpus": DatasetSpec(load_sound_corpus, SOUNDCORPUS_LAYOUT),
}

ALIASES = {"esc-50": "esc50", "us8k": "urbansound8k", "clotho_v2": "clotho", "clothov2": "clotho",
           "folder-per-class": "folder", "manifest": "csv"}


def dataset_specs() -> dict[str, DatasetSpec]:
    """The registry (a copy: changing it does not change ``DATASETS``)."""
    return dict(DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[key]


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def load_dataset(name: str, root: str | Path, split: str | None = None, **options: Any) -> EvalDataset:
    """Load a dataset by name from ``root``. ``split`` defaults to the split the papers evaluate on.

    ``options`` go to the adapter: ``allow_missing``, ``num_folds``, and for ``csv`` the column names.
    """
    spec = dataset_spec(name)
    chosen = split or spec.default_split
    if chosen is not None:
        options["split"] = chosen
    return spec.loader(root, **options)
