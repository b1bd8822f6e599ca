"""Channel and environment effects applied to real clips (``harvest.derive``) and pure synthetic noises
(``harvest.synth.render_noise``): synthetic room impulse responses, echoes, radio band-limiting, static, distortion,
mains hum and added white/pink noise. Every function takes mono float audio at 48 kHz and a ``random.Random`` and
returns new audio plus a short description of the parameters drawn (kept as the clip's evidence)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import signal

SAMPLE_RATE = 48000


def _np_rng(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(63))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) or 1e-9


def _peak_normalise(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    top = float(np.max(np.abs(x))) or 1.0
    return (x * (peak / top)).astype(np.float32)


def room_impulse_response(rt60: float, rng: random.Random, early: int = 8, early_ms: float = 80.0,
                          damping_hz: float = 6000.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic impulse response: the direct sound, ``early`` discrete reflections within ``early_ms`` and a
    tail of noise decaying by 60 dB in ``rt60`` seconds, low-passed at ``damping_hz`` (air and wall absorption)."""
    gen = _np_rng(rng)
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    tail = gen.standard_normal(n) * np.exp(-6.91 * t / rt60)
    sos = signal.butter(2, damping_hz, "low", fs=sample_rate, output="sos")
    tail = signal.sosfilt(sos, tail)
    onset = int(0.005 * sample_rate)
    tail[:onset] *= np.linspace(0.0, 1.0, onset)  # the diffuse tail builds up after the direct sound
    h = tail / (np.sqrt(np.sum(tail**2)) or 1.0) * 0.5
    h[0] += 1.0
    for _ in range(early):
        at = int(gen.uniform(0.003, early_ms / 1000) * sample_rate)
        h[at] += gen.uniform(0.2, 0.6) * gen.choice([-1.0, 1.0])
    return h


def _reverb(x: np.ndarray, rng: random.Random, rt60: tuple[float, float], wet: tuple[float, float],
            damping: float) -> tuple[np.ndarray, str]:
    seconds = rng.uniform(*rt60)
    h = room_impulse_response(seconds, rng, damping_hz=damping)
    wet_signal = signal.fftconvolve(x, h)[: len(x) + int(min(seconds, 3.0) * SAMPLE_RATE)]
    dry = np.pad(x, (0, len(wet_signal) - len(x)))
    ratio = rng.uniform(*wet)
    y = dry + wet_signal * (ratio * _rms(x) / _rms(wet_signal[: len(x)]))
    return _peak_normalise(y), f"RT60 {seconds:.1f} s, wet/dry {ratio:.1f}"


def hall(x, rng):
    return _reverb(x, rng, (1.6, 2.6), (1.0, 1.6), 5000.0)


def reverb(x, rng):
    return _reverb(x, rng, (3.0, 5.0), (1.8, 2.8), 7000.0)


def small_room(x, rng):
    return _reverb(x, rng, (0.25, 0.5), (0.5, 0.8), 8000.0)


def echo(x, rng):
    delay = rng.uniform(0.25, 0.55)
    gain = rng.uniform(0.4, 0.6)
    step = int(delay * SAMPLE_RATE)
    repeats = 4
    y = np.pad(x, (0, step * repeats)).astype(np.float64)
    sos = signal.butter(2, 4000, "low", fs=SAMPLE_RATE, output="sos")
    repeat = x.astype(np.float64)
    for k in range(1, repeats + 1):
        repeat = signal.sosfilt(sos, repeat) * gain
        y[k * step : k * step + len(x)] += repeat
    return _peak_normalise(y), f"{repeats} repeats every {delay:.2f} s, gain {gain:.2f}"


def _band(x: np.ndarray, low: float, high: float) -> np.ndarray:
    sos = signal.butter(4, [low, high], "bandpass", fs=SAMPLE_RATE, output="sos")
    return signal.sosfilt(sos, x)


def radio(x, rng):
    low, high = rng.uniform(250, 400), rng.uniform(3000, 4500)
    y = _band(x, low, high)
    y = np.tanh(3 * y / (np.max(np.abs(y)) or 1.0))
    y = y + _np_rng(rng).standard_normal(len(y)) * 0.02 * _rms(y)
    return _peak_normalise(y), f"band {low:.0f}-{high:.0f} Hz, compressed"


