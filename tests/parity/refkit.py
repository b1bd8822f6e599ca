"""What every parity reference builder shares: test signals, captions, weight perturbation, batch-norm calibration.

Runs in the reference environment (imports torch and numpy only, never clapkit). The point of perturbing: a model
straight from its initialiser has LayerNorm weights 1 and biases 0 (HF also zeroes every bias and the relative-
position tables), so a checkpoint reader that swapped two norms or two biases would give the same numbers; a batch
norm left at mean 0 / variance 1 lets a randomly initialised CNN forget its input. After :func:`perturb` and
:func:`calibrate_batch_norms` no learned tensor has a value another tensor of its shape also has, and the embeddings
of two different clips differ by far more than the parity tolerance (the tests assert it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import torch

CAPTIONS = ["A dog barks in the distance.", "Wow! Rain falls on a metal roof!", "A man speaks", "Birds chirp at night."]
# torchlibrosa's STFT/mel weights are parameters in laion_clap and msclap, but fixed functions of the front-end
# settings, which clapkit computes itself: they stay as built. Masks and index tensors are buffers (not touched).
FRONT_END = re.compile(r"(^|\.)(spectrogram_extractor|logmel_extractor)\.")


def signal(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Real-ish test audio: a chirp, two tones with an envelope, pink-ish noise and a few clicks (deterministic)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    f0, f1 = rng.uniform(80, 600), rng.uniform(2000, 9000)
    chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    tones = sum(np.sin(2 * np.pi * rng.uniform(150, 4000) * t + rng.uniform(0, 6)) for _ in range(2))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(0.3, 3) * t))
    noise = np.cumsum(rng.standard_normal(n)) * 0.002
    noise = noise - np.convolve(noise, np.ones(512) / 512, mode="same") + 0.03 * rng.standard_normal(n)
    x = rng.uniform(0.1, 0.4) * chirp + 0.15 * tones * envelope + noise
    x[rng.integers(0, n, size=max(1, int(seconds * 3)))] += 0.7
    return np.clip(x, -1, 1).astype(np.float32)


def perturb(model: torch.nn.Module, seed: int, scale: float = 0.5) -> int:
    """Add noise to every learned parameter (front-end weights excepted): ``std(w) * scale`` per tensor; for constant
    tensors 10 % of their value (LayerNorm weights), or 0.02 where they are zero (biases, HF's position tables: the
    size of a typical initial weight, so biases do not drown the signal). Returns how many tensors changed."""
    gen = torch.Generator().manual_seed(seed)
    changed = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if FRONT_END.search(name) or not param.is_floating_point():
                continue
            spread = float(param.std()) if param.numel() > 1 else 0.0
            if spread <= 1e-8:  # constant: LayerNorm weights (1 -> 1 +- 0.1), zero biases (-> +- 0.02)
                level = float(param.abs().max())
                spread, scale = (level, 0.1) if level > 0 else (0.02, 1.0)
            noise = torch.randn(param.shape, generator=gen, dtype=param.dtype)
            param.add_(noise, alpha=spread * scale)
            changed += 1
    return changed


def calibrate_batch_norms(model: torch.nn.Module, forward: Callable[[], object]) -> int:
    """Running statistics of every batch norm in ``model`` measured by ``forward()`` (only the norms in train mode,
    cumulative average); then eval mode. Returns the number of batch norms."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    with torch.no_grad():
        forward()
    for norm in norms:
        norm.momentum = 0.1
        norm.eval()
    return len(norms)


def calibration_batch(sample_rate: int, seconds: float, count: int = 4) -> np.ndarray:
    return np.stack([signal(seconds, sample_rate, seed=1000 + i) for i in range(count)])


def long_calibration(sample_rate: int, seconds: float) -> list[np.ndarray]:
    """Two clips longer than the window, so fusion layers see a batch (their batch norms need more than one item)."""
    return [signal(seconds, sample_rate, seed=1900 + i) for i in range(2)]


def check_every_parameter_distinct(model: torch.nn.Module) -> None:
    """Fail the build if two learned tensors of one shape are equal (what a key swap could hide behind)."""
    seen: dict[tuple, list[tuple[str, torch.Tensor]]] = {}
    for name, param in model.named_parameters():
        if FRONT_END.search(name):
            continue
        for other, value in seen.setdefault((tuple(param.shape), param.dtype), []):
            if torch.equal(value, param):
                raise AssertionError(f"{name} equals {other} after perturbation")
        seen[(tuple(param.shape), param.dtype)].append((name, param.detach()))


def set_logit_scales(model: torch.nn.Module, **values: float) -> None:
    """Set log-temperatures (e.g. logit_scale_a=log(21.5)); distinct non-default values catch a swapped scale."""
    with torch.no_grad():
        for name, value in values.items():
            getattr(model, name).fill_(float(np.log(value)))
