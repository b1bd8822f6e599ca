"""The evaluation embedding cache: keys, hits and misses, failed rows, fingerprints."""

import os
from types import SimpleNamespace

import numpy as np
import torch

from clapkit.eval.cache import EmbeddingCache, file_key, model_fingerprint


def test_lookup_computes_only_misses_and_persists(tmp_path):
    calls = []

    def compute(indices):
        calls.append(list(indices))
        return np.array([[float(i), 1.0] for i in indices])

    cache = EmbeddingCache(tmp_path, "f" * 64)
    first = cache.lookup("text", ["a", "b"], compute)
    np.testing.assert_array_equal(first, [[0, 1], [1, 1]])
    again = EmbeddingCache(tmp_path, "f" * 64)
    second = again.lookup("text", ["b", "c", "a"], compute)
    assert calls == [[0, 1], [1]]  # only "c" (index 1 of the second call) was computed
    np.testing.assert_array_equal(second, [[1, 1], [1, 1], [0, 1]])
    assert again.stats()["hits"] == 2 and again.stats()["misses"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"text-{'f' * 20}.npz"]
    with np.load(tmp_path / f"text-{'f' * 20}.npz", allow_pickle=False) as data:
        assert data["keys"].tolist() == ["a", "b", "c"]
    other = EmbeddingCache(tmp_path, "e" * 64)  # another model never sees these rows
    other.lookup("text", ["a"], compute)
    assert calls[-1] == [0]


def test_failed_rows_are_returned_but_not_kept(tmp_path):
    cache = EmbeddingCache(tmp_path, "f" * 64)
    out = cache.lookup("audio", ["x", "y"], lambda idx: np.array([[np.nan, np.nan], [1.0, 2.0]]))
    assert np.isnan(out[0]).all() and out[1].tolist() == [1.0, 2.0]
    out = cache.lookup("audio", ["x", "y"], lambda idx: np.array([[5.0, 5.0]] * len(idx)))
    assert out[0].tolist() == [5.0, 5.0] and out[1].tolist() == [1.0, 2.0]  # x retried, y cached


def test_disabled_cache_computes_everything(tmp_path):
    cache = EmbeddingCache(None, "f" * 64)
    out = cache.lookup("text", ["a"], lambda idx: np.ones((len(idx), 3)))
    assert out.shape == (1, 3) and not list(tmp_path.iterdir())


def test_file_key_changes_with_the_file(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"1234")
    key = file_key(path)
    assert key.startswith(str(path.resolve())) and "|4|" in key
    os.utime(path, ns=(1, 1))
    assert file_key(path) != key


def test_fingerprint_depends_on_weights_and_config():
    def fake(seed, name="m"):
        torch.manual_seed(seed)
        config = SimpleNamespace(to_dict=lambda: {"name": name})
        return SimpleNamespace(config=config, module=torch.nn.Linear(3, 2))

    assert model_fingerprint(fake(0)) == model_fingerprint(fake(0))
    assert model_fingerprint(fake(0)) != model_fingerprint(fake(1))
    assert model_fingerprint(fake(0)) != model_fingerprint(fake(0, name="n"))
