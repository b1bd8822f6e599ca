"""The HTTP service over a sound index: JSON API under ``/api``, the web page at ``/``, OpenAPI at ``/openapi.json``.

Files are only ever served by item id from the index's item table: no path from a request reaches the filesystem,
so nothing outside the indexed set can be read. Request bodies are bounded (``uploads.BodySizeLimit``), uploaded
clips by size and duration, ``k`` and the texts by range; every refusal is a 4xx with a ``detail``.
"""

from __future__ import annotations

import math
import mimetypes
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from clapkit.errors import ClapkitError
from clapkit.index.library import Hit, Item
from clapkit.index.search import IndexSearcher
from clapkit.serve import schemas
from clapkit.serve.uploads import MULTIPART_OVERHEAD, BodySizeLimit, check_range, decode_upload

STATIC = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
               ".oga": "audio/ogg", ".opus": "audio/ogg", ".m4a": "audio/mp4", ".aac": "audio/aac",
               ".aif": "audio/aiff", ".aiff": "audio/aiff", ".au": "audio/basic", ".snd": "audio/basic"}  # fmt: skip
UploadedClip = Annotated[UploadFile, File(description="an audio clip (WAV, FLAC, OGG, MP3, ...)")]
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class ServeSettings:
    """Limits of the service. ``allowed_hosts``: accepted ``Host`` headers (DNS-rebinding protection for a service
    on loopback; ``("*",)`` accepts any)."""

    max_upload_bytes: int = 20 * 2**20
    max_clip_seconds: float = 60.0
    max_timeline_seconds: float = 3600.0
    max_k: int = 100
    max_labels: int = 100
    allowed_hosts: tuple[str, ...] = field(default=LOOPBACK_HOSTS)
    title: str = "clapkit sound search"


