"""Shared fixtures for the evaluation tests: a small random-weight model (seeded as the CLI seeds it, so in-process
and CLI runs share a fingerprint and the embedding cache) and a tiny generated dataset of real audio files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clapkit
from tests.audio_fixtures import noise, tone, write_audio
from tests.small_models import small_config

SR = 48000


@pytest.fixture(scope="session")
def small_model_name() -> str:
    config = small_config()
    clapkit.register_model(config)
    return config.name


@pytest.fixture(scope="session")
def small_model(small_model_name):
    torch.manual_seed(0)
    return clapkit.load(small_model_name, weights="random")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session")
def sound_folder(tmp_path_factory):
    """Folder-per-class dataset: ``beep/`` 3 tones, ``hiss/`` 3 noises (0.5 s, 48 kHz WAV) + a manifest with
    captions (``manifest.csv``) over the same files."""
    root = tmp_path_factory.mktemp("sounds")
    rows = []
    for k in range(3):
        write_audio(root / "beep" / f"b{k}.wav", tone(500.0 * (k + 1), seconds=0.5), SR)
        write_audio(root / "hiss" / f"h{k}.wav", noise(seconds=0.5, seed=k, amplitude=0.05 * (k + 1)), SR)
        rows += [f"beep/b{k}.wav,beep,a beep at {500 * (k + 1)} hertz", f"beep/b{k}.wav,beep,a pure tone",
                 f"hiss/h{k}.wav,hiss,white noise hissing", f"hiss/h{k}.wav,hiss,static number {k}"]
    (root / "manifest.csv").write_text("path,class,caption\n" + "\n".join(rows) + "\n")
    return root


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)
