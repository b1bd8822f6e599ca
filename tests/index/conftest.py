"""Fixtures for the index and service tests: a second micro model (the micro model itself is in
``tests/conftest.py``), a small generated sound library with one long recording, and an index built from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.audio_fixtures import write_audio, write_clips
from tests.small_models import MICRO_RATE, micro_config, save_random_model

LONG_SECONDS = 25.0  # longer than the micro model's 10 s clip: the file gets a timeline


def unit_rows(count: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered_rows(count: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around ``clusters`` random centres (cosine to the centre about 0.7), like a sound library."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(clusters, dim, seed + 1)
    x = centres[rng.integers(0, clusters, count)] + rng.standard_normal((count, dim)).astype(np.float32) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_long_recording(path: Path, seconds: float = LONG_SECONDS) -> Path:
    """Quiet noise with a loud tone burst from 12 s to 16 s."""
    rate = MICRO_RATE
    signal = 0.02 * np.random.default_rng(3).standard_normal(int(seconds * rate)).astype(np.float32)
    t = np.arange(4 * rate) / rate
    signal[12 * rate : 16 * rate] += (0.5 * np.sin(2 * np.pi * 880 * t)).astype(np.float32)
    return write_audio(path, signal, rate)


def make_library(folder: Path, count: int = 6) -> Path:
    """``count`` short clips in two sub-folders plus ``long/recording.wav`` (25 s)."""
    write_clips(folder / "animals", count // 2, prefix="bark")
    write_clips(folder / "weather", count - count // 2, prefix="rain", seconds=(1.5, 3.0))
    write_long_recording(folder / "long" / "recording.wav")
    return folder


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    """The same architecture with other random weights: a different model."""
    return save_random_model(micro_config(), tmp_path_factory.mktemp("index-other-model"), seed=1)


@pytest.fixture(scope="session")
def built_library(tmp_path_factory, micro_model, micro_model_dir) -> tuple[Path, Path]:
    """(library folder, index folder) built once; tests that change it work on a copy (:func:`copy_of`)."""
    from clapkit.index import build_index

    root = tmp_path_factory.mktemp("index-session")
    library = make_library(root / "library")
    build_index(micro_model, [library], root / "index", model_source=str(micro_model_dir), progress=False)
    return library, root / "index"
