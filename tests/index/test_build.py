"""Building an index from audio files: embedding through the store (cached, resumable), incremental updates,
removal, the model check, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clapkit import cli
from clapkit.errors import ClapkitError
from clapkit.index import IndexModelMismatchError, IndexSearcher, SoundIndex, build_index, remove_from_index
from clapkit.jobs import run_embed_job
from clapkit.store import EmbeddingStore
from tests.audio_fixtures import write_clips
from tests.index.conftest import LONG_SECONDS, make_library


def test_build_indexes_every_file_with_its_store_embedding(built_library, micro_model):
    library, index_dir = built_library
    index = SoundIndex.open(index_dir)
    files = sorted(str(p) for p in library.rglob("*.wav"))
    assert sorted(i.path for i in index.items.values()) == files
    store = EmbeddingStore(index_dir / "embeddings")
    for item in index.items.values():
        np.testing.assert_allclose(index.embedding(item.id), store.embedding(item.path), atol=1e-6)
    long = index.item_for_path(library / "long" / "recording.wav")
    assert long.duration_seconds == pytest.approx(LONG_SECONDS)
    assert index.model["fingerprint"] == store.info["model"]["fingerprint"]
    assert index.info["store"] == "embeddings"  # relative: the index folder can be moved


def test_rebuilding_reuses_embeddings_and_follows_the_folder(tmp_path, micro_model, micro_model_dir):
    library = make_library(tmp_path / "library", count=4)
    first = build_index(micro_model, [library], tmp_path / "idx", progress=False)
    assert (first.embedded, len(first.added), first.items, first.kind) == (5, 5, 5, "exact")
    again = build_index(micro_model, [library], tmp_path / "idx", progress=False)
    assert (again.embedded, len(again.added), len(again.removed)) == (0, 0, 0)
    ids_before = {i.path: i.id for i in SoundIndex.open(tmp_path / "idx").items.values()}

    write_clips(library / "animals", 1, prefix="meow")  # one new file
    (library / "weather" / "rain-000.wav").unlink()  # one file gone
    changed = build_index(micro_model, [library], tmp_path / "idx", progress=False)
    assert changed.embedded == 1 and [i.path for i in changed.added] == [str(library / "animals" / "meow-000.wav")]
    assert [i.path for i in changed.removed] == [str(library / "weather" / "rain-000.wav")]
    after = SoundIndex.open(tmp_path / "idx")
    assert all(after.item_for_path(p).id == i for p, i in ids_before.items() if after.item_for_path(p))  # stable ids
    assert after.item_for_path(library / "animals" / "meow-000.wav").id == max(ids_before.values()) + 1


def test_remove_and_add_back_without_embedding_again(tmp_path, micro_model):
    library = make_library(tmp_path / "library", count=4)
    build_index(micro_model, [library], tmp_path / "idx", progress=False)
    gone = remove_from_index(tmp_path / "idx", [library / "weather"])
    assert sorted(i.path for i in gone) == sorted(str(p) for p in (library / "weather").glob("*.wav"))
    assert [i.path for i in remove_from_index(tmp_path / "idx", [str(library / "long" / "*.wav")])] == [
        str(library / "long" / "recording.wav")
    ]
    assert len(SoundIndex.open(tmp_path / "idx")) == 2
    back = build_index(micro_model, [library / "weather"], tmp_path / "idx", remove_missing=False, progress=False)
    assert (back.embedded, back.reused, len(back.added), back.items) == (0, 2, 2, 4)


def test_an_interrupted_build_resumes_from_the_store(tmp_path, micro_model):
    library = make_library(tmp_path / "library", count=6)
    files = sorted(str(p) for p in library.rglob("*.wav"))
    # the embedding job of a build that was killed after three files: their batches are in the store
    run_embed_job(micro_model, files[:3], tmp_path / "idx" / "embeddings", batch_size=1, progress=False)
    report = build_index(micro_model, [library], tmp_path / "idx", progress=False)
    assert (report.embedded, report.reused, report.items) == (4, 3, 7)


def test_an_existing_embed_store_is_reused(tmp_path, micro_model):
    library = make_library(tmp_path / "library", count=2)
    run_embed_job(micro_model, [library], tmp_path / "emb", progress=False)
    report = build_index(micro_model, [library], tmp_path / "idx", store=tmp_path / "emb", progress=False)
    assert (report.embedded, report.reused, report.items) == (0, 3, 3)
    assert SoundIndex.open(tmp_path / "idx").store_directory == tmp_path / "emb"


def test_files_that_fail_are_reported_and_left_out(tmp_path, micro_model):
    library = make_library(tmp_path / "library", count=2)
    (library / "broken.wav").write_bytes(b"this is not audio")
    report = build_index(micro_model, [library, tmp_path / "missing.wav"], tmp_path / "idx", progress=False)
    reasons = {f.source: f.reason for f in report.failures}
    assert str(library / "broken.wav") in reasons and str(tmp_path / "missing.wav") in reasons
    assert report.items == 3
    with pytest.raises(ClapkitError, match="no audio files to index"):
        build_index(micro_model, [tmp_path / "nothing-here"], tmp_path / "idx2", progress=False)


def test_another_model_is_refused_for_building_and_for_queries(built_library, tmp_path, micro_model, other_model_dir):
    import clapkit

    library, index_dir = built_library
    other = clapkit.load(other_model_dir)
    with pytest.raises(IndexModelMismatchError, match="was built with model"):
        IndexSearcher(SoundIndex.open(index_dir), other)
    library2 = make_library(tmp_path / "library", count=2)
    build_index(other, [library2], tmp_path / "idx", progress=False)
    with pytest.raises(IndexModelMismatchError, match="was built with model"):
        build_index(micro_model, [library2], tmp_path / "idx", progress=False)
    assert SoundIndex.open(tmp_path / "idx").model["fingerprint"] != SoundIndex.open(index_dir).model["fingerprint"]


def test_cli_build_info_add_remove(tmp_path, micro_model_dir, capsys):
    library = make_library(tmp_path / "library", count=2)
    out = tmp_path / "idx"
    model = ["--model", str(micro_model_dir), "--no-progress"]
    assert cli.main(["index", "build", str(library / "animals"), "--out", str(out), *model]) == 0
    assert "index" in capsys.readouterr().err
    assert cli.main(["index", "add", str(out), str(library / "weather"), "--no-progress"]) == 0  # the index's model
    assert cli.main(["index", "info", str(out), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["items"] == 2 and info["kind"] == "exact" and info["model"]["source"] == str(micro_model_dir)
    assert cli.main(["index", "remove", str(out), str(library / "animals")]) == 0
    assert capsys.readouterr().out.strip() == str(library / "animals" / "bark-000.wav")
    assert cli.main(["index", "info", str(tmp_path / "nope")]) == 2
    assert "not a sound index" in capsys.readouterr().err
    assert cli.main(["index", "build", str(library / "weather"), "--out", str(tmp_path / "new"), "--quiet"]) == 0
    assert SoundIndex.open(tmp_path / "new").model["source"] == "default"  # a new index: the default model
