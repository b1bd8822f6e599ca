"""The whole recipe on a fake corpus, twice: it trains, evaluates on held-out data, exports what ships, and the same
inputs give the same weights and numbers (the recipe reproduces its model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import clapkit
from clapkit import default_model
from clapkit.recipes.build import SHIPPED_CLIP_SAMPLES, run_recipe
from clapkit.train.modeling import parameter_groups


@pytest.fixture(scope="module")
def two_runs(fake_corpus, tmp_path_factory):
    runs = []
    for name in ("first", "second"):
        work = tmp_path_factory.mktemp(name)
        numbers = run_recipe(fake_corpus, work, max_steps=2, max_minutes=None, batch_size=8)
        runs.append((work, numbers))
    return runs


def test_recipe_measures_on_held_out_data(two_runs):
    work, numbers = two_runs[0]
    z = numbers["zero_shot"]
    assert z["classes"] == 14 and z["chance"] == pytest.approx(1 / 14)
    assert 0.0 <= z["top1_template"] <= 1.0 and 0.0 <= z["top1_reclap"] <= 1.0
    assert numbers["retrieval"]["clips"] == numbers["split"]["clips"]["heldout_classes"] + \
        numbers["split"]["clips"]["heldout_clips"]
    assert numbers["training"]["steps"] == 2 and numbers["training"]["init"] == "aisfx"
    assert json.loads((work / "numbers.json").read_text())["zero_shot"]["classes"] == 14


def test_recipe_reproduces_weights_and_numbers(two_runs):
    (work_a, numbers_a), (work_b, numbers_b) = two_runs
    a = load_file(str(work_a / "default-model" / "model.safetensors"))
    b = load_file(str(work_b / "default-model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for key in ("zero_shot", "retrieval", "retrieval_reclap"):
        assert numbers_a[key] == numbers_b[key]


def test_export_ships_no_text_tower_and_loads_as_default(two_runs, monkeypatch):
    work, _ = two_runs[0]
    out = work / "default-model"
    state = load_file(str(out / "model.safetensors"))
    assert not any(k.startswith("text_tower.") for k in state)
    assert any(k.startswith("audio_tower.conv_block4.") for k in state) and "logit_scale_a" in state
    assert json.loads((out / "config.json").read_text())["frontend"]["clip_samples"] == SHIPPED_CLIP_SAMPLES
    monkeypatch.setattr(default_model, "DEFAULT_DIR", out)
    model = clapkit.load("default")
    trained = clapkit.load(json.loads((out / "numbers.json").read_text())["training"]["checkpoint"])
    texts = ["a dog barks", "rain on a window"]
    assert np.allclose(model.embed_text(texts), trained.embed_text(texts), atol=1e-6)
    audio = model.embed_audio([np.sin(np.arange(44100) / 7.0).astype(np.float32)], sample_rate=44100)
    assert audio.shape == (1, 512) and np.isclose(np.linalg.norm(audio), 1.0, atol=1e-5)


def test_tower_learning_rate_scale():
    model = clapkit.load("clapkit-default", weights="random").module
    groups = parameter_groups(model, 0.01, lr=1e-3, tower_lr_scale=0.1)
    tower_ids = {id(p) for p in model.audio_tower.parameters()} | {id(p) for p in model.text_tower.parameters()}
    for group in groups:
        in_tower = {id(p) in tower_ids for p in group["params"]}
        assert len(in_tower) == 1
        assert group.get("lr") == (pytest.approx(1e-4) if in_tower.pop() else None)
    assert sum(len(g["params"]) for g in groups) == sum(1 for _ in model.parameters())
    plain = parameter_groups(model, 0.01)
    assert len(plain) == 2 and all("lr" not in g for g in plain)
