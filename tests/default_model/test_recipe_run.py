"""The whole v2 recipe on a made-up corpus v2, twice: split, cached features, head training, held-out evaluation,
export; the same inputs give bit-identical weights and equal numbers, and the export loads as the default model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import clapkit
from clapkit import default_model
from clapkit.recipes.build import SHIPPED, run_recipe
from clapkit.recipes.headtrain import variant
from clapkit.train.modeling import parameter_groups


@pytest.fixture(scope="module")
def two_runs(fake_corpus, tmp_path_factory):
    runs = []
    for name in ("first", "second"):
        work = tmp_path_factory.mktemp(name)
        options = variant(SHIPPED, steps=25, batch_size=32, warmup=5)
        numbers = run_recipe(fake_corpus, work, options=options, views=2, heldout_count=2, quiet=True,
                             end_to_end=True)
        runs.append((work, numbers))
    return runs


def test_recipe_measures_on_held_out_data(two_runs):
    work, numbers = two_runs[0]
    z = numbers["v2"]["zero_shot_heldout"]
    assert z["classes"] == 2 and z["chance"] == pytest.approx(0.5) and 0.0 <= z["top1"] <= 1.0
    assert z["clips"] == numbers["split"]["clips"]["heldout_classes"] == 16
    assert set(z["per_category"]) <= {"Animal", "Natural sounds", "Sounds of things", "Human sounds"}
    r = numbers["v2"]["retrieval"]
    assert r["clips"] == 16 + numbers["split"]["clips"]["heldout_clips"] and r["r1"] <= r["r10"] <= 1.0
    assert numbers["v2"]["zero_shot_all"]["classes"] == 8
    # the cached-feature path measures what the exported model computes when it reads the files itself
    for key in ("zero_shot_heldout", "zero_shot_all", "retrieval"):
        assert numbers["v2_cached"][key]["top1" if key != "retrieval" else "r10"] == pytest.approx(
            numbers["v2"][key]["top1" if key != "retrieval" else "r10"], abs=0.07)
    assert numbers["v2_check"]["clips"] == 16 and numbers["v2_check"]["min_cosine_to_cached"] > 0.9999
    assert json.loads((work / "numbers.json").read_text())["training"]["train_clips"] == numbers["split"][
        "clips"]["train"]


def test_recipe_reproduces_weights_and_numbers(two_runs):
    (work_a, numbers_a), (work_b, numbers_b) = two_runs
    a = load_file(str(work_a / "default-model" / "model.safetensors"))
    b = load_file(str(work_b / "default-model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for key in ("v2", "v2_cached", "split"):
        assert numbers_a[key] == numbers_b[key]


def test_export_loads_as_default_in_minilm_space(two_runs, monkeypatch):
    work, _ = two_runs[0]
    out = work / "default-model"
    state = load_file(str(out / "model.safetensors"))
    assert not any(k.startswith("text_tower.") for k in state)
    assert any(k.startswith("audio_tower.conv_block4.") for k in state) and "logit_scale_a" in state
    monkeypatch.setattr(default_model, "DEFAULT_DIR", out)
    model = clapkit.load("default")
    texts = ["a dog barks", "rain on a window"]
    text = model.embed_text(texts)
    pooled = model.module.text_tower(**{k: v for k, v in model.tokenize(texts).items()
                                        if k in ("input_ids", "attention_mask")})
    minilm = torch.nn.functional.normalize(pooled, dim=-1).detach().numpy()
    if not model.config.text_head.centre:  # the text head is the identity: MiniLM's own space
        assert np.allclose(text, minilm, atol=1e-5)
    audio = model.embed_audio([np.sin(np.arange(44100) / 7.0).astype(np.float32)], sample_rate=44100)
    assert audio.shape == (1, 384) and np.isclose(np.linalg.norm(audio), 1.0, atol=1e-5)


def test_tower_learning_rate_scale():
    model = clapkit.load("clapkit-default", weights="random").module
    groups = parameter_groups(model, 0.01, lr=1e-3, tower_lr_scale=0.1)
    tower_ids = {id(p) for p in model.audio_tower.parameters()} | {id(p) for p in model.text_tower.parameters()}
    for group in groups:
        in_tower = {id(p) in tower_ids for p in group["params"]}
        assert len(in_tower) == 1
        assert group.get("lr") == (pytest.approx(1e-4) if in_tower.pop() else None)
    assert sum(len(g["params"]) for g in groups) == sum(1 for _ in model.parameters())


def test_ship_all_retrains_on_every_clip_after_measuring(two_runs, fake_corpus, tmp_path):
    work_a, numbers_a = two_runs[0]
    options = variant(SHIPPED, steps=25, batch_size=32, warmup=5)
    numbers = run_recipe(fake_corpus, tmp_path, options=options, views=2, heldout_count=2, quiet=True,
                         ship_all=True)
    # the measured model is the split model of a plain run, kept beside the shipped one
    split_model = load_file(str(tmp_path / "default-model-split" / "model.safetensors"))
    plain = load_file(str(work_a / "default-model" / "model.safetensors"))
    assert all(torch.equal(split_model[k], plain[k]) for k in plain)
    assert numbers["v2_cached"] == numbers_a["v2_cached"]
    # the shipped model saw the held-out classes and clips too, so it has other weights
    shipped = numbers["shipped"]
    split = numbers["split"]["clips"]
    assert shipped["train_clips"] > split["train"] + split["heldout_classes"] - 1
    assert shipped["classes"] > numbers["split"]["train_classes"]
    final = load_file(str(tmp_path / "default-model" / "model.safetensors"))
    assert final.keys() == plain.keys() and not torch.equal(final["audio_projection.weight"],
                                                            plain["audio_projection.weight"])
    assert json.loads((tmp_path / "numbers.json").read_text())["shipped"] == shipped
    import csv

    with (tmp_path / "default-model-data-licences.csv").open() as handle:
        licences = list(csv.DictReader(handle))
    assert sum(int(r["train_clips"]) for r in licences) == shipped["train_clips"]
    assert all(int(r["heldout_clips"]) == 0 for r in licences)  # the shipped weights saw every clip listed
