"""Fit waveforms to the clip length and build the model input: LAION's ``get_audio_features`` semantics, batched.

- Shorter than ``clip_samples``: ``repeatpad`` (repeat ``clip // length`` times, zero-pad the rest), ``pad`` (zero-pad)
  or ``repeat`` (repeat and cut). Fusion input of such audio is its mel 4 times, ``is_longer`` False.
- Longer, non-fusion (LAION ``rand_trunc``): crop ``clip_samples``; training: random offset; evaluation: offset 0 (the
  start of the audio, so a result never depends on chance). ``is_longer`` True, as LAION sets it.
- Longer, fusion: the mel of the WHOLE waveform; a global view (the whole mel resized to one chunk) and three local
  chunks drawn from the front, middle and back thirds of the valid chunk starts (:func:`chunk_starts`).

Randomness only when ``train=True``, drawn from the ``numpy.random.Generator`` given (a fresh one if none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from clapkit.audio.frontend import MelFrontend
from clapkit.config import AudioFrontendConfig
from clapkit.errors import AudioError, ConfigError

FILLINGS = ("repeatpad", "pad", "repeat")
INT16_SCALE = 32767.0  # LAION's float32_to_int16 / int16_to_float32 use 32767, not 32768

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


@dataclass
class AudioBatch:
    """Model input for a batch of audio.

    ``features``: ``(B, C, frames, n_mels)`` log-mel in dB; ``C`` is 1 without fusion and 4 with fusion
    (``[global shrunk mel, front chunk, middle chunk, back chunk]``). ``is_longer``: ``(B,)`` bool, True where the
    audio was longer than one clip (LAION's ``longer``; fusion models fuse the local chunks only for those).
    """

    features: torch.Tensor
    is_longer: torch.Tensor

    def to(self, device: torch.device | str) -> AudioBatch:
        return AudioBatch(self.features.to(device), self.is_longer.to(device))

    def __len__(self) -> int:
        return int(self.features.shape[0])


def quantize_int16(x: ArrayOrTensor) -> ArrayOrTensor:
    """LAION's int16 round trip: clip to [-1, 1], scale by 32767, truncate toward zero to int16, divide by 32767.

    numpy input returns float32 numpy (computed in the input's float precision, like ``float32_to_int16``); torch input
    returns a float32 tensor on the same device (no gradient flows through the rounding).
    """
    if isinstance(x, torch.Tensor):  # trunc() of values in [-32767, 32767] is exactly the int16 cast, and faster
        pcm = torch.trunc(torch.clamp(x.to(torch.float32), min=-1.0, max=1.0) * INT16_SCALE)
        return pcm / INT16_SCALE
    pcm = (np.clip(x, -1.0, 1.0) * INT16_SCALE).astype(np.int16)
    return (pcm / INT16_SCALE).astype(np.float32)


def fit_to_clip(waveforms: torch.Tensor, lengths: torch.Tensor, clip_samples: int, filling: str) -> torch.Tensor:
    """Fit zero-padded ``waveforms (B, L)`` with true ``lengths (B,)`` (each <= clip) to ``(B, clip_samples)``.

    One gather for the whole batch: output sample ``j`` of item ``b`` is ``waveforms[b, j % lengths[b]]``, zeroed
    where the filling rule says so (``repeatpad``: ``j >= (clip // length) * length``; ``pad``: ``j >= length``).
    """
    if filling not in FILLINGS:
        raise ConfigError(f"filling {filling!r} is not one of {FILLINGS}")
    if waveforms.dim() != 2 or lengths.shape != waveforms.shape[:1]:
        raise ValueError(f"expected waveforms (B, L) and lengths (B,), got {tuple(waveforms.shape)}, {lengths.shape}")
    if bool((lengths < 1).any()) or bool((lengths > clip_samples).any()):
        raise ValueError(f"lengths must lie in [1, {clip_samples}], got {lengths.tolist()}")
    lengths = lengths.to(waveforms.device)
    short = lengths < clip_samples
    if not bool(short.any()):  # every item is exactly one clip: nothing to fit
        return waveforms[:, :clip_samples]
    rows, row_lengths = waveforms[short], lengths[short][:, None]
    positions = torch.arange(clip_samples, device=waveforms.device)[None, :]
    fitted = torch.gather(rows, 1, (positions % row_lengths).expand(rows.shape[0], -1))
    if filling == "repeatpad":
        keep = positions < torch.div(clip_samples, row_lengths, rounding_mode="floor") * row_lengths
    elif filling == "pad":
        keep = positions < row_lengths
    else:
        keep = None
    if keep is not None:
        fitted = torch.where(keep, fitted, torch.zeros((), dtype=fitted.dtype, device=fitted.device))
    if bool(short.all()):
        return fitted
    out = waveforms[:, :clip_samples].clone()  # some item is a full clip, so the padded width is clip_samples
    out[short] = fitted
    return out


def chunk_starts(
    total_frames: int, chunk_frames: int, *, train: bool = False, generator: np.random.Generator | None = None
) -> tuple[int, int, int]:
    """Start frames of the front, middle and back local chunks of a long mel (LAION's fusion selection).

    The valid starts ``0 .. total - chunk`` are split into three parts like ``np.array_split``; an empty middle or
    back part falls back to ``[0]``. Training draws one start uniformly in each part. Evaluation takes the first start
    of the front part (0), the middle element of the middle part and the LAST start of the back part (the chunk that
    ends at the end of the audio): deterministic, and the three chunks cover the beginning, centre and end.
    """
    if total_frames <= chunk_frames:
        raise ValueError(f"need more frames ({total_frames}) than one chunk ({chunk_frames}) to choose chunks")
    parts = [list(p) for p in np.array_split(np.arange(total_frames - chunk_frames + 1), 3)]
    parts = [p if p else [0] for p in parts]
    if train:
        rng = generator if generator is not None else np.random.default_rng()
        return tuple(int(p[int(rng.integers(len(p)))]) for p in parts)  # type: ignore[return-value]
    return int(parts[0][0]), int(parts[1][len(parts[1]) // 2]), int(parts[2][-1])


def fuse_mel(
    mel: torch.Tensor,
    chunk_frames: int,
    *,
    train: bool = False,
    generator: np.random.Generator | None = None,
    antialias: bool = True,
) -> tuple[torch.Tensor, bool]:
    """The 4-channel fusion input ``(4, chunk_frames, n_mels)`` of one mel ``(frames, n_mels)``, and ``is_longer``.

    ``frames == chunk_frames`` (audio just over one clip, less than a hop more) gives 4 copies and False, as LAION.
    Otherwise ``[global, front, middle, back]``: the global view is the whole mel resized to ``(chunk_frames,
    n_mels)`` with bilinear interpolation, ``align_corners=False``, antialias on (LAION: torchvision ``Resize`` on
    tensors) or off (``antialias=False``: HF's ``ClapFeatureExtractor``, plain ``F.interpolate``).
    """
    frames, n_mels = mel.shape
    if frames < chunk_frames:
        raise AudioError("mel", f"{frames} frames is shorter than one chunk ({chunk_frames}); fit the audio first")
    if frames == chunk_frames:
        return mel[None].expand(4, -1, -1).clone(), False
    starts = chunk_starts(frames, chunk_frames, train=train, generator=generator)
    shrunk = F.interpolate(
        mel[None, None], size=(chunk_frames, n_mels), mode="bilinear", align_corners=False, antialias=antialias
    )[0, 0]
    return torch.stack([shrunk, *(mel[s : s + chunk_frames] for s in starts)]), True


@lru_cache(maxsize=8)
def _default_frontend(config: AudioFrontendConfig, fusion: bool) -> MelFrontend:
    return MelFrontend(config, fusion=fusion)


def _as_waveform(x: Any, source: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x, dtype=np.float32))
    if t.dim() != 1:
        raise AudioError(source, f"expected a 1-D mono waveform, got shape {tuple(t.shape)}; use prepare_waveform")
    if t.numel() == 0:
        raise AudioError(source, "contains no samples (length 0)")
    t = t.to(torch.float32)
    if not math.isfinite(float(t.sum())) and not bool(torch.isfinite(t).all()):  # cheap sum test first
        raise AudioError(source, "contains NaN or Inf samples; clean the audio first")
    return t


def prepare_batch(
    waveforms: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
    cfg: AudioFrontendConfig,
    *,
    fusion: bool,
    train: bool = False,
    generator: np.random.Generator | None = None,
    frontend: MelFrontend | None = None,
) -> AudioBatch:
    """Mono waveforms at ``cfg.sample_rate`` (list of 1-D arrays/tensors, or one 2-D ``(B, T)``) -> :class:`AudioBatch`.

    ``fusion`` is the model's ``enable_fusion``: it selects LAION's ``data_truncating`` ("fusion" if True else
    "rand_trunc"; ``cfg.truncation`` only documents the checkpoint's default) and the mel variant: fusion models take
    the fusion mel (``cfg.fusion_mel_scale``, LAION: HTK) for every item, short ones too, non-fusion models the model
    mel (``cfg.mel_scale``, LAION: Slaney). ``frontend`` defaults to a cached ``MelFrontend(cfg, fusion=fusion)`` and
    decides the device. ``cfg.int16_roundtrip`` quantises every waveform first, as LAION's API does for numpy input.
    """
    if cfg.filling not in FILLINGS:
        raise ConfigError(f"audio front-end config: filling {cfg.filling!r} is not one of {FILLINGS}")
    if frontend is None:
        frontend = _default_frontend(cfg, fusion)
    elif frontend.fusion != fusion or frontend.config != cfg:
        raise ConfigError(
            "prepare_batch: the frontend given was built for another config or fusion setting; "
            "pass MelFrontend(cfg, fusion=fusion) or none"
        )
    if isinstance(waveforms, (np.ndarray, torch.Tensor)) and waveforms.ndim == 2:
        waveforms = list(waveforms)
    if len(waveforms) == 0:
        raise AudioError("waveforms", "empty batch; pass at least one waveform")
    device = frontend.window.device
    rng = generator if generator is not None or not train else np.random.default_rng()
    clip = cfg.clip_samples
    items = [_as_waveform(w, f"waveforms[{i}]").to(device) for i, w in enumerate(waveforms)]
    if cfg.int16_roundtrip:
        items = [quantize_int16(w) for w in items]
    if cfg.peak_normalize:  # the whole waveform, before any crop: an item's level never depends on the crop
        items = [w / peak if (peak := w.abs().max()) > 0 else w for w in items]

    batch_size = len(items)
    is_longer = torch.zeros(batch_size, dtype=torch.bool)
    fitted_index, long_fusion_index = [], []
    for i, w in enumerate(items):
        if w.numel() <= clip:
            fitted_index.append(i)
        elif fusion:
            long_fusion_index.append(i)
        else:  # rand_trunc: random crop in training, the first clip at evaluation
            offset = int(rng.integers(0, w.numel() - clip + 1)) if train else 0
            items[i] = w[offset : offset + clip]
            is_longer[i] = True
            fitted_index.append(i)

    channels = 4 if fusion else 1
    frames = frontend.num_frames(clip)
    features = torch.empty(batch_size, channels, frames, cfg.n_mels, device=device)
    if fitted_index:  # hot path: one gather to fit every clip, one batched STFT
        group = [items[i] for i in fitted_index]
        lengths = torch.tensor([w.numel() for w in group], device=device)
        padded = torch.nn.utils.rnn.pad_sequence(group, batch_first=True)
        mel = frontend(fit_to_clip(padded, lengths, clip, cfg.filling))
        features[fitted_index] = mel[:, None].expand(-1, channels, -1, -1)
    # Long fusion items differ in length, so their whole-waveform mels are computed one by one.
    for i in long_fusion_index:
        mel = frontend(items[i][None])[0]
        features[i], longer = fuse_mel(  # frames == cfg.chunk_frames
            mel, frames, train=train, generator=rng, antialias=cfg.fusion_resize_antialias
        )
        is_longer[i] = longer
    return AudioBatch(features=features, is_longer=is_longer.to(device))
