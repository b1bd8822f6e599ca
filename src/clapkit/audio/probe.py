"""What an audio file is before it is decoded: can this user read it, is it audio at all, is it whole?

- :func:`check_file`: stat + a first read, so a missing file, a broken or looping symlink, a directory, a pipe, an
  empty file and a permission problem each get their own reason (libsndfile says "System error." or "File does not
  exist or is not a regular file" for most of them).
- :func:`looks_like_audio`: the first bytes match a container or stream clapkit's decoders know (RIFF, FLAC, Ogg,
  MP3, AIFF, MP4, ...); a file that matches none is "not an audio file", whatever its name.
- :func:`check_complete`: a WAV whose header declares more audio than the file holds (a cut download or copy) is an
  error naming both durations, not silently shortened audio.
- :func:`captured_stderr`: libsndfile's MP3 decoder (mpg123) prints notes such as ``Note: Illegal Audio-MPEG-Header``
  straight to file descriptor 2; decoding runs with fd 2 pointed at a temporary file, and what was printed is kept
  for the error message instead of appearing unattributed on the terminal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from clapkit.errors import AudioError, os_reason

HEAD_BYTES = 64
_STDERR_LOCK = threading.Lock()
_STREAMING_SIZES = (0, 0xFFFFFFFF)  # data sizes written by streaming encoders that did not know the length


def check_file(path: str | os.PathLike[str]) -> bytes:
    """Check ``path`` is a readable, non-empty regular file; return its first :data:`HEAD_BYTES` bytes."""
    source = str(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise AudioError(source, f"broken symbolic link (it points to {os.readlink(path)}, which does not "
                                     "exist)") from None  # fmt: skip
        if exc.errno == errno.ENOENT:
            raise AudioError(source, "file not found; check the path") from None
        raise AudioError(source, os_reason(exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(source, "is a directory, not an audio file")
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(source, "not a regular file (a pipe, socket or device); give a file")
    if info.st_size == 0:
        raise AudioError(source, "file is empty (0 bytes); re-export or re-download it")
    try:
        with open(path, "rb") as handle:
            return handle.read(HEAD_BYTES)
    except OSError as exc:
        raise AudioError(source, os_reason(exc)) from None


def looks_like_audio(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts like an audio container or stream."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64", b"FORM", b"fLaC", b"OggS", b"caff", b".snd", b"riff"):
        return True
    if head[:3] == b"ID3" or head[4:8] == b"ftyp" or head[:5] == b"#!AMR" or head[:4] in (b"MAC ", b"wvpk"):
        return True
    if head[:4] == b"\x30\x26\xb2\x75" or head[:4] == b"\x1a\x45\xdf\xa3":  # ASF (wma), EBML (mka/webm)
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0  # an MPEG / ADTS frame sync


def _wav_declared_frames(handle: BinaryIO) -> int | None:
    """Frames a RIFF/WAVE header declares (data chunk size / block align), or None when it is not a plain WAV or
    declares no length (streamed)."""
    handle.seek(0)
    riff = handle.read(12)
    if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        return None
    block_align = None
    for _ in range(64):  # chunks before the data chunk (fmt, LIST, fact, ...)
        header = handle.read(8)
        if len(header) < 8:
            return None
        kind, size = header[:4], struct.unpack("<I", header[4:])[0]
        if kind == b"fmt ":
            fmt = handle.read(min(size, 16))
            if len(fmt) < 14:
                return None
            block_align = struct.unpack("<H", fmt[12:14])[0]
            handle.seek(size - len(fmt) + (size & 1), os.SEEK_CUR)
        elif kind == b"data":
            if not block_align or size in _STREAMING_SIZES:
                return None
            return size // block_align
        else:
            handle.seek(size + (size & 1), os.SEEK_CUR)
    return None


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 0.1 or value == 0 else f"{value:.2g} s"


def check_complete(handle: BinaryIO, frames: int, rate: float, source: str) -> None:
    """Raise :class:`AudioError` when the WAV in ``handle`` declares more frames than the ``frames`` it holds."""
    try:
        declared = _wav_declared_frames(handle)
    except (OSError, struct.error):
        return
    if declared is not None and rate > 0 and declared > frames:
        raise AudioError(
            source,
            f"truncated: the header says {_seconds(declared / rate)}, the file holds {_seconds(frames / rate)} "
            "(an interrupted download or copy?); re-export or re-download it",
        )


def check_file_complete(path: str | os.PathLike[str], frames: int, rate: float) -> None:
    with open(Path(path), "rb") as handle:
        check_complete(handle, frames, rate, str(path))


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Point fd 2 at a temporary file for the block and give back the lines written there.

    fd 2 belongs to the whole process, so one block runs at a time (a lock); what other threads print to stderr
    meanwhile is captured too, which is why blocks are kept short (opening a file, reading one block)."""
    lines: list[str] = []
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no fd 2 (a daemon): nothing to capture
            yield lines
            return
        try:
            with tempfile.TemporaryFile() as sink:
                os.dup2(sink.fileno(), 2)
                try:
                    yield lines
                finally:
                    os.dup2(saved, 2)
                    sink.seek(0)
                    lines.extend(line for line in sink.read().decode(errors="replace").splitlines() if line.strip())
        finally:
            os.close(saved)


def decoder_said(lines: list[str], prefix: str = "; ") -> str:
    """The decoder's own words for an error message: ``prefix`` + its first two distinct lines ("" if none)."""
    unique = list(dict.fromkeys(line.strip() for line in lines))[:2]
    return f"{prefix}decoder said: {' / '.join(unique)}" if unique else ""
