"""The embedding store: atomic parts, merging (sorted, de-duplicated), recovery from an interrupted merge, search."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from clapkit import ClapkitError
from clapkit import store as store_module
from clapkit.inputs import Failure
from clapkit.store import EmbeddingStore, Part, merge_parts, prepare_store, read_info, read_state, write_part

DIM = 6


def _info(fingerprint="f1"):
    return {"embedding_dim": DIM, "model": {"name": "m", "source": "m", "weights": "w", "tokenizer": None,
                                            "fingerprint": fingerprint, "config_sha256": "c"}}  # fmt: skip


def _vectors(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _part(paths, seed, failures=()):
    return Part(
        list(paths),
        _vectors(len(paths), seed),
        np.arange(len(paths), dtype=float),
        np.zeros(len(paths), bool),
        [Failure(p, r) for p, r in failures],
    )


@pytest.fixture
def out(tmp_path):
    return prepare_store(tmp_path / "store", _info())


def test_merge_sorts_by_path_and_keeps_rows_aligned(out):
    first, second = _part(["/d/b.wav", "/d/d.wav"], 1), _part(["/d/a.wav", '/d/c, "odd" é.wav'], 2)
    write_part(out, first)
    write_part(out, second)
    assert merge_parts(out) == 4
    store = EmbeddingStore(out)
    assert store.paths == sorted(first.paths + second.paths)
    for part in (first, second):
        for path, vector in zip(part.paths, part.embeddings):
            np.testing.assert_array_equal(store.embedding(path), vector)
    assert not list((out / "parts").iterdir()) and store.pending_parts == 0
    assert isinstance(store.embeddings, np.memmap) and store.embeddings.dtype == np.float32
    header = (out / "index.csv").read_text().splitlines()[0]
    assert header == "row,path,duration_seconds,silent"


def test_state_and_errors_follow_the_latest_outcome(out):
    write_part(out, _part(["/d/a.wav"], 1, failures=[("/d/bad.wav", "cannot decode"), ("/d/late.wav", "truncated")]))
    state = read_state(out)
    assert set(state.done) == {"/d/a.wav"} and state.failed == {"/d/bad.wav", "/d/late.wav"}
    merge_parts(out)
    assert [f.source for f in EmbeddingStore(out).errors] == ["/d/bad.wav", "/d/late.wav"]
    write_part(out, _part(["/d/late.wav"], 2))  # fixed and re-run: no longer an error
    merge_parts(out)
    store = EmbeddingStore(out)
    assert store.paths == ["/d/a.wav", "/d/late.wav"] and [f.source for f in store.errors] == ["/d/bad.wav"]
    assert read_state(out).failed == {"/d/bad.wav"}


def test_parts_with_only_failures_do_not_rewrite_embeddings(out):
    write_part(out, _part(["/d/a.wav", "/d/b.wav"], 1))
    merge_parts(out)
    before = os.stat(out / "embeddings.npy").st_ino
    write_part(out, _part([], 0, failures=[("/d/x.wav", "file not found")]))
    assert merge_parts(out) == 2
    assert os.stat(out / "embeddings.npy").st_ino == before
    assert [f.source for f in EmbeddingStore(out).errors] == ["/d/x.wav"]


@pytest.mark.parametrize("crash_at", ["embeddings.npy", "index.csv"])
def test_an_interrupted_merge_loses_nothing(out, monkeypatch, crash_at):
    write_part(out, _part(["/d/a.wav", "/d/c.wav"], 1))
    merge_parts(out)
    extra = _part(["/d/b.wav"], 2)
    write_part(out, extra)
    real_replace = os.replace

    def crashing_replace(src, dst):
        if str(dst).endswith(crash_at):
            raise KeyboardInterrupt  # the process dies here
        real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", crashing_replace)
    with pytest.raises(KeyboardInterrupt):
        merge_parts(out)
    monkeypatch.setattr(store_module.os, "replace", real_replace)
    store = EmbeddingStore(out)  # consistent: either the old store (+ the part pending) or the new one
    assert len(store.embeddings) == len(store.paths)
    assert set(read_state(out).done) == {"/d/a.wav", "/d/b.wav", "/d/c.wav"}
    merge_parts(out)
    store = EmbeddingStore(out)
    assert store.paths == ["/d/a.wav", "/d/b.wav", "/d/c.wav"]
    np.testing.assert_array_equal(store.embedding("/d/b.wav"), extra.embeddings[0])
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_a_store_of_another_model_is_refused(out):
    with pytest.raises(
        ClapkitError, match=r"holds embeddings of model 'm'.*fingerprint f1.*fingerprint f2.*another --out"
    ):
        prepare_store(out, _info("f2"))
    prepare_store(out, _info("f1"))  # the same model resumes
    (out / "store.json").write_text(json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(ClapkitError, match="embed into a new folder"):
        read_info(out)
    with pytest.raises(ClapkitError, match=r"not an embedding store.*clapkit embed"):
        EmbeddingStore(out.parent)
    (out.parent / "data").mkdir()
    (out.parent / "data" / "song.wav").write_bytes(b"")
    with pytest.raises(ClapkitError, match=r"data is a folder with other files \(song.wav.*new or empty folder"):
        prepare_store(out.parent / "data", _info())


def test_search_matches_brute_force_across_blocks(out, monkeypatch):
    paths = [f"/d/{i:03d}.wav" for i in range(50)]
    write_part(out, _part(paths[:20], 1))
    write_part(out, _part(paths[20:], 2))
    merge_parts(out)
    monkeypatch.setattr(store_module, "_SEARCH_BLOCK", 7)
    store = EmbeddingStore(out)
    query = _vectors(1, 9)[0]
    scores = np.asarray(store.embeddings) @ query
    expected = np.argsort(-scores, kind="stable")[:5]
    matches = store.search(query, top_k=5)
    assert [m.row for m in matches] == expected.tolist()
    np.testing.assert_allclose([m.score for m in matches], scores[expected], rtol=1e-6)
    assert all(a.score >= b.score for a, b in zip(matches, matches[1:]))
    excluded = store.search(query, top_k=5, exclude=[matches[0].path])
    assert matches[0].path not in [m.path for m in excluded] and excluded[0].path == matches[1].path
    with pytest.raises(ClapkitError, match="dimensions"):
        store.search(np.ones(DIM + 1))
