"""FAISS vector index: kinds, ids, add/remove in place, recall of the approximate kind, files."""

from __future__ import annotations

import numpy as np
import pytest

from clapkit.errors import ClapkitError
from clapkit.index.vectors import EXACT, IVF, VectorIndex, choose_kind, nlist_for
from tests.index.conftest import clustered_rows, unit_rows


def test_choose_kind_switches_at_the_threshold_with_hysteresis():
    assert choose_kind(100, approximate_from=1000) == EXACT
    assert choose_kind(999, approximate_from=1000) == EXACT
    assert choose_kind(1000, approximate_from=1000) == IVF
    assert choose_kind(1200, current=IVF, approximate_from=2000) == IVF  # stays approximate down to half
    assert choose_kind(999, current=IVF, approximate_from=2000) == EXACT
    assert choose_kind(500, approximate_from=10) == EXACT  # too few vectors to train 16 cells of 39


def test_nlist_grows_with_the_square_root_and_respects_the_training_minimum():
    assert nlist_for(100_000) == round(4 * np.sqrt(100_000))
    assert nlist_for(20_000) == 20_000 // 39
    assert nlist_for(10) == 16


def test_exact_search_finds_the_true_neighbours_and_honours_exclusions():
    vectors = unit_rows(500, 16)
    ids = np.arange(1000, 1500)
    index = VectorIndex.build(ids, vectors, EXACT)
    hits = index.search(vectors[:3], 5)
    truth = np.argsort(-(vectors[:3] @ vectors.T), axis=1)[:, :5] + 1000
    np.testing.assert_array_equal(hits.ids, truth)
    assert np.all(np.diff(hits.scores, axis=1) <= 1e-6)
    hits = index.search(vectors[0], 3, exclude=[1000])
    assert 1000 not in hits.ids[0] and list(hits.ids[0]) == list(truth[0, 1:4])


def test_remove_and_read_back_by_id_in_both_kinds():
    vectors = clustered_rows(2000, 16, clusters=20)
    ids = np.arange(2000) * 3  # ids need not be contiguous
    for kind in (EXACT, IVF):
        index = VectorIndex.build(ids, vectors, kind)
        assert index.kind == kind and len(index) == 2000
        np.testing.assert_allclose(index.vectors([30, 33]), vectors[[10, 11]])
        assert index.remove([30, 33, 7]) == 2  # 7 is not an id
        assert len(index) == 1998
        assert 30 not in index.search(vectors[10], 10).ids[0]
        with pytest.raises(ClapkitError):
            index.vectors([30])


def test_ivf_recall_at_10_against_exact_search():
    vectors = clustered_rows(6000, 32, clusters=60)
    queries = clustered_rows(100, 32, clusters=60, seed=0)[::-1].copy()
    ids = np.arange(6000)
    exact = VectorIndex.build(ids, vectors, EXACT).search(queries, 10).ids
    approximate = VectorIndex.build(ids, vectors, IVF).search(queries, 10).ids
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
    assert recall >= 0.95


def test_rebuilt_changes_kind_and_keeps_ids_and_vectors():
    vectors = clustered_rows(1500, 16, clusters=10)
    ids = np.arange(1500) + 10
    exact = VectorIndex.build(ids, vectors, EXACT)
    ivf = exact.rebuilt(ids, IVF)
    assert ivf.kind == IVF and ivf.trained_on == 1500 and len(ivf) == 1500
    np.testing.assert_allclose(ivf.vectors([10, 1509]), vectors[[0, 1499]])
    with pytest.raises(ClapkitError):
        exact.rebuilt(ids[:5], IVF)


def test_ivf_asks_for_retraining_after_a_fourfold_change():
    vectors = clustered_rows(5000, 16, clusters=10)
    index = VectorIndex.build(np.arange(1000), vectors[:1000], IVF)
    assert not index.needs_retraining()
    index.add(np.arange(1000, 5000), vectors[1000:])
    assert index.needs_retraining()


def test_save_and_load_round_trip(tmp_path):
    vectors = clustered_rows(1000, 8, clusters=10)
    index = VectorIndex.build(np.arange(1000), vectors, IVF, nprobe=4)
    index.remove([5])
    index.save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss", IVF, 8, trained_on=1000, nprobe=4)
    assert len(loaded) == 999
    np.testing.assert_array_equal(loaded.search(vectors[:4], 5).ids, index.search(vectors[:4], 5).ids)
    with pytest.raises(ClapkitError, match="dimensions"):
        VectorIndex.load(tmp_path / "v.faiss", IVF, 9, trained_on=1000, nprobe=4)
    (tmp_path / "bad.faiss").write_bytes(b"not an index")
    with pytest.raises(ClapkitError, match="unreadable"):
        VectorIndex.load(tmp_path / "bad.faiss", IVF, 8, trained_on=0, nprobe=4)


def test_wrong_shapes_are_refused():
    index = VectorIndex.empty_exact(8)
    with pytest.raises(ClapkitError, match="do not fit"):
        index.add([1], unit_rows(1, 9))
    with pytest.raises(ClapkitError, match="ids"):
        index.add([1, 2], unit_rows(1, 8))
    with pytest.raises(ClapkitError, match="at least"):
        VectorIndex.trained_ivf(unit_rows(100, 8))
