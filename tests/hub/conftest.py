"""Fixtures: shrunk registry configs, the small public-format files (built once), an empty hub cache in the
environment, and a socket guard proving that loading never touches the network."""

from __future__ import annotations

import socket

import pytest

from clapkit import registry
from tests.hub import builders


@pytest.fixture(scope="session")
def small() -> dict:
    return builders.small_registry()


@pytest.fixture
def small_registry(small, monkeypatch) -> dict:
    for name, config in small.items():
        monkeypatch.setitem(registry._REGISTERED, name, config)
    return small


@pytest.fixture(scope="session")
def laion_file(small):
    return builders.laion_file(small)


@pytest.fixture(scope="session")
def msclap_file(small):
    return builders.msclap_file(small)


@pytest.fixture(scope="session")
def hf_files(tmp_path_factory):
    return builders.hf_directory(tmp_path_factory.mktemp("hf"))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, the only one huggingface_hub and clapkit see."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return cache


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    calls = []

    def refuse(self, address, *args, **kwargs):
        calls.append(address)
        raise AssertionError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return calls
