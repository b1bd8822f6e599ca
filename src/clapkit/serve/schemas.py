"""The JSON the service answers with (pydantic models: they make the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every 4xx answer: ``detail`` says what was wrong and what to do (a list of field errors for a 422)."""

    detail: str | list[dict]


class ModelInfo(BaseModel):
    name: str
    fingerprint: str
    sample_rate: int
    clip_seconds: float


class Limits(BaseModel):
    max_upload_bytes: int
    max_clip_seconds: float
    max_timeline_seconds: float
    max_k: int


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    items: int
    kind: str = Field(description="exact (brute force) or ivf (approximate)")
    dimension: int
    model: ModelInfo
    limits: Limits


class ItemOut(BaseModel):
    id: int
    name: str = Field(description="the file name")
    path: str = Field(description="the path relative to the library's common folder")
    duration_seconds: float | None
    audio_url: str
    long: bool = Field(description="longer than the model's clip: a timeline of where a text matches is available")
    caption: str | None = Field(None, description="the sound's caption, when the index was built with --captions")


class Result(ItemOut):
    rank: int
    score: float = Field(description="cosine similarity to the query, in [-1, 1] (text search in an index with "
                         "captions: plus 0.2 x the share of the query's words its caption holds)")


class SearchResults(BaseModel):
    query: str | None = Field(None, description="the text searched for")
    like_id: int | None = Field(None, description="the item whose similar sounds these are")
    like_upload: str | None = Field(None, description="the name of the uploaded clip whose similar sounds these are")
    kind: str
    results: list[Result]


class TagOut(BaseModel):
    label: str
    probability: float


class Tags(BaseModel):
    item_id: int | None = None
    upload: str | None = None
    tags: list[TagOut]


class TimeSpan(BaseModel):
    start: float
    end: float
    score: float


class Timeline(BaseModel):
    item_id: int
    query: str
    duration_seconds: float | None
    threshold: float | None = Field(description="cosine a window needs to be in a range; null: none stands out")
    best: TimeSpan | None = Field(description="the best-scoring window")
    windows: list[TimeSpan]
    ranges: list[TimeSpan] = Field(description="windows that stand out from the rest of the file, joined")
    note: str | None = Field(None, description="why there is no range: the audio is silent, or nothing stands out")
