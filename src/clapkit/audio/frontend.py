"""Waveform -> log-mel (dB) in torch: one front end, parameterised to reproduce each checkpoint family.

- Slaney mel + Slaney area norm = ``librosa.filters.mel`` (torchlibrosa, used inside LAION's non-fusion HTSAT/PANN and
  MS-CLAP).
- HTK mel without norm = ``torchaudio.functional.melscale_fbanks(norm=None, mel_scale="htk")`` (LAION's fusion input,
  ``laion_clap.training.data.get_mel``).
The STFT is ``torch.stft`` with a periodic Hann window; the dB conversion is librosa's ``power_to_db``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from clapkit.config import AudioFrontendConfig
from clapkit.errors import AudioError, ConfigError

MEL_SCALES = ("slaney", "htk")
MEL_NORMS = ("slaney", "l1", None)
SCALINGS = ("db", "log10_1p")
PAD_MODES = ("reflect", "constant", "replicate", "circular")


def _hz_to_mel(hz: np.ndarray, scale: str) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    # Slaney: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    linear = hz / f_sp
    logarithmic = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, logarithmic, linear)


def _mel_to_hz(mel: np.ndarray, scale: str) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float,
    f_max: float,
    scale: str = "slaney",
    norm: str | None = "slaney",
) -> torch.Tensor:
    """Triangular mel filterbank, shape ``(n_fft // 2 + 1, n_mels)``, float32.

    ``scale="slaney"`` follows ``librosa.filters.mel`` (computed in float64, frequency grid ``0 .. sample_rate / 2``):
    with ``norm="slaney"`` it equals ``librosa.filters.mel(...).T`` (torchlibrosa's ``melW``).
    ``scale="htk"`` follows ``torchaudio.functional.melscale_fbanks(..., mel_scale="htk")`` step for step, in float32
    with the grid ``0 .. sample_rate // 2``, so LAION's fusion input (``get_mel``) is reproduced exactly; it differs
    from librosa's float64 ``htk=True`` bank by float32 rounding only (~6e-6 at 48 kHz / 1024 / 64 mels).
    ``norm="slaney"`` divides each triangle by its width in Hz (area normalisation); ``None`` leaves peaks at 1.
    """
    if scale not in MEL_SCALES:
        raise ConfigError(f"mel scale {scale!r} is not one of {MEL_SCALES}")
    if norm not in MEL_NORMS:
        raise ConfigError(f"mel norm {norm!r} is not one of {MEL_NORMS}")
    if not 0 <= f_min < f_max:
        raise ConfigError(f"mel band needs 0 <= f_min < f_max, got f_min={f_min}, f_max={f_max}")
    n_freqs = n_fft // 2 + 1
    mel_min, mel_max = float(_hz_to_mel(f_min, scale)), float(_hz_to_mel(f_max, scale))
    if scale == "slaney":
        fft_freqs = torch.from_numpy(np.linspace(0.0, sample_rate / 2, n_freqs))
        hz_points = torch.from_numpy(_mel_to_hz(np.linspace(mel_min, mel_max, n_mels + 2), scale))
    else:
        fft_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
        hz_points = 700.0 * (10.0 ** (torch.linspace(mel_min, mel_max, n_mels + 2) / 2595.0) - 1.0)
    widths = hz_points[1:] - hz_points[:-1]  # (n_mels + 1,)
    slopes = hz_points[None, :] - fft_freqs[:, None]  # (n_freqs, n_mels + 2)
    rising = (-1.0 * slopes[:, :-2]) / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if norm == "slaney":
        weights = weights * (2.0 / (hz_points[2:] - hz_points[:-2]))[None, :]
    elif norm == "l1":  # librosa's norm=1: each filter sums to one
        weights = weights / weights.sum(dim=0, keepdim=True).clamp(min=1e-12)
    return weights.to(torch.float32).contiguous()


def power_to_db(
    power: torch.Tensor, amin: float = 1e-10, ref: float = 1.0, top_db: float | None = None
) -> torch.Tensor:
    """``10 * log10(max(power, amin)) - 10 * log10(max(amin, ref))``, as ``librosa.power_to_db``.

    ``top_db`` floors each item (leading dimension) at its own maximum minus ``top_db`` (librosa / torchaudio per
    spectrogram; torchlibrosa would use the batch maximum, but no reference model enables it).
    """
    db = 10.0 * torch.log10(torch.clamp(power, min=amin)) - 10.0 * math.log10(max(amin, ref))
    if top_db is not None:
        if top_db < 0:
            raise ConfigError(f"top_db must be non-negative, got {top_db}")
        if db.dim() > 1:
            peak = db.flatten(1).amax(dim=1).reshape(-1, *([1] * (db.dim() - 1)))
        else:
            peak = db.max()
        db = torch.maximum(db, peak - top_db)
    return db


class MelFrontend(torch.nn.Module):
    """Log-mel front end: ``forward(waveforms (B, T)) -> (B, frames, n_mels)`` in dB.

    ``fusion=True`` uses the config's fusion mel variant (``fusion_mel_scale``/``fusion_mel_norm``; LAION: HTK, no
    norm) instead of the model's (``mel_scale``/``mel_norm``). ``filterbank_sample_rate``/``filterbank_f_max`` in the
    config build the filterbank for another rate / top frequency than the audio's (MS-CLAP 2023's quirk). The window
    and the filterbank are non-persistent buffers: they follow ``.to(device)`` but never enter the state dict.
    With ``center=True`` a waveform of T samples gives ``T // hop_length + 1`` frames (480000 @ hop 480 -> 1001).
    """

    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(self, config: AudioFrontendConfig, fusion: bool = False):
        super().__init__()
        _check_config(config)
        self.config = config
        self.fusion = fusion
        scale = config.fusion_mel_scale if fusion else config.mel_scale
        norm = config.fusion_mel_norm if fusion else config.mel_norm
        filterbank = mel_filterbank(
            sample_rate=config.filterbank_sample_rate or config.sample_rate,
            n_fft=config.n_fft,
            n_mels=config.n_mels,
            f_min=config.f_min,
            f_max=config.filterbank_f_max if config.filterbank_f_max is not None else config.f_max,
            scale=scale,
            norm=norm,
        )
        self.register_buffer("window", torch.hann_window(config.win_length, periodic=True), persistent=False)
        self.register_buffer("filterbank", filterbank, persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Frames the front end produces for ``num_samples`` samples."""
        c = self.config
        if c.center:
            return num_samples // c.hop_length + 1
        return max(0, (num_samples - c.n_fft) // c.hop_length + 1)

    def power_spectrogram(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``|STFT|^power``, shape ``(B, frames, n_fft // 2 + 1)``."""
        c = self.config
        if waveforms.dim() == 1:
            waveforms = waveforms[None]
        if waveforms.dim() != 2:
            raise AudioError("waveforms", f"expected a (batch, samples) tensor, got shape {tuple(waveforms.shape)}")
        minimum = c.n_fft // 2 + 1 if c.center and c.pad_mode == "reflect" else (1 if c.center else c.n_fft)
        if waveforms.shape[-1] < minimum:
            raise AudioError(
                "waveforms",
                f"{waveforms.shape[-1]} samples is too short for this front end (needs >= {minimum}); "
                "pad or repeat the audio first (prepare_batch does)",
            )
        spectrum = torch.stft(
            waveforms.to(self.window.dtype),
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            window=self.window,
            center=c.center,
            pad_mode=c.pad_mode,
            normalized=False,
            onesided=True,
            return_complex=True,
        )  # (B, freqs, frames)
        if c.power == 2.0:
            power = spectrum.real.square() + spectrum.imag.square()
        else:
            power = spectrum.abs().pow(c.power)
        return power.transpose(1, 2)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel in dB, ``(B, frames, n_mels)``; a 1-D waveform gives ``(1, frames, n_mels)``."""
        c = self.config
        power = self.power_spectrogram(waveforms)  # (B, frames, freqs), a transposed view of (B, freqs, frames)
        mel = torch.matmul(self.filterbank.T, power.transpose(1, 2)).transpose(1, 2)  # GEMM on the contiguous layout
        if c.scaling == "log10_1p":
            return torch.log10(1.0 + c.log_gain * mel) * c.log_scale
        return power_to_db(mel, amin=c.amin, ref=c.ref, top_db=c.top_db)


def _check_config(c: AudioFrontendConfig) -> None:
    problems = []
    for name in ("sample_rate", "clip_samples", "n_fft", "win_length", "hop_length", "n_mels"):
        if int(getattr(c, name)) < 1:
            problems.append(f"{name} must be >= 1 (got {getattr(c, name)})")
    if c.win_length > c.n_fft:
        problems.append(f"win_length ({c.win_length}) must not exceed n_fft ({c.n_fft})")
    if c.pad_mode not in PAD_MODES:
        problems.append(f"pad_mode {c.pad_mode!r} is not one of {PAD_MODES}")
    if c.power <= 0:
        problems.append(f"power must be > 0 (got {c.power})")
    if c.amin <= 0:
        problems.append(f"amin must be > 0 (got {c.amin})")
    for scale_field, norm_field in (("mel_scale", "mel_norm"), ("fusion_mel_scale", "fusion_mel_norm")):
        if getattr(c, scale_field) not in MEL_SCALES:
            problems.append(f"{scale_field} {getattr(c, scale_field)!r} is not one of {MEL_SCALES}")
        if getattr(c, norm_field) not in MEL_NORMS:
            problems.append(f"{norm_field} {getattr(c, norm_field)!r} is not one of {MEL_NORMS}")
    if c.scaling not in SCALINGS:
        problems.append(f"scaling {c.scaling!r} is not one of {SCALINGS}")
    if c.scaling == "log10_1p" and not (c.log_gain > 0 and c.log_scale > 0):
        problems.append(f"log_gain and log_scale must be > 0 (got {c.log_gain}, {c.log_scale})")
    top = c.filterbank_f_max if c.filterbank_f_max is not None else c.f_max
    rate = c.filterbank_sample_rate or c.sample_rate
    if not 0 <= c.f_min < top <= rate / 2:
        problems.append(f"mel band needs 0 <= f_min < f_max <= {rate / 2} Hz (got {c.f_min}, {top})")
    if problems:
        raise ConfigError("audio front-end config: " + "; ".join(problems))
