"""A small fake sound corpus with the real corpus's layout (``debian/`` and ``synth/`` with meta.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

COLUMNS = ["path", "source_package", "source_path", "class", "keywords", "caption", "duration_s"]
DEBIAN_CLASSES = [f"thing{i:02d}_noise" for i in range(20)]
SYNTH_CLASSES = ["piano", "violin", "word_hello", "word_yes"]


def _write_set(root: Path, classes: list[str], per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for c_index, name in enumerate(classes):
        for i in range(per_class):
            relative = f"audio/{name}/{name}_{i}.flac"
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            t = np.arange(int(16000 * 0.6)) / 16000
            tone = np.sin(2 * np.pi * (200 + 90 * c_index) * t) * (0.3 + 0.05 * i)
            sf.write(path, (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32), 16000)
            rows.append({"path": relative, "source_package": "fake-sounds", "source_path": f"/usr/share/{name}{i}.ogg",
                         "class": name, "keywords": f"fake sounds {name.split('_')[0]} loud",
                         "caption": f"a man making a {name.replace('_', ' ')} sound", "duration_s": "0.6"})
    with (root / "meta.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="session")
def fake_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("soundcorpus")
    _write_set(root / "debian", DEBIAN_CLASSES, 6, 0)
    _write_set(root / "synth", SYNTH_CLASSES, 4, 1)
    return root
