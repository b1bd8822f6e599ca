"""Manifests (CSV, JSONL), caption folders and the map-style ManifestDataset: parsing, bad rows, bad items."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from clapkit.audio.io import load_audio
from clapkit.errors import ClapkitError
from clapkit.train.data import ManifestDataset
from clapkit.train.manifests import read_folder, read_manifest, text_list
from tests.audio_fixtures import write_audio
from tests.train.conftest import RATE, write_clip


def test_text_list_cells():
    assert text_list('["a, b", "c"]') == ["a, b", "c"]
    assert text_list("dog | bark|") == ["dog", "bark"]
    assert text_list(["x", " ", None, "y"]) == ["x", "y"]
    assert text_list(None) == []


def test_csv_columns_merging_and_bad_rows(tmp_path, caplog):
    for name in ("a", "b", "c"):
        write_clip(tmp_path / "wav" / f"{name}.wav", seed=ord(name))
    (tmp_path / "m.csv").write_text(
        "file_name,caption,tags,rewrites\n"
        "wav/a.wav,A dog barks,dog|bark,\"[\"\"a hound barking\"\"]\"\n"
        "wav/a.wav,A dog barks loudly,,\n"  # same clip: captions merge (AudioCaps has one caption per row)
        "wav/b.wav,,rain,\n"  # keywords only: kept (a keyword caption can be made later)
        ",orphan caption,,\n"  # no audio path
        "wav/c.wav,,,\n"  # neither caption nor keywords
    )
    with caplog.at_level(logging.WARNING, logger="clapkit.train"):
        manifest = read_manifest(tmp_path / "m.csv")
    assert [e.id for e in manifest] == ["wav/a", "wav/b"]
    a, b = manifest.entries
    assert a.captions == ("A dog barks", "A dog barks loudly")
    assert a.keywords == ("dog", "bark") and a.rewrites == ("a hound barking",)
    assert a.audio == str(tmp_path / "wav" / "a.wav")
    assert b.captions == () and b.keywords == ("rain",)
    assert manifest.skipped == {"bad_row": 1, "no_caption": 1}
    assert sum("skipping" in r.message for r in caplog.records) == 2


def test_clotho_style_numbered_captions_and_tsv(tmp_path):
    write_clip(tmp_path / "x.wav", seed=1)
    (tmp_path / "m.tsv").write_text("file_name\tcaption_1\tcaption_2\tcaption_10\nx.wav\tone\ttwo\tten\n")
    entry = read_manifest(tmp_path / "m.tsv").entries[0]
    assert entry.captions == ("one", "two", "ten") and entry.id == "x"


def test_jsonl_bad_lines_duplicate_ids_and_root(tmp_path):
    write_clip(tmp_path / "data" / "a.wav", seed=1)
    write_clip(tmp_path / "data" / "b.wav", seed=2)
    lines = [
        json.dumps({"id": "one", "path": "a.wav", "text": "first"}),
        "{not json",
        json.dumps(["a list", "not an object"]),
        json.dumps({"id": "one", "path": "b.wav", "captions": ["dup id"]}),
        json.dumps({"id": 7, "path": "b.wav", "captions": "x|y", "keywords": 3}),  # keywords must be text
        "",
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(lines))
    manifest = read_manifest(tmp_path / "m.jsonl", root=tmp_path / "data")
    assert [e.id for e in manifest] == ["one"]
    assert manifest.entries[0].audio == str(tmp_path / "data" / "a.wav")
    assert manifest.skipped == {"bad_row": 3, "duplicate_id": 1}


def test_check_files_and_unknown_types(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio": "missing.wav", "caption": "gone"}) + "\n")
    assert read_manifest(tmp_path / "m.jsonl", check_files=True).skipped == {"missing_file": 1}
    assert len(read_manifest(tmp_path / "m.jsonl")) == 1  # not checked by default (cheap on huge manifests)
    (tmp_path / "m.xlsx").write_text("")
    with pytest.raises(ClapkitError, match="unknown manifest type"):
        read_manifest(tmp_path / "m.xlsx")
    with pytest.raises(ClapkitError, match="not found"):
        read_manifest(tmp_path / "nope.csv")


def test_folder_layout(tmp_path):
    write_clip(tmp_path / "dogs" / "bark.wav", seed=1)
    (tmp_path / "dogs" / "bark.txt").write_text("A dog barks\n\nA dog barking twice\n")
    write_clip(tmp_path / "rain.flac", seed=2)
    (tmp_path / "rain.json").write_text(json.dumps({"captions": ["Rain falls"], "tags": ["rain"],
                                                     "rewrites": ["It is raining"]}))
    write_clip(tmp_path / "lonely.wav", seed=3)  # no captions beside it
    write_clip(tmp_path / "broken.wav", seed=4)
    (tmp_path / "broken.json").write_text("[1, 2]")
    manifest = read_folder(tmp_path)
    assert {e.id: e.captions for e in manifest} == {"dogs/bark": ("A dog barks", "A dog barking twice"),
                                                    "rain": ("Rain falls",)}
    rain = next(e for e in manifest if e.id == "rain")
    assert rain.keywords == ("rain",) and rain.rewrites == ("It is raining",)
    assert manifest.skipped == {"no_caption": 1, "bad_row": 1}
    assert [e.id for e in read_manifest(tmp_path)] == [e.id for e in manifest]  # a folder is a manifest too


def test_manifest_dataset_items(corpus):
    path, ids = corpus(3)
    dataset = ManifestDataset(path, sample_rate=8000)
    assert len(dataset) == 3
    item = dataset[1]
    assert set(item) == {"id", "waveform", "captions", "keywords", "rewrites"}
    assert item["id"] == ids[1] and item["captions"] == ["caption 1", "second caption 1"]
    assert item["keywords"] == ["tag1"] and item["rewrites"] == ["rewrite 1"]
    assert item["waveform"].dtype == np.float32 and item["waveform"].ndim == 1
    assert item["waveform"].size == 1600  # 0.2 s at 8 kHz
    expected = load_audio(path.parent / "audio" / "clip001.wav", 8000)
    np.testing.assert_array_equal(item["waveform"], expected)


def test_manifest_dataset_replaces_bad_items_and_counts(tmp_path, caplog):
    write_clip(tmp_path / "good.wav", seed=1)
    write_audio(tmp_path / "silent.wav", np.zeros(1600, dtype=np.float32), RATE)
    (tmp_path / "garbage.wav").write_bytes(b"RIFF....not really a wave file")
    (tmp_path / "empty.wav").write_bytes(b"")
    write_audio(tmp_path / "nosamples.wav", np.zeros(0, dtype=np.float32), RATE)
    rows = [{"id": n, "audio": f"{n}.wav", "caption": f"{n} clip"}
            for n in ("silent", "garbage", "empty", "nosamples", "missing", "good")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = ManifestDataset(read_manifest(tmp_path / "m.jsonl"), sample_rate=RATE)
    with caplog.at_level(logging.WARNING, logger="clapkit.train"):
        assert [dataset[i]["id"] for i in range(len(dataset))] == ["good"] * len(dataset)
    assert dataset.skipped == {"silent": 1, "undecodable": 1, "empty": 2, "missing": 1}
    assert sum("skipping" in r.message for r in caplog.records) == 5  # each bad item logged once, then remembered


def test_manifest_dataset_keyword_captions_and_all_bad(tmp_path):
    write_clip(tmp_path / "a.wav", seed=1)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav", "keywords": ["Dog", "Bark"]}) + "\n")
    with pytest.raises(ClapkitError, match="no usable items"):
        ManifestDataset(tmp_path / "m.jsonl", sample_rate=RATE)[0]  # a keywords-only item has no caption ...
    first = ManifestDataset(tmp_path / "m.jsonl", sample_rate=RATE, keywords_as_caption=True)[0]
    again = ManifestDataset(tmp_path / "m.jsonl", sample_rate=RATE, keywords_as_caption=True)[0]
    assert len(first["captions"]) == 1 and "dog" in first["captions"][0].lower()  # ... unless one is made
    assert first["captions"] == again["captions"]
    (tmp_path / "none.jsonl").write_text("{}\n")
    with pytest.raises(ClapkitError, match="no usable entries"):
        ManifestDataset(tmp_path / "none.jsonl", sample_rate=RATE)
