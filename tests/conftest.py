"""Shared fixtures: short synthetic audio (``tests/audio_fixtures.py``, generated with numpy, no data files) and the
micro CLAP model (``tests/small_models.py``: real architecture, tiny sizes, random weights) saved once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

import clapkit
from tests.audio_fixtures import clicks, noise, tone
from tests.small_models import micro_config, save_random_model


@pytest.fixture
def make_tone():
    return tone


@pytest.fixture
def make_noise():
    return noise


@pytest.fixture
def make_clicks():
    return clicks


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory) -> Path:
    """The micro model saved as config.json + model.safetensors (loadable by path in subprocesses too)."""
    return save_random_model(micro_config(), tmp_path_factory.mktemp("micro-model"), seed=0)


@pytest.fixture(scope="session")
def micro_model(micro_model_dir):
    return clapkit.load(micro_model_dir)