def crackle(n: int, rng: random.Random) -> np.ndarray:
    gen = _np_rng(rng)
    hiss = _band(gen.standard_normal(n), 200, 6000)
    bursts = np.repeat(gen.uniform(0.3, 1.0, n // 2400 + 1), 2400)[:n]  # the hiss swells and fades every 50 ms
    clicks = np.zeros(n)
    count = int(n / SAMPLE_RATE * rng.uniform(30, 80))
    clicks[gen.integers(0, n, count)] = gen.uniform(-1, 1, count) * 8
    return hiss * bursts + _band(clicks, 500, 8000)


def static(x, rng):
    snr = rng.uniform(0.0, 6.0)
    noise = crackle(len(x), rng)
    y = _band(x, 300, 5000) + noise * (_rms(x) / _rms(noise) * 10 ** (-snr / 20))
    return _peak_normalise(y), f"radio static at {snr:.0f} dB SNR"


def distortion(x, rng):
    drive = rng.uniform(8.0, 20.0)
    y = np.tanh(drive * x / (np.max(np.abs(x)) or 1.0))
    y = np.clip(y * 1.3, -0.9, 0.9)
    return _peak_normalise(y), f"overdriven x{drive:.0f} and clipped"


def hum_tone(n: int, rng: random.Random) -> tuple[np.ndarray, int]:
    mains = rng.choice([50, 60])
    t = np.arange(n) / SAMPLE_RATE
    tone = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3))
               for k in range(1, 8))
    return np.asarray(tone), mains


def mains_hum(x, rng):
    tone, mains = hum_tone(len(x), rng)
    level = rng.uniform(-9.0, -3.0)
    y = x + tone * (_rms(x) / _rms(tone) * 10 ** (level / 20))
    return _peak_normalise(y), f"{mains} Hz hum at {level:.0f} dB"


def pink(n: int, rng: random.Random) -> np.ndarray:
    """Pink (1/f power) noise of ``n`` samples, unit RMS."""
    spectrum = np.fft.rfft(_np_rng(rng).standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum /= np.sqrt(np.maximum(f, 20.0))
    y = np.fft.irfft(spectrum, n)
    return y / _rms(y)


def _added(x: np.ndarray, noise: np.ndarray, rng: random.Random, what: str) -> tuple[np.ndarray, str]:
    snr = rng.uniform(0.0, 8.0)
    y = x + noise * (_rms(x) / _rms(noise) * 10 ** (-snr / 20))
    return _peak_normalise(y), f"{what} at {snr:.0f} dB SNR"


def white_noise(x, rng):
    return _added(x, _np_rng(rng).standard_normal(len(x)), rng, "white noise")


def pink_noise(x, rng):
    return _added(x, pink(len(x), rng), rng, "pink noise")


@dataclass(frozen=True)
class Effect:
    """``label``: the AudioSet class it adds; ``phrases``: how a caption says it; ``sources``: top-level categories
    of the clips it may be applied to (indoor acoustics are not applied to weather)."""

    name: str
    label: str
    apply: Callable[[np.ndarray, random.Random], tuple[np.ndarray, str]]
    phrases: tuple[str, ...]
    sources: frozenset[str]


_ANY = frozenset({"Animal", "Human sounds", "Music", "Sounds of things", "Source-ambiguous sounds", "Natural sounds"})
_INDOOR = _ANY - {"Natural sounds"}
EFFECTS = (
    Effect("hall", "Inside, large room or hall", hall,
           ("heard in a large hall", "in a large reverberant hall", "echoing around a big hall"), _INDOOR),
    Effect("reverb", "Reverberation", reverb,
           ("with heavy reverberation", "with a long reverberant tail", "in a very reverberant space"), _INDOOR),
    Effect("room", "Inside, small room", small_room,
           ("in a small room", "recorded indoors in a small room", "in a small boxy room"), _INDOOR),
    Effect("echo", "Echo", echo, ("with an echo", "echoing back several times", "followed by its echo"), _INDOOR),
    Effect("radio", "Radio", radio, ("heard over the radio", "played on a radio", "on a small radio"), _ANY),
    Effect("static", "Static", static,
           ("through crackling static", "with radio static", "buried in static"), _ANY),
    Effect("distortion", "Distortion", distortion,
           ("heavily distorted", "through a distorted speaker", "overdriven and distorted"), _ANY),
    Effect("hum", "Mains hum", mains_hum,
           ("over a mains hum", "with an electrical hum", "over a low buzzing hum"), _ANY),
    Effect("white", "White noise", white_noise,
           ("with white noise", "under a hiss of white noise", "against white noise"), _ANY),
    Effect("pink", "Pink noise", pink_noise,
           ("with pink noise", "against a pink noise background", "under pink noise"), _ANY),
)
