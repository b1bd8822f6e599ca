"""Bounded uploads and byte ranges: the request body limit (413 before the body is read whole), decoding an uploaded
clip with libsndfile only (415 for anything else, 413 past the duration limit), and ``Range`` header checks (416)."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import soundfile
from fastapi import HTTPException

from clapkit.audio.io import prepare_waveform
from clapkit.audio.probe import HEAD_BYTES, captured_stderr, check_complete, looks_like_audio
from clapkit.errors import AudioError

MULTIPART_OVERHEAD = 64 * 1024  # room for the multipart boundaries and the form's other fields
_RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
ACCEPTED_FORMATS = "WAV, FLAC, OGG (Vorbis, Opus), MP3, AIFF, CAF, AU"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(
            413,
            f"request body over {limit} bytes: uploads are limited to {limit - MULTIPART_OVERHEAD} bytes "
            "(clapkit serve --max-upload-mb)",
        )


class BodySizeLimit:
    """ASGI middleware: a request body larger than ``limit`` bytes gets 413, judged by ``Content-Length`` before
    anything is read, or, for a body without one (chunked), as soon as the bytes received pass the limit."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = int(limit)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _send_json(send, 413 if declared.isdigit() else 400, BodyTooLarge(self.limit).detail)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)  # FastAPI turns an HTTPException raised while parsing into a 413
            return message

        await self.app(scope, limited_receive, send)


async def _send_json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + [(b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def decode_upload(data: bytes, name: str, target_rate: int, max_seconds: float) -> np.ndarray:
    """Decode an uploaded clip to float32 mono at ``target_rate``. Only libsndfile decodes uploads (no ffmpeg on
    untrusted input). 415: not audio it decodes; 413: longer than ``max_seconds`` (judged from the header before
    decoding, and again from the samples read); 422: no samples or unusable samples."""
    if not data:
        raise HTTPException(422, f"{name}: the uploaded file is empty")
    try:
        with captured_stderr(), soundfile.SoundFile(io.BytesIO(data)) as audio:
            rate = audio.samplerate
            check_complete(io.BytesIO(data), audio.frames, float(rate), name)
            if audio.frames > 0 and audio.frames / rate > max_seconds:
                raise HTTPException(413, _too_long(name, audio.frames / rate, max_seconds))
            samples = audio.read(frames=int(max_seconds * rate) + 1, dtype="float32", always_2d=True)
    except HTTPException:
        raise
    except AudioError as exc:  # a WAV cut short of its header's length
        raise HTTPException(422, str(exc)) from None
    except Exception:  # libsndfile's errors, and whatever a malformed header makes it raise
        what = "not an audio file" if not looks_like_audio(data[:HEAD_BYTES]) else "audio clapkit cannot decode"
        raise HTTPException(415, f"{name}: {what} (uploads go to libsndfile only); send {ACCEPTED_FORMATS}") from None
    if len(samples) / rate > max_seconds:
        raise HTTPException(413, _too_long(name, len(samples) / rate, max_seconds, at_least=True))
    if not len(samples):
        raise HTTPException(422, f"{name}: the file holds no audio samples")
    try:
        return prepare_waveform(samples.T, rate, target_rate, name)
    except AudioError as exc:
        raise HTTPException(422, str(exc)) from None


def _too_long(name: str, seconds: float, limit: float, at_least: bool = False) -> str:
    length = f"over {limit:g}" if at_least else f"{seconds:.1f}"
    return f"{name}: the clip is {length} s long; the limit is {limit:g} s (clapkit serve --max-clip-seconds)"


def check_range(header: str | None, size: int) -> None:
    """Raise a 416 (with ``Content-Range: bytes */size``) for a ``bytes`` range header that is malformed or that no
    byte of a ``size``-byte file satisfies. No header, or another unit, is fine: the whole file is sent."""
    if header is None:
        return
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes":
        return
    for spec in specs.split(","):
        match = _RANGE_SPEC.match(spec)
        start, end = (match.group(1), match.group(2)) if match else ("", "")
        satisfiable = bool(match) and (
            (start == "" and end != "" and int(end) > 0)  # the last N bytes
            or (start != "" and int(start) < size and (end == "" or int(end) >= int(start)))
        )
        if not satisfiable:
            raise HTTPException(
                416,
                f"range {spec.strip()!r} is malformed or outside the file's {size} bytes",
                headers={"Content-Range": f"bytes */{size}"},
            )
