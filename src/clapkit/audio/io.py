"""Decode audio files and in-memory arrays to float32 mono at a target rate, with clear errors.

Decoding is done by libsndfile (through ``soundfile``): WAV/RF64/W64, FLAC, OGG (Vorbis, Opus), MP3 (libsndfile >= 1.1),
AIFF, CAF and the other formats ``soundfile.available_formats()`` lists. Files libsndfile cannot open (m4a/aac, wma,
video containers, ...) are decoded with ``ffmpeg`` when it is on PATH.

Conventions:
- several channels are AVERAGED into one (as ``librosa.load(mono=True)`` does, so LAION's file API agrees);
- resampling uses soxr at quality "HQ" (librosa's default ``res_type="soxr_hq"``, hence what LAION's loader uses);
- in-memory arrays are ``(samples,)`` or ``(channels, samples)``; integer PCM arrays are scaled by the dtype's range
  (int16 / 32768, as soundfile does);
- silence is valid input; use :func:`is_silent` to flag it.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr

from clapkit.audio.probe import captured_stderr, check_file, check_file_complete, decoder_said, looks_like_audio
from clapkit.errors import AudioError, os_reason

RESAMPLE_QUALITY = "HQ"
MAX_CHANNELS = 16
_BLOCK_FRAMES = 65536
_FFMPEG_TIMEOUT_SECONDS = 3600


def _supported_formats() -> str:
    return ", ".join(sorted(f.lower() for f in soundfile.available_formats()))


def _check_rate(rate: Any, source: str, what: str = "sample rate") -> float:
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise AudioError(source, f"{what} {rate!r} is not a number; pass the rate in Hz, e.g. 48000") from None
    if not math.isfinite(value) or value <= 0:
        raise AudioError(source, f"{what} {rate!r} must be a positive number of Hz, e.g. 48000")
    return value


def _check_finite(x: np.ndarray, source: str, offset: int = 0, rate: float | None = None) -> None:
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.flatnonzero(~finite.reshape(-1) if x.ndim == 1 else ~finite.all(axis=0))
        first = offset + int(bad[0])
        where = f"sample {first}" + (f" ({first / rate:.3f} s)" if rate else "")
        raise AudioError(source, f"{bad.size} non-finite (NaN or Inf) samples, first at {where}; clean or re-export it")


def _to_mono(x: np.ndarray) -> np.ndarray:
    """(channels, samples) -> (samples,) float32, the mean of the channels."""
    if x.shape[0] == 1:
        return np.ascontiguousarray(x[0], dtype=np.float32)
    return x.mean(axis=0, dtype=np.float64).astype(np.float32)


def _resample(x: np.ndarray, rate: float, target_rate: float) -> np.ndarray:
    if rate == target_rate:
        return np.ascontiguousarray(x, dtype=np.float32)
    return soxr.resample(x, rate, target_rate, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)


def _as_float_array(array: Any, source: str) -> np.ndarray:
    if hasattr(array, "detach") and hasattr(array, "cpu"):  # torch.Tensor without importing torch here
        array = array.detach().cpu().numpy()
    try:
        x = np.asarray(array)
    except Exception as exc:  # ragged lists and the like
        raise AudioError(source, f"cannot be read as an array of samples ({exc})") from None
    if x.dtype.kind == "f":
        return x
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        if x.dtype.kind == "u":  # offset binary (8-bit WAV style): centre then scale
            return (x.astype(np.float64) - (info.max + 1) / 2) / ((info.max + 1) / 2)
        return x.astype(np.float64) / (info.max + 1)
    raise AudioError(source, f"samples must be float or integer PCM, got dtype {x.dtype}")


def prepare_waveform(array: Any, sample_rate: int, target_rate: int, source: str = "array") -> np.ndarray:
    """Validate an in-memory waveform and return it float32 mono at ``target_rate``.

    ``array``: numpy array or torch tensor, ``(samples,)`` or ``(channels, samples)`` with ``channels <= 16`` and
    ``channels < samples`` (soundfile's ``(samples, channels)`` layout must be transposed first). ``source`` names the
    input in error messages (e.g. ``"waveforms[3]"``).
    """
    _check_rate(sample_rate, source)
    _check_rate(target_rate, source, "target sample rate")
    x = _as_float_array(array, source)
    if x.size == 0:
        raise AudioError(source, f"contains no samples (shape {x.shape}); pass at least one sample of audio")
    if x.ndim == 1:
        x = x[None, :]
    elif x.ndim == 2:
        channels, samples = x.shape
        if channels > MAX_CHANNELS or channels >= samples:
            raise AudioError(
                source,
                f"2-D audio must be (channels, samples) with at most {MAX_CHANNELS} channels, got shape {x.shape}; "
                "if it is (samples, channels), pass array.T",
            )
    else:
        raise AudioError(source, f"audio must be 1-D (samples) or 2-D (channels, samples), got shape {x.shape}")
    _check_finite(x, source)
    return _resample(_to_mono(x), float(sample_rate), float(target_rate))


def is_silent(waveform: Any, threshold_db: float = -90.0) -> bool:
    """True when the RMS level of ``waveform`` is below ``threshold_db`` dBFS (all-zero audio is silent).

    Silent audio is valid input for embedding; batch jobs may use this to flag it.
    """
    if hasattr(waveform, "detach"):
        waveform = waveform.detach().cpu().numpy()
    x = np.asarray(waveform, dtype=np.float64)
    if x.size == 0:
        return True
    rms = float(np.sqrt(np.mean(np.square(x))))
    return rms == 0.0 or 20.0 * math.log10(rms) < threshold_db


def _check_file(path: str | os.PathLike[str]) -> Path:
    check_file(path)
    return Path(path)


def _undecodable(path: str, detail: str, head: bytes = b"") -> AudioError:
    """``detail``: what the decoders said. A file whose first bytes match no audio format is "not an audio file"."""
    if head and not looks_like_audio(head):
        return AudioError(path, f"not an audio file: its content matches no audio format (text or other data under an "
                                f"audio name?{detail})")  # fmt: skip
    return AudioError(
        path,
        f"cannot decode audio ({detail.lstrip('; ')}). Readable formats without ffmpeg: "
        f"{_supported_formats()}. Installing ffmpeg (on PATH) adds m4a/aac, wma and audio in video containers.",
    )


def _decode_with_ffmpeg(path: Path, out_dir: str, ffmpeg: str) -> Path:
    """Decode ``path`` with ffmpeg into a float32 WAV (native rate and channels) inside ``out_dir``.

    A temporary seekable file (not a pipe) keeps the channel count and length in a proper header, so channels are
    averaged and resampled exactly like soundfile-decoded files, and long files can be streamed back block by block.
    """
    out = Path(out_dir) / "decoded.wav"
    cmd = [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(path),
        "-vn",
        "-acodec",
        "pcm_f32le",
        "-rf64",
        "auto",
        "-f",
        "wav",
        str(out),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=_FFMPEG_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AudioError(str(path), f"ffmpeg could not be run to decode it ({exc})") from None
    if done.returncode != 0 or not out.exists():
        message = done.stderr.decode(errors="replace").strip().splitlines()
        detail = message[-1] if message else f"exit code {done.returncode}"
        raise AudioError(str(path), f"neither libsndfile nor ffmpeg can decode it (ffmpeg: {detail})")
    return out


class _Decodable:
    """Context manager giving a path soundfile can read: the file itself, or an ffmpeg-decoded temporary WAV."""

    def __init__(self, path: str | os.PathLike[str]):
        self.source = str(path)
        self.head = check_file(path)
        self.path = Path(path)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._file: soundfile.SoundFile | None = None

    def __enter__(self) -> soundfile.SoundFile:
        try:
            with captured_stderr() as chatter:
                self._file = soundfile.SoundFile(self.path)
        except (soundfile.SoundFileError, RuntimeError) as exc:
            libsndfile_error = str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)
            libsndfile_error += decoder_said(chatter)
        except OSError as exc:  # the file went away or lost its permissions since check_file
            raise AudioError(self.source, os_reason(exc)) from None
        else:
            try:
                check_file_complete(self.path, self._file.frames, float(self._file.samplerate))
            except BaseException:
                self._file.close()
                raise
            return self._file
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            if not looks_like_audio(self.head):  # text or other data under an audio name
                raise _undecodable(self.source, decoder_said(chatter), self.head)
            raise _undecodable(self.source, f"libsndfile: {libsndfile_error}")
        self._tmp = tempfile.TemporaryDirectory(prefix="clapkit-ffmpeg-")
        try:
            self._file = soundfile.SoundFile(_decode_with_ffmpeg(self.path, self._tmp.name, ffmpeg))
        except (soundfile.SoundFileError, RuntimeError) as exc:
            self._tmp.cleanup()
            raise _undecodable(self.source, f"ffmpeg output unreadable: {exc}") from None
        except AudioError as exc:
            self._tmp.cleanup()
            if not looks_like_audio(self.head):
                raise _undecodable(self.source, f"; {exc.reason}", self.head) from None
            raise
        return self._file

    def __exit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def _read_block(f: soundfile.SoundFile, frames: int, source: str) -> np.ndarray:
    """Read ``frames`` frames (-1: the rest) as (channels, frames). MP3 reads run with the decoder's stderr notes
    captured (see :mod:`clapkit.audio.probe`)."""
    capture = captured_stderr() if f.format == "MPEG" else contextlib.nullcontext([])
    try:
        with capture as chatter:
            return f.read(frames, dtype="float32", always_2d=True).T  # (channels, frames)
    except (soundfile.SoundFileError, RuntimeError) as exc:
        raise AudioError(
            source, f"decoding failed part-way ({exc}{decoder_said(chatter)}); the file may be corrupt"
        ) from None


def load_audio(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    """Decode an audio file to a float32 mono waveform at ``sample_rate`` (channels averaged, soxr HQ resampling).

    A file that cannot be read (missing, permission denied, a link loop), is empty, is not audio, is a WAV cut short
    of the length its header declares, holds no samples or NaN/Inf samples raises :class:`AudioError` naming the
    path and the cause.
    """
    source = str(path)
    _check_rate(sample_rate, source)
    with _Decodable(path) as f:
        rate = float(f.samplerate)
        x = _read_block(f, -1, source)
    if x.shape[1] == 0:
        raise AudioError(source, "contains no audio samples (header only or truncated before the data)")
    _check_finite(x, source, rate=rate)
    return _resample(_to_mono(x), rate, float(sample_rate))


def stream_windows(
    path: str | os.PathLike[str], sample_rate: int, window_samples: int, hop_samples: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_sample, window)`` over a file at ``sample_rate``, reading and resampling block by block.

    Memory stays bounded by a window plus a block, so hour-long files are fine. Windows start at ``0, hop, 2*hop, ...``
    (in samples at ``sample_rate``) and hold ``window_samples`` samples, except the last one, which holds the rest of
    the file and is yielded only if it contains samples no earlier window covered (a file shorter than one window
    gives a single short window). With equal rates the windows are exact slices of :func:`load_audio`'s output; with
    different rates they use the same soxr filter streamed (``soxr.ResampleStream``), equal up to float rounding.
    """
    source = str(path)
    _check_rate(sample_rate, source)
    if int(window_samples) < 1 or int(hop_samples) < 1:
        raise AudioError(source, f"window ({window_samples}) and hop ({hop_samples}) must be at least 1 sample")
    _check_file(path)  # fail now, not at the first next()
    return _windows(path, float(sample_rate), int(window_samples), int(hop_samples))


def _windows(
    path: str | os.PathLike[str], sample_rate: float, window: int, hop: int
) -> Iterator[tuple[int, np.ndarray]]:
    source = str(path)
    with _Decodable(path) as f:
        rate = float(f.samplerate)
        resampler = None
        if rate != sample_rate:
            resampler = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        buffer = np.zeros(0, dtype=np.float32)
        buffer_start = 0  # absolute index (at sample_rate) of buffer[0]
        next_start, covered_end, frames_read = 0, 0, 0
        finished = False
        while not finished:
            block = _read_block(f, _BLOCK_FRAMES, source)
            finished = block.shape[1] < _BLOCK_FRAMES
            _check_finite(block, source, offset=frames_read, rate=rate)
            frames_read += block.shape[1]
            mono = _to_mono(block) if block.shape[1] else np.zeros(0, dtype=np.float32)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=finished)
            buffer = np.concatenate([buffer, mono])
            while buffer_start + buffer.size >= next_start + window:
                begin = next_start - buffer_start
                yield next_start, buffer[begin : begin + window].copy()
                covered_end = next_start + window
                next_start += hop
            drop = min(max(next_start - buffer_start, 0), buffer.size)  # samples no later window needs
            buffer, buffer_start = buffer[drop:], buffer_start + drop
    if frames_read == 0:
        raise AudioError(source, "contains no audio samples (header only or truncated before the data)")
    total = buffer_start + buffer.size
    if next_start < total and total > covered_end:
        yield next_start, buffer[next_start - buffer_start :].copy()
