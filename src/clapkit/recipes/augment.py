"""Training-time audio augmentation and sampling of the default-model recipe (numpy waveforms at 44.1 kHz).

Real recordings differ from game sound effects in bandwidth (phones and datasets at 8-16 kHz), level, background
and room; ``augment_view`` imitates that: a random crop, optionally a synthetic room (reverberation), a bandwidth
limit (resampled to 8-22 kHz and back), a foreground gain against background noise (the front end peak-normalises,
so gain alone would change nothing) and noise mixed in at 5-30 dB SNR: a background clip of the corpus or synthetic
coloured (white/pink/brown) noise. ``mix_pair`` makes
two-source mixtures, captioned by ``mixture_caption`` ("a dog barks while rain falls"). ``balanced_weights``:
sampling probabilities under which every class is drawn equally often (or in proportion to a power of its size),
and within a class every source package.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

BANDWIDTH_RATES = (8000, 11025, 16000, 22050)  # the sample rates a view is squeezed through
P_BANDWIDTH, P_NOISE = 0.5, 0.5
P_ROOM = 0.4  # with ``room``: the share of views heard in a synthetic room
ROOM_RT60 = (0.15, 0.9)  # seconds: a small bathroom to a living room or classroom
ROOM_WET = (0.1, 0.8)  # reverberant energy relative to the dry sound
SNR_DB = (5.0, 30.0)
GAIN_DB = (-6.0, 6.0)
MIX_GAIN_DB = (-6.0, 6.0)


def bandwidth_limit(x: np.ndarray, sample_rate: int, rate: int) -> np.ndarray:
    """Resample to ``rate`` and back: what a recording made at ``rate`` keeps (nothing above ``rate / 2``)."""
    import soxr

    if rate >= sample_rate:
        return np.asarray(x, np.float32)
    low = soxr.resample(np.asarray(x, np.float32), sample_rate, rate, quality="HQ")
    back = soxr.resample(low, rate, sample_rate, quality="HQ").astype(np.float32)
    out = np.zeros(len(x), np.float32)
    out[: min(len(x), len(back))] = back[: len(x)]
    return out


def gain(x: np.ndarray, db: float) -> np.ndarray:
    return (np.asarray(x, np.float32) * np.float32(10 ** (db / 20))).astype(np.float32)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power falling as ``1 / f**exponent`` (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return (noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + noise`` scaled so the signal-to-noise ratio is ``snr_db`` (noise tiled or cut to the length)."""
    noise = np.resize(np.asarray(noise, np.float32), len(signal))
    s, n = _rms(signal), _rms(noise)
    if s == 0 or n == 0:
        return np.asarray(signal, np.float32)
    return (signal + noise * np.float32(s / (n * 10 ** (snr_db / 20)))).astype(np.float32)


def in_room(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """``x`` heard in a synthetic room (``harvest.effects.room_impulse_response``: direct sound, early reflections,
    a decaying diffuse tail), RT60 and wet/dry drawn from ``ROOM_RT60`` / ``ROOM_WET``; same length, same peak."""
    import random

    from scipy import signal

    from clapkit.harvest.effects import room_impulse_response

    rt60, wet = float(rng.uniform(*ROOM_RT60)), float(rng.uniform(*ROOM_WET))
    h = room_impulse_response(rt60, random.Random(int(rng.integers(2**62))), sample_rate=sample_rate)
    x = np.asarray(x, np.float32)
    tail = signal.fftconvolve(x, h[1:])[: len(x)]  # everything after the direct sound
    y = x + tail * np.float32(wet * _rms(x) / max(_rms(tail), 1e-12))
    peak = float(np.max(np.abs(x))) or 1.0
    return (y * np.float32(peak / (float(np.max(np.abs(y))) or 1.0))).astype(np.float32), rt60, wet


def crop(x: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= samples:
        return np.asarray(x, np.float32)
    start = int(rng.integers(0, len(x) - samples + 1))
    return np.asarray(x[start : start + samples], np.float32)


def augment_view(x: np.ndarray, sample_rate: int, rng: np.random.Generator, crop_samples: int,
                 backgrounds: Sequence[np.ndarray] = (), room: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """One augmented training view of a waveform and what was done to it (``room``: with p = ``P_ROOM`` first
    heard in a synthetic room; off, the random draws are exactly those of a view without the option)."""
    view = crop(x, crop_samples, rng)
    done: dict[str, Any] = {}
    if room and rng.random() < P_ROOM:
        view, done["rt60"], done["wet"] = in_room(view, sample_rate, rng)
    if rng.random() < P_BANDWIDTH:
        done["rate"] = int(rng.choice(BANDWIDTH_RATES))
        view = bandwidth_limit(view, sample_rate, done["rate"])
    if rng.random() < P_NOISE:
        done["gain_db"] = float(rng.uniform(*GAIN_DB))
        done["snr_db"] = float(rng.uniform(*SNR_DB))
        if len(backgrounds) and rng.random() < 0.5:
            done["noise"] = "background"
            noise = crop(backgrounds[int(rng.integers(len(backgrounds)))], len(view), rng)
        else:
            done["noise"] = float(rng.choice([0.0, 1.0, 2.0]))
            noise = coloured_noise(len(view), done["noise"], rng)
        view = mix_at_snr(gain(view, done["gain_db"]), noise, done["snr_db"])
    return view, done


def mix_pair(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, crop_samples: int) -> np.ndarray:
    """Two sources at a random relative level (+-6 dB), the shorter one starting at a random offset."""
    a, b = crop(a, crop_samples, rng), crop(b, crop_samples, rng)
    if len(a) < len(b):
        a, b = b, a
    offset = int(rng.integers(0, len(a) - len(b) + 1))
    scale = 10 ** (rng.uniform(*MIX_GAIN_DB) / 20) * _rms(a) / max(_rms(b), 1e-12)
    out = a.copy()
    out[offset : offset + len(b)] += (b * scale).astype(np.float32)
    return out


def _clause(caption: str) -> str:
    return caption.strip().rstrip(".!").strip()


def mixture_caption(first: str, second: str) -> str:
    """``"A dog barks."`` + ``"Rain falls."`` -> ``"A dog barks while rain falls."``"""
    a, b = _clause(first), _clause(second)
    b = b[:1].lower() + b[1:] if b[:2] != b[:2].upper() else b  # keep acronyms ("UFO") as they are
    return f"{a} while {b}."


def balanced_weights(classes: Sequence[str], packages: Sequence[str], power: float = 0.0) -> np.ndarray:
    """Per-clip sampling probabilities: classes equally likely (``power`` 0; a class of n clips drawn in proportion
    to ``n ** power`` otherwise: 0.5 is square-root sampling, 1 as often as its clips), packages equally likely
    within a class, clips equally likely within a (class, package) group."""
    groups: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c, p in zip(classes, packages):
        groups[c][p] += 1
    share = {c: sum(g.values()) ** power for c, g in groups.items()}
    weights = np.array([share[c] / (len(groups[c]) * groups[c][p]) for c, p in zip(classes, packages)])
    return weights / weights.sum()
