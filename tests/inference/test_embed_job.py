"""The embed job in-process: store content, determinism, resume, sharding, bad files, Ctrl-C."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

import clapkit
from clapkit import ClapkitError, jobs
from clapkit.cli import main
from clapkit.jobs import Shard, decode_for_model, plan_batches, run_embed_job
from clapkit.store import EmbeddingStore
from tests.audio_fixtures import clip, write_audio, write_clips
from tests.small_models import MICRO_RATE, micro_config


def _corpus(root):
    """Varied durations (some longer than the 10 s clip), another sample rate, a stereo file and a silent one."""
    paths = write_clips(root, 9, seconds=(1.0, 3.0, 0.4, 12.5, 2.0, 10.0))
    write_audio(root / "other-rate.flac", clip(2.0, 11, 22050), 22050)
    write_audio(root / "stereo.wav", np.stack([clip(1.5, 12), clip(1.5, 13)], axis=1), MICRO_RATE)
    write_audio(root / "silence.wav", np.zeros(MICRO_RATE, np.float32), MICRO_RATE)
    return paths + [root / "other-rate.flac", root / "stereo.wav", root / "silence.wav"]


def _job(model, sources, out, **kwargs):
    kwargs.setdefault("progress", False)
    return run_embed_job(model, sources, out, **kwargs)


def test_store_holds_the_embeddings_of_embed_audio(tmp_path, micro_model):
    files = _corpus(tmp_path / "audio")
    report = _job(micro_model, [tmp_path / "audio"], tmp_path / "store", batch_size=4)
    assert report.merged and report.stored == len(files) == report.embedded and report.failures == []
    store = EmbeddingStore(tmp_path / "store")
    assert store.paths == sorted(str(p) for p in files)
    expected = micro_model.embed_audio([str(p) for p in store.paths])
    np.testing.assert_allclose(store.embeddings, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(store.embeddings, axis=1), 1.0, atol=1e-5)
    silent = dict(zip(store.paths, store.silent))
    assert silent[str(tmp_path / "audio" / "silence.wav")] and sum(silent.values()) == 1
    durations = dict(zip(store.paths, store.durations))
    assert durations[str(files[3])] == pytest.approx(12.5)
    assert store.info["model"]["name"] == micro_model.config.name and store.info["embedding_dim"] == 32


def test_batch_size_workers_and_order_do_not_change_the_store(tmp_path, micro_model):
    files = [str(p) for p in _corpus(tmp_path / "audio")]
    _job(micro_model, files, tmp_path / "a", batch_size=1, workers=1)
    shuffled = [files[i] for i in np.random.default_rng(0).permutation(len(files))]
    _job(micro_model, shuffled, tmp_path / "b", batch_size=5, workers=3, prefetch=0)
    a, b = EmbeddingStore(tmp_path / "a"), EmbeddingStore(tmp_path / "b")
    assert a.paths == b.paths
    assert (tmp_path / "a" / "index.csv").read_text() == (tmp_path / "b" / "index.csv").read_text()
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)


def test_shards_merge_into_the_single_process_store(tmp_path, micro_model):
    audio = tmp_path / "audio"
    _corpus(audio)
    _job(micro_model, [audio], tmp_path / "single", batch_size=3)
    first = _job(micro_model, [audio], tmp_path / "sharded", batch_size=3, shard=Shard(1, 3))
    second = _job(micro_model, [audio], tmp_path / "sharded", batch_size=3, shard=Shard(0, 3))
    assert not first.merged and not second.merged  # rank 2 has not run yet
    last = _job(micro_model, [audio], tmp_path / "sharded", batch_size=3, shard=Shard(2, 3))
    assert last.merged and first.embedded + second.embedded + last.embedded == last.stored == 12
    single, sharded = EmbeddingStore(tmp_path / "single"), EmbeddingStore(tmp_path / "sharded")
    assert single.paths == sharded.paths
    np.testing.assert_array_equal(single.embeddings, sharded.embeddings)  # the same batches: bit for bit
    with pytest.raises(ClapkitError, match="rank 2 of world size 2"):
        Shard(2, 2)


def test_rerun_skips_what_is_done_and_adds_new_files(tmp_path, micro_model):
    audio = tmp_path / "audio"
    write_clips(audio, 5)
    _job(micro_model, [audio], tmp_path / "store")
    before = np.array(EmbeddingStore(tmp_path / "store").embeddings)
    again = _job(micro_model, [audio], tmp_path / "store")
    assert again.embedded == 0 and again.already_done == 5 and again.merged
    np.testing.assert_array_equal(EmbeddingStore(tmp_path / "store").embeddings, before)
    write_clips(audio, 2, prefix="new")
    more = _job(micro_model, [audio], tmp_path / "store")
    assert more.embedded == 2 and more.already_done == 5
    store = EmbeddingStore(tmp_path / "store")
    assert len(store) == 7
    assert [p.rsplit("/", 1)[1][:4] for p in store.paths] == ["clip"] * 5 + ["new-"] * 2
    np.testing.assert_array_equal(store.embeddings[:5], before)  # rows already there are kept as they were


def test_ctrl_c_loses_at_most_the_current_batch(tmp_path, micro_model, monkeypatch):
    audio = tmp_path / "audio"
    write_clips(audio, 10)
    _job(micro_model, [audio], tmp_path / "reference", batch_size=2)
    real, calls = micro_model.embed_waveforms, []

    def interrupted(waveforms, batch_size=8):
        calls.append(len(waveforms))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(waveforms, batch_size)

    monkeypatch.setattr(micro_model, "embed_waveforms", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _job(micro_model, [audio], tmp_path / "store", batch_size=2)
    monkeypatch.setattr(micro_model, "embed_waveforms", real)
    assert len(list((tmp_path / "store" / "parts").glob("part-*.npz"))) == 2  # two batches kept
    resumed = _job(micro_model, [audio], tmp_path / "store", batch_size=2)
    assert resumed.already_done == 4 and resumed.embedded == 6
    np.testing.assert_array_equal(
        EmbeddingStore(tmp_path / "store").embeddings, EmbeddingStore(tmp_path / "reference").embeddings
    )


def test_bad_files_are_reported_and_the_job_goes_on(tmp_path, micro_model_dir, capsys):
    audio = tmp_path / "audio"
    write_clips(audio, 4)
    (audio / "garbage.wav").write_bytes(b"this is not audio")
    (audio / "empty.flac").write_bytes(b"")
    write_audio(audio / "nan.wav", np.full(800, np.nan, np.float32), MICRO_RATE, subtype="FLOAT")
    out = tmp_path / "store"
    (tmp_path / "more.txt").write_text("missing.wav\n")  # a list file: entries relative to it
    code = main(["embed", str(audio), "--files-from", str(tmp_path / "more.txt"), "--model", str(micro_model_dir),
                 "--out", str(out), "--batch-size", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and "file/s" in err and "skipped 4 input(s)" in err and "errors.csv" in err
    errors = {f.source.rsplit("/", 1)[-1]: f.reason for f in EmbeddingStore(out).errors}
    assert set(errors) == {"garbage.wav", "empty.flac", "nan.wav", "missing.wav"}
    assert "empty" in errors["empty.flac"] and "not found" in errors["missing.wav"] and "NaN" in errors["nan.wav"]
    assert len(EmbeddingStore(out)) == 4


def test_a_store_refuses_another_model(tmp_path, micro_model):
    write_clips(tmp_path / "audio", 2)
    _job(micro_model, [tmp_path / "audio"], tmp_path / "store")
    torch.manual_seed(1)
    config = micro_config().replace(name="micro-other")
    clapkit.register_model(config)
    other = clapkit.load(config.name, weights="random")
    with pytest.raises(ClapkitError, match="different models cannot be mixed"):
        _job(other, [tmp_path / "audio"], tmp_path / "store")
    with pytest.raises(ClapkitError, match="no audio files to embed"):
        _job(micro_model, [tmp_path / "nothing-here"], tmp_path / "store")


def test_non_fusion_models_decode_only_the_first_clip(tmp_path):
    config = micro_config()
    long_file, short_file = write_clips(tmp_path, 2, seconds=(25.0, 3.0))
    assert decode_for_model(str(long_file), config).size == config.frontend.clip_samples + 1
    assert decode_for_model(str(short_file), config).size == 3 * MICRO_RATE
    fusion = config.replace(audio=dataclasses.replace(config.audio, enable_fusion=True))
    assert decode_for_model(str(long_file), fusion).size == 25 * MICRO_RATE


def test_batches_group_similar_durations():
    paths = [f"/f{i}" for i in range(6)]
    batches = plan_batches(paths, [5.0, 1.0, float("nan"), 1.0, 9.0, 4.0], batch_size=2)
    assert batches == [["/f1", "/f3"], ["/f5", "/f0"], ["/f4", "/f2"]]
    with pytest.raises(ClapkitError, match="batch size"):
        plan_batches(paths, [1.0] * 6, 0)


def test_workers_decode_ahead_of_the_model_within_the_prefetch_bound(tmp_path, micro_model, monkeypatch):
    write_clips(tmp_path / "audio", 12)
    decoded, threads, ahead = [], set(), []
    real_decode, real_embed = jobs.decode_for_model, micro_model.embed_waveforms

    def decode(path, config):
        threads.add(threading.current_thread().name)
        decoded.append(path)
        return real_decode(path, config)

    def embed(waveforms, batch_size=8):
        ahead.append(len(decoded))  # files whose decoding had started when the model took this batch
        return real_embed(waveforms, batch_size)

    monkeypatch.setattr(jobs, "decode_for_model", decode)
    monkeypatch.setattr(micro_model, "embed_waveforms", embed)
    _job(micro_model, [tmp_path / "audio"], tmp_path / "store", batch_size=2, workers=2, prefetch=1)
    assert len(ahead) == 6 and len(decoded) == 12
    assert threads and all(name.startswith("clapkit-decode") for name in threads)
    assert all(count <= 2 * (k + 2) for k, count in enumerate(ahead))  # never more than 1 batch ahead
