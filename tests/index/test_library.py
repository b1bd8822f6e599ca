"""The index directory: stable ids, add/remove in place, kind switches, generations, model identity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clapkit.errors import ClapkitError
from clapkit.index import EXACT, IVF, IndexModelMismatchError, SoundIndex, build_from_vectors
from tests.index.conftest import clustered_rows

MODEL = {"name": "m", "source": "m-dir", "weights": None, "fingerprint": "f1", "config_sha256": "c1"}


def paths(count: int, start: int = 0) -> list[str]:
    return [f"/library/sound-{i:05d}.wav" for i in range(start, start + count)]


def test_round_trip_with_stable_ids_that_are_never_reused(tmp_path):
    vectors = clustered_rows(30, 16, clusters=3)
    index = build_from_vectors(tmp_path / "idx", MODEL, paths(20), vectors[:20], [1.5] * 20)
    assert sorted(index.items) == list(range(20))
    index.remove([3, 4])
    new_ids = index.add(paths(10, start=20), vectors[20:])
    assert new_ids == list(range(20, 30))
    assert index.add(paths(2), vectors[:2]) == []  # already indexed: skipped
    index.save()
    opened = SoundIndex.open(tmp_path / "idx")
    assert len(opened) == 28 and 3 not in opened.items and opened.item(25).path == paths(1, 25)[0]
    assert opened.item(0).duration_seconds == 1.5 and np.isnan(opened.item(25).duration_seconds)
    assert opened.item_for_path(paths(1, 7)[0]).id == 7
    np.testing.assert_allclose(opened.embedding(25), vectors[25], atol=1e-7)
    hits = opened.search(vectors[25], 3)
    assert hits[0].item.id == 25 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert all(h.item.id != 25 for h in opened.search(vectors[25], 3, exclude=[25]))
    with pytest.raises(ClapkitError, match="no item"):
        opened.embedding(3)


def test_commits_are_generations_and_old_ones_are_deleted(tmp_path):
    index = build_from_vectors(tmp_path / "idx", MODEL, paths(5), clustered_rows(5, 8, 2))
    index.remove([0])
    index.save()
    info = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert info["generation"] == 1 and info["next_id"] == 5 and info["model"] == MODEL
    names = sorted(p.name for p in (tmp_path / "idx").iterdir() if not p.name.startswith("."))
    assert names == ["index.json", "items-1.csv", "vectors-1.faiss"]
    assert set(index.file_sizes()) == {"vectors", "items"}


def test_a_second_writer_is_refused_instead_of_losing_changes(tmp_path):
    build_from_vectors(tmp_path / "idx", MODEL, paths(5), clustered_rows(5, 8, 2))
    first, second = SoundIndex.open(tmp_path / "idx"), SoundIndex.open(tmp_path / "idx")
    first.remove([1])
    first.save()
    second.remove([2])
    with pytest.raises(ClapkitError, match="changed by another process"):
        second.save()
    assert 2 in SoundIndex.open(tmp_path / "idx").items


def test_kind_switches_when_the_library_crosses_the_threshold_and_back(tmp_path):
    vectors = clustered_rows(2000, 16, clusters=20)
    index = build_from_vectors(tmp_path / "idx", MODEL, paths(1000), vectors[:1000], approximate_from=1500)
    assert index.kind == EXACT
    index.add(paths(1000, start=1000), vectors[1000:])
    assert index.kind == IVF and index.vectors.trained_on == 2000
    index.save()
    opened = SoundIndex.open(tmp_path / "idx")
    assert opened.kind == IVF and opened.info["kind"] == IVF
    assert opened.search(vectors[1500], 1)[0].item.id == 1500
    opened.remove(range(1200))  # 800 left: above half the threshold, stays approximate
    assert opened.kind == IVF
    opened.remove(range(1200, 1300))  # 700 left: below half the threshold
    assert opened.kind == EXACT and len(opened.vectors) == 700
    assert opened.search(vectors[1999], 1)[0].item.id == 1999


def test_a_query_from_another_model_is_refused(tmp_path):
    index = build_from_vectors(tmp_path / "idx", MODEL, paths(3), clustered_rows(3, 8, 1))
    index.check_model(dict(MODEL, source="elsewhere"))  # same weights and config, another path: fine
    with pytest.raises(IndexModelMismatchError, match="was built with model 'm'.*fingerprint f2"):
        index.check_model(dict(MODEL, fingerprint="f2"))
    with pytest.raises(IndexModelMismatchError):
        index.check_model(dict(MODEL, config_sha256="c2"))


def test_damaged_or_foreign_folders_give_clear_errors(tmp_path):
    with pytest.raises(ClapkitError, match="not a sound index"):
        SoundIndex.open(tmp_path)
    build_from_vectors(tmp_path / "idx", MODEL, paths(3), clustered_rows(3, 8, 1))
    (tmp_path / "idx" / "items-0.csv").unlink()
    with pytest.raises(ClapkitError, match="missing"):
        SoundIndex.open(tmp_path / "idx")
    (tmp_path / "idx" / "index.json").write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(ClapkitError, match="is not 'clapkit-index'"):
        SoundIndex.open(tmp_path / "idx")
    with pytest.raises(ClapkitError, match="already holds an index"):
        SoundIndex.create(tmp_path / "idx", MODEL, 8)
