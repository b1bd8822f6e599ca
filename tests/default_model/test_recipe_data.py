"""The default-model recipe's data step: a fixed split with whole classes held out, captions and rewrites."""

from __future__ import annotations

import csv
import json

import pytest

from clapkit.errors import ClapkitError
from clapkit.recipes import default_model as recipe


def test_split_holds_out_whole_classes(fake_corpus):
    rows = recipe.read_corpus(fake_corpus)
    split = recipe.split_corpus(rows)
    unseen = set(recipe.heldout_classes(rows))
    assert len(unseen) == recipe.HELDOUT_COUNT == 14
    assert unseen <= {r["class"] for r in rows if r["set"] == "debian"}
    train = {r["audio"] for r in split["train"]}
    assert not unseen & {r["class"] for r in split["train"]}
    assert {r["class"] for r in split["heldout_classes"]} == unseen
    assert not train & {r["audio"] for r in split["heldout_clips"]}
    assert len(train) + len(split["heldout_classes"]) + len(split["heldout_clips"]) == len(rows)
    # every other class keeps most clips for training and gives at least one to the held-out clips
    for name in {r["class"] for r in rows} - unseen:
        assert any(r["class"] == name for r in split["heldout_clips"])
        assert sum(r["class"] == name for r in split["train"]) >= 3
    again = recipe.split_corpus(recipe.read_corpus(fake_corpus))
    assert [r["audio"] for r in again["train"]] == [r["audio"] for r in split["train"]]


def test_prepare_data_writes_captions_rewrites_and_eval_manifests(fake_corpus, tmp_path):
    summary = recipe.prepare_data(fake_corpus, tmp_path)
    data = tmp_path / "data"
    records = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    assert len(records) == summary["clips"]["train"]
    for record in records:
        assert record["caption"] and len(record["rewrites"]) >= recipe.NUM_REWRITES
        assert "fake" not in record["keywords"] and "sounds" not in record["keywords"]  # package / stop words
    with (data / "heldout_classes.csv").open() as handle:
        heldout = list(csv.DictReader(handle))
    assert {r["class"] for r in heldout} == {recipe.label_of(c) for c in summary["heldout_classes"]}
    assert json.loads((data / "split.json").read_text())["heldout_classes"] == summary["heldout_classes"]
    first = (data / "train.jsonl").read_text()
    recipe.prepare_data(fake_corpus, tmp_path)
    assert (data / "train.jsonl").read_text() == first  # the same corpus gives the same data


def test_missing_corpus_says_how_to_build_it(tmp_path):
    with pytest.raises(ClapkitError, match="build_sound_corpus.sh"):
        recipe.read_corpus(tmp_path)


def test_labels_read_well():
    assert recipe.label_of("sheep_goat") == "sheep or goat"
    assert recipe.label_of("fire_crackling") == "fire crackling"


def test_training_config_per_initialisation(tmp_path):
    from clapkit.recipes.build import recipe_train_config

    frozen = recipe_train_config(tmp_path, "aisfx", True, 1000, None)
    tuned = recipe_train_config(tmp_path, "aisfx", False, 1000, None)
    scratch = recipe_train_config(tmp_path, "scratch", True, 1000, None)
    assert frozen.model.freeze_audio and frozen.model.freeze_text and frozen.optim.tower_lr_scale == 0.1
    assert not tuned.model.freeze_audio and tuned.optim.tower_lr_scale == 0.1
    assert not scratch.model.freeze_audio and scratch.optim.tower_lr_scale == 1.0
    assert scratch.model.checkpoint.endswith("init-scratch") and frozen.max_steps == 1000
    assert frozen.model.overrides["frontend"]["clip_samples"] == 99 * 1024  # 100-frame training crops
