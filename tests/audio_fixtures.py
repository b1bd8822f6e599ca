"""Synthetic test sounds and the one writer of audio fixture files: generated with numpy, no data files."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from tests.small_models import MICRO_RATE


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


def clip(seconds: float, seed: int, rate: int = MICRO_RATE) -> np.ndarray:
    """A reproducible test sound: a tone whose pitch depends on ``seed``, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    sine = 0.3 * np.sin(2 * np.pi * (200 + 150 * seed) * t)
    return (sine + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def write_audio(path: Path, signal: np.ndarray, rate: int, **options) -> Path:
    """``signal`` (frames or frames x channels) written to ``path`` (its folders made); the format follows the
    extension, ``options`` go to ``soundfile.write`` (``subtype=...``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, signal, rate, **options)
    return path


def wav_bytes(seconds: float = 1.0, seed: int = 7, rate: int = MICRO_RATE) -> bytes:
    """A :func:`clip` as the bytes of a WAV file (an upload)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, clip(seconds, seed, rate), rate, format="WAV")
    return buffer.getvalue()


def write_clips(
    folder: Path,
    count: int,
    *,
    seconds: Sequence[float] = (1.0, 2.5, 0.5, 4.0),
    ext: str = "wav",
    rate: int = MICRO_RATE,
    prefix: str = "clip",
) -> list[Path]:
    """``count`` files ``prefix-000.ext ...`` of varied durations (cycling through ``seconds``) in ``folder`` (made
    even when ``count`` is 0)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [write_audio(Path(folder) / f"{prefix}-{i:03d}.{ext}", clip(seconds[i % len(seconds)], i, rate), rate)
            for i in range(count)]
