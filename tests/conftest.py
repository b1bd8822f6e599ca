"""Shared fixtures: short synthetic audio generated with numpy (no data files)."""

from __future__ import annotations

import numpy as np
import pytest


def tone(
    frequency: float = 440.0, seconds: float = 1.0, sample_rate: int = 48000, amplitude: float = 0.5
) -> np.ndarray:
    """A sine tone, float32 mono."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def noise(seconds: float = 1.0, sample_rate: int = 48000, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    """Gaussian white noise, float32 mono, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(int(round(seconds * sample_rate)))).astype(np.float32)


def clicks(
    seconds: float = 1.0, sample_rate: int = 48000, every_seconds: float = 0.25, amplitude: float = 0.9
) -> np.ndarray:
    """Single-sample clicks every ``every_seconds`` on silence, float32 mono."""
    x = np.zeros(int(round(seconds * sample_rate)), dtype=np.float32)
    x[:: max(1, int(round(every_seconds * sample_rate)))] = amplitude
    return x


@pytest.fixture
def make_tone():
    return tone


@pytest.fixture
def make_noise():
    return noise


@pytest.fixture
def make_clicks():
    return clicks
