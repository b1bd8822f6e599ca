"""Generated audio corpora for the data tests: short noise clips (distinct per item) written as WAV files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.audio_fixtures import noise, write_audio

RATE = 16000


def write_clip(path: Path, seed: int, seconds: float = 0.2, rate: int = RATE) -> np.ndarray:
    x = noise(seconds, rate, amplitude=0.2, seed=seed)
    write_audio(path, x, rate)
    return x


@pytest.fixture
def corpus(tmp_path):
    """``make(n)`` -> (manifest path, ids): n good clips with 1-2 captions, keywords and rewrites, as JSONL."""

    def make(n: int, name: str = "manifest.jsonl") -> tuple[Path, list[str]]:
        rows = []
        for i in range(n):
            write_clip(tmp_path / "audio" / f"clip{i:03d}.wav", seed=i)
            captions = [f"caption {i}"] + ([f"second caption {i}"] if i % 2 else [])
            rows.append({"id": f"clip{i:03d}", "audio": f"audio/clip{i:03d}.wav", "captions": captions,
                         "keywords": [f"tag{i}"], "rewrites": [f"rewrite {i}"]})
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path, [r["id"] for r in rows]

    return make
