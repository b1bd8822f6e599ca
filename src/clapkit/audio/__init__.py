"""Audio input: decoding and validation (io), the log-mel front end (frontend), clip fitting and fusion (fusion)."""

from clapkit.audio.frontend import MelFrontend, mel_filterbank, power_to_db
from clapkit.audio.fusion import AudioBatch, chunk_starts, fit_to_clip, fuse_mel, prepare_batch, quantize_int16
from clapkit.audio.io import is_silent, load_audio, prepare_waveform, stream_windows

__all__ = [
    "AudioBatch",
    "MelFrontend",
    "chunk_starts",
    "fit_to_clip",
    "fuse_mel",
    "is_silent",
    "load_audio",
    "mel_filterbank",
    "power_to_db",
    "prepare_batch",
    "prepare_waveform",
    "quantize_int16",
    "stream_windows",
]