class AudioFileResponse(FileResponse):
    """A file response that ignores a ``Range`` header of another unit than bytes (RFC 9110 14.2: the whole file is
    sent) instead of answering 400."""

    async def __call__(self, scope, receive, send) -> None:
        headers = scope.get("headers") or []
        ranges = [value for name, value in headers if name == b"range"]
        if ranges and not ranges[0].strip().lower().startswith(b"bytes"):
            scope = {**scope, "headers": [(name, value) for name, value in headers if name != b"range"]}
        await super().__call__(scope, receive, send)


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without port or IPv6 brackets: ``[::1]:8000`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _errors(*codes: int) -> dict:
    return {code: {"model": schemas.ErrorBody} for code in codes}


def _labels(text: str | None, limit: int) -> list[str] | None:
    if text is None:
        return None
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if not labels:  # "labels=" or only commas/spaces: as if not given (the default AudioSet classes)
        return None
    if len(labels) > limit or any(len(label) > 100 for label in labels):
        raise HTTPException(422, f"labels: give 1 to {limit} comma-separated labels of at most 100 characters")
    return labels


def create_app(searcher: IndexSearcher, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI application for ``searcher`` (an index bound to its model)."""
    settings = settings or ServeSettings()
    index, model = searcher.index, searcher.model
    clip_seconds = float(model.config.frontend.clip_seconds)
    folders = {os.path.dirname(item.path) for item in index.items.values()}
    root = os.path.commonpath(sorted(folders)) if folders else "/"
    app = FastAPI(
        title=settings.title,
        version="1",
        description="Search a sound library by text, by example or by uploaded clip (CLAP embeddings + FAISS).",
        docs_url=None,  # the Swagger page would load scripts from a CDN; the schema is at /openapi.json
        redoc_url=None,
    )
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes + MULTIPART_OVERHEAD)
    allowed_hosts = {host_name(h) for h in settings.allowed_hosts}

    @app.middleware("http")
    async def check_host_and_harden(request: Request, call_next):
        if "*" not in allowed_hosts and host_name(request.headers.get("host", "")) not in allowed_hosts:
            # a page on another site that resolves its name to 127.0.0.1 (DNS rebinding) gets nothing
            return JSONResponse({"detail": "invalid Host header: the service answers on loopback names"}, 400)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response

    @app.exception_handler(ClapkitError)
    async def clapkit_error(request: Request, exc: ClapkitError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    def item_out(item: Item) -> dict:
        duration = None if math.isnan(item.duration_seconds) else item.duration_seconds
        return {
            "id": item.id,
            "name": os.path.basename(item.path),
            "path": os.path.relpath(item.path, root),
            "duration_seconds": duration,
            "audio_url": f"/api/items/{item.id}/audio",
            "long": duration is not None and duration > clip_seconds,
            "caption": item.caption,
        }

    def results(hits: list[Hit], **query) -> dict:
        found = [{**item_out(h.item), "rank": r, "score": h.score} for r, h in enumerate(hits, 1)]
        return {"kind": index.kind, "results": found, **query}

    def known(item_id: int) -> Item:
        item = index.item(item_id)
        if item is None:
            raise HTTPException(404, f"no item with id {item_id} in this index")
        return item

    def on_disk(item: Item) -> None:
        """Only the file that was indexed is read: 404 when it is gone, 410 when another file has its path."""
        state = item.file_state()
        if state == "missing":
            raise HTTPException(404, f"item {item.id}'s file is no longer on disk")
        if state == "changed":
            raise HTTPException(
                410, f"item {item.id}'s file was replaced or changed since it was indexed (another file, a link to "
                "elsewhere, or new content); re-index it: clapkit index remove, then clapkit index add"
            )

    def read_upload(file: UploadFile):
        name = os.path.basename(file.filename or "upload")[:200] or "upload"
        data = file.file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, f"{name}: over the upload limit of {settings.max_upload_bytes} bytes")
        return name, decode_upload(data, name, model.sample_rate, settings.max_clip_seconds)

    k_query = Query(10, ge=1, le=settings.max_k, description="how many results")
    # "[!-~]": at least one printable ASCII character. Not "\S": regex engines disagree on what is a space (U+0085 is
    # one for Python and pydantic's Rust regex but not for Hypothesis), and the text towers' vocabularies are English.
    text_query = Query(
        min_length=1, max_length=500, pattern=r"[!-~]", description="a description of the sound (some ASCII text)"
    )
    item_path = PathParam(ge=0, le=2**62, description="an item id (from a search result)")
    labels_query = Query(None, max_length=10_000, description="comma-separated labels (default: AudioSet classes)")

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health", response_model=schemas.Health, summary="Service status, index and model")
    def health() -> dict:
        return {
            "status": "ok",
            "items": len(index),
            "kind": index.kind,
            "dimension": index.dim,
            "model": {
                "name": index.model.get("name", ""),
                "fingerprint": index.model.get("fingerprint", ""),
                "sample_rate": model.sample_rate,
                "clip_seconds": clip_seconds,
            },
            "limits": {
                "max_upload_bytes": settings.max_upload_bytes,
                "max_clip_seconds": settings.max_clip_seconds,
                "max_timeline_seconds": settings.max_timeline_seconds,
                "max_k": settings.max_k,
            },
        }

    @app.get("/api/search", response_model=schemas.SearchResults, responses=_errors(422), summary="Search by text")
    def search(q: str = text_query, k: int = k_query) -> dict:
        return results(searcher.search_text(q, k), query=q)

    @app.get("/api/items/{item_id}", response_model=schemas.ItemOut, responses=_errors(404, 422), summary="An item")
    def item(item_id: int = item_path) -> dict:
        return item_out(known(item_id))

    @app.get("/api/items/{item_id}/similar", response_model=schemas.SearchResults, responses=_errors(404, 422),
             summary="Sounds similar to an indexed sound (more like this)")
    def similar(item_id: int = item_path, k: int = k_query) -> dict:
        known(item_id)
        return results(searcher.similar_to(item_id, k), like_id=item_id)

    @app.get("/api/items/{item_id}/tags", response_model=schemas.Tags, responses=_errors(404, 422),
             summary="Zero-shot tags of an indexed sound")
    def item_tags(item_id: int = item_path, k: int = Query(5, ge=1, le=50), labels: str | None = labels_query) -> dict:
        known(item_id)
        tags = searcher.tags(index.embedding(item_id), _labels(labels, settings.max_labels), k)
        return {"item_id": item_id, "tags": [vars(t) for t in tags]}

    @app.get("/api/items/{item_id}/timeline", response_model=schemas.Timeline, responses=_errors(404, 410, 422),
             summary="Where in a (long) file a text matches")
    def timeline(item_id: int = item_path, q: str = text_query) -> dict:
        item = known(item_id)
        if not math.isnan(item.duration_seconds) and item.duration_seconds > settings.max_timeline_seconds:
            raise HTTPException(
                422,
                f"{os.path.basename(item.path)} is {item.duration_seconds:.0f} s long; timelines are limited to "
                f"{settings.max_timeline_seconds:g} s (clapkit serve --max-timeline-seconds)",
            )
        on_disk(item)
        located = searcher.timeline(item_id, q)
        windows = zip(located.starts, located.ends, located.scores)
        spans = [{"start": float(s), "end": float(e), "score": float(c)} for s, e, c in windows]
        return {
            "item_id": item_id,
            "query": q,
            "duration_seconds": None if math.isnan(item.duration_seconds) else item.duration_seconds,
            "threshold": located.threshold if math.isfinite(located.threshold) else None,
            "best": max(spans, key=lambda span: span["score"]) if spans else None,
            "windows": spans,
            "ranges": [vars(r) for r in located.ranges],
            "note": located.note,
        }

    @app.get(
        "/api/items/{item_id}/audio",
        response_class=FileResponse,
        responses={
            200: {"content": {"audio/*": {}}, "description": "the whole file"},
            206: {"content": {"audio/*": {}}, "description": "the requested byte range"},
            **_errors(404, 410, 416, 422),
        },
        summary="The audio file (HTTP range requests supported)",
    )
    def audio(request: Request, item_id: int = item_path) -> AudioFileResponse:
        item = known(item_id)
        on_disk(item)
        try:
            status = os.stat(item.path)
        except OSError:
            raise HTTPException(404, f"item {item_id}'s file is no longer on disk") from None
        check_range(request.headers.get("range"), status.st_size)
        suffix = Path(item.path).suffix.lower()
        media_type = AUDIO_TYPES.get(suffix) or mimetypes.guess_type(item.path)[0] or "application/octet-stream"
        return AudioFileResponse(item.path, media_type=media_type, stat_result=status)

    @app.post(
        "/api/similar",
        response_model=schemas.SearchResults,
        responses=_errors(400, 413, 415, 422),
        summary="Sounds similar to an uploaded clip",
    )
    def similar_to_upload(file: UploadedClip, k: int = k_query) -> dict:
        name, waveform = read_upload(file)
        return results(searcher.search_waveform(waveform, k), like_upload=name)

    @app.post("/api/tags", response_model=schemas.Tags, responses=_errors(400, 413, 415, 422), summary="Tags of a clip")
    def upload_tags(
        file: UploadedClip,
        k: int = Query(5, ge=1, le=50),
        labels: str | None = labels_query,
    ) -> dict:
        label_list = _labels(labels, settings.max_labels)
        name, waveform = read_upload(file)
        tags = searcher.tags(searcher.embed_waveform(waveform), label_list, k)
        return {"upload": name, "tags": [vars(t) for t in tags]}

    return app
