"""One definition of "the same model": weights and the whole config, the audio front end included."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import torch

from clapkit.identity import model_fingerprint, model_identity, same_model
from clapkit.registry import get_config


def fake(seed: int, config):
    torch.manual_seed(seed)
    return SimpleNamespace(config=config, module=torch.nn.Linear(3, 2))


def test_same_weights_behind_another_front_end_are_another_model():
    config = get_config("clapkit-default")
    shorter = config.replace(frontend=dataclasses.replace(config.frontend, clip_samples=1000))
    base = model_identity(fake(0, config), "m")
    assert same_model(base, model_identity(fake(0, config), "elsewhere"))  # where it was loaded from does not count
    assert not same_model(base, model_identity(fake(1, config), "m"))
    assert not same_model(base, model_identity(fake(0, shorter), "m"))
    assert model_fingerprint(fake(0, config)) == model_fingerprint(fake(0, config))
    assert model_fingerprint(fake(0, config)) != model_fingerprint(fake(0, shorter))
