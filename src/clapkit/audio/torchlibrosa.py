"""The front-end weights that LAION-CLAP and MS-CLAP checkpoints store, computed the way torchlibrosa does.

Both laion_clap and msclap keep torchlibrosa's ``spectrogram_extractor`` (STFT as two convolutions) and
``logmel_extractor`` (``melW``, librosa's mel filterbank) in their state dicts. clapkit's own front end computes the
same transform without them; exports regenerate them here (one definition for every export).
"""

from __future__ import annotations

import numpy as np
import torch

from clapkit.audio.frontend import _hz_to_mel, _mel_to_hz, mel_filterbank
from clapkit.config import AudioFrontendConfig


def librosa_mel_weights(
    frontend: AudioFrontendConfig, scale: str | None = None, slaney_norm: bool | None = None
) -> torch.Tensor:
    """``librosa.filters.mel(...).T`` (torchlibrosa's ``melW``) for ``frontend`` bit for bit: librosa rounds the
    triangles to float32 before the Slaney norm, where clapkit's front end (like HF's) normalises in float64 and
    rounds once. Built for ``filterbank_sample_rate``/``filterbank_f_max`` where set (MS-CLAP 2023's quirk).
    ``scale``/``slaney_norm`` override the front end's mel scale and norm (laion_clap always uses Slaney's)."""
    rate = frontend.filterbank_sample_rate or frontend.sample_rate
    top = frontend.filterbank_f_max if frontend.filterbank_f_max is not None else frontend.f_max
    scale = scale or frontend.mel_scale
    triangles = mel_filterbank(rate, frontend.n_fft, frontend.n_mels, frontend.f_min, top, scale, None)
    if not (frontend.mel_norm == "slaney" if slaney_norm is None else slaney_norm):
        return triangles
    mels = np.linspace(_hz_to_mel(frontend.f_min, scale), _hz_to_mel(top, scale), frontend.n_mels + 2)
    hz = _mel_to_hz(mels, scale)
    return (triangles.double() * torch.from_numpy(2.0 / (hz[2:] - hz[:-2]))).float()


def torchlibrosa_buffers(
    frontend: AudioFrontendConfig, scale: str | None = None, slaney_norm: bool | None = None
) -> dict[str, torch.Tensor]:
    """``spectrogram_extractor``/``logmel_extractor`` weights for ``frontend``, computed as torchlibrosa does: the DFT
    matrix ``exp(-2 pi i / n) ** (x * y)`` times a periodic Hann window, and :func:`librosa_mel_weights`."""
    n_fft, win = frontend.n_fft, frontend.win_length
    grid = np.arange(n_fft)
    dft = np.power(np.exp(-2 * np.pi * 1j / n_fft), np.outer(grid, grid)[:, : n_fft // 2 + 1])
    window = np.zeros(n_fft)
    start = (n_fft - win) // 2
    window[start : start + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    kernels = dft * window[:, None]
    return {
        "spectrogram_extractor.stft.conv_real.weight": torch.tensor(np.real(kernels).T, dtype=torch.float32)[:, None],
        "spectrogram_extractor.stft.conv_imag.weight": torch.tensor(np.imag(kernels).T, dtype=torch.float32)[:, None],
        "logmel_extractor.melW": librosa_mel_weights(frontend, scale, slaney_norm),
    }
