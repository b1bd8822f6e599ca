"""Fixtures for the service tests: the index built from the generated library (see ``tests/index/conftest.py``),
bound to its model, and apps with small limits."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from clapkit.index import IndexSearcher, SoundIndex
from clapkit.serve import ServeSettings, create_app
from tests.index.conftest import built_library, other_model_dir  # noqa: F401

TAG_LABELS = ["dog barking", "rain", "a tone", "speech", "silence"]
SETTINGS = ServeSettings(
    max_upload_bytes=400_000, max_clip_seconds=5.0, allowed_hosts=("testserver", "127.0.0.1", "localhost")
)


@pytest.fixture(scope="session")
def searcher(built_library, micro_model):  # noqa: F811
    return IndexSearcher(SoundIndex.open(built_library[1]), micro_model, labels=TAG_LABELS)


@pytest.fixture(scope="session")
def app(searcher):
    return create_app(searcher, SETTINGS)


@pytest.fixture
def client(app):
    with TestClient(app) as test_client:
        yield test_client
