"""Fixtures for the inference tests: a micro CLAP model (real architecture, tiny sizes) saved once per session,
and generated audio files. No data files, no downloads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import clapkit
from tests.small_models import small_config

MICRO_RATE = 16000


def micro_config() -> clapkit.ModelConfig:
    """HTSAT with 2 narrow stages on a 16 kHz, 16-mel front end (10 s clips), and the 2-layer 32-wide BERT tower."""
    base = small_config()
    frontend = dataclasses.replace(
        base.frontend,
        sample_rate=MICRO_RATE,
        clip_samples=10 * MICRO_RATE,
        n_fft=1024,
        win_length=1024,
        hop_length=640,
        n_mels=16,
        f_max=7600.0,
    )
    audio = dataclasses.replace(
        base.audio, spec_size=64, n_mels=16, depths=(1, 1), num_heads=(1, 1), htsat_embed_dim=8, embed_dim=16
    )
    return base.replace(name="micro-htsat-bert", frontend=frontend, audio=audio, joint_dim=32)


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory) -> Path:
    """The micro model saved as config.json + model.safetensors (loadable by path in subprocesses too)."""
    torch.manual_seed(0)
    config = micro_config()
    clapkit.register_model(config)
    directory = tmp_path_factory.mktemp("micro-model")
    clapkit.load(config.name, weights="random").save(directory)
    return directory


@pytest.fixture(scope="session")
def micro_model(micro_model_dir):
    return clapkit.load(micro_model_dir)


def clip(seconds: float, seed: int, rate: int = MICRO_RATE) -> np.ndarray:
    """A reproducible test sound: a tone whose pitch depends on ``seed``, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (200 + 150 * seed) * t)
    return (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def write_clips(
    folder: Path,
    count: int,
    *,
    seconds=(1.0, 2.5, 0.5, 4.0),
    ext: str = "wav",
    rate: int = MICRO_RATE,
    prefix: str = "clip",
) -> list[Path]:
    """``count`` files ``prefix-000.ext ...`` of varied durations (cycling through ``seconds``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}-{i:03d}.{ext}"
        sf.write(path, clip(seconds[i % len(seconds)], i, rate), rate)
        paths.append(path)
    return paths
