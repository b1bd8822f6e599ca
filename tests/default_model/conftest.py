"""A small made-up corpus v2 (``meta.csv`` + audio, docs/corpus.md) with real AudioSet ontology labels."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.audio_fixtures import write_audio

COLUMNS = ["clip_id", "path", "source_package", "source_path", "licence", "labels", "ontology_ids", "top_category",
           "keywords", "evidence", "caption", "duration_s", "sha1"]
# (ontology name, top-level category, clips)
CLASSES = [("Bark", "Animal", 8), ("Meow", "Animal", 4), ("Rain", "Natural sounds", 8),
           ("Thunder", "Natural sounds", 4), ("Doorbell", "Sounds of things", 4),
           ("Cough", "Human sounds", 4), ("Piano", "Music", 3), ("Wind", "Natural sounds", 2)]


def write_corpus(root: Path, seconds: float = 0.5, rate: int = 16000) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for c_index, (name, category, count) in enumerate(CLASSES):
        for i in range(count):
            relative = f"audio/{name.lower()}_{i}.flac"
            t = np.arange(int(rate * seconds)) / rate
            tone = np.sin(2 * np.pi * (150 + 110 * c_index) * t) * (0.3 + 0.04 * i)
            write_audio(root / relative, (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32), rate)
            labels = name if i % 3 else f"{name};Wind" if name != "Wind" else name
            rows.append({"clip_id": f"fake/{name}/{i}", "path": relative, "source_package": f"fake-pkg{i % 2}",
                         "source_path": f"/usr/share/fake/{name}{i}.ogg", "licence": "CC0-1.0", "labels": labels,
                         "ontology_ids": "", "top_category": category, "keywords": name.lower(), "evidence": "test",
                         "caption": f"A {name.lower()} sound number {i % 4}.", "duration_s": str(seconds),
                         "sha1": f"{c_index:04d}{i:04d}"})
    with (root / "meta.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="session")
def fake_corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus_v2"))
