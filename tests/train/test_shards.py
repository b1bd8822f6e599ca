"""Webdataset shards: writer/reader round trip, rank and worker splits, shuffling, resumption, bad items."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import soundfile
import torch

from clapkit.audio.io import load_audio
from clapkit.errors import ClapkitError
from clapkit.train.shards import ShardDataset, list_shards, scan_shard, write_shards
from tests.train.conftest import RATE


def ids(dataset) -> list[str]:
    return [item["id"] for item in dataset]


@pytest.fixture
def shards(corpus, tmp_path):
    """11 clips in shards of at most 3 items (4 shards)."""
    manifest, clip_ids = corpus(11)
    result = write_shards(manifest, tmp_path / "shards", sample_rate=RATE, max_items_per_shard=3)
    return tmp_path / "shards", clip_ids, result


def test_round_trip(shards, corpus):
    folder, clip_ids, result = shards
    assert result.items == 11 and len(result.shards) == 4 and sum(result.skipped.values()) == 0
    assert json.loads((folder / "sizes.json").read_text()) == {f"shard-{i:06d}.tar": n for i, n in
                                                                enumerate([3, 3, 3, 2])}
    with tarfile.open(result.shards[0]) as tar:  # webdataset layout: <key>.flac, <key>.json, in key order
        assert tar.getnames() == ["000000000.flac", "000000000.json", "000000001.flac", "000000001.json",
                                  "000000002.flac", "000000002.json"]
        metadata = json.loads(tar.extractfile("000000001.json").read())
    assert metadata["text"] == ["caption 1", "second caption 1"] and metadata["tag"] == ["tag1"]
    items = list(ShardDataset(folder, sample_rate=RATE, shuffle=False))
    assert [i["id"] for i in items] == clip_ids
    manifest_dir = folder.parent
    for i, item in enumerate(items):
        assert item["captions"] == [f"caption {i}"] + ([f"second caption {i}"] if i % 2 else [])
        assert item["keywords"] == [f"tag{i}"] and item["rewrites"] == [f"rewrite {i}"]
        original = load_audio(manifest_dir / "audio" / f"clip{i:03d}.wav", RATE)
        assert item["waveform"].dtype == np.float32
        np.testing.assert_allclose(item["waveform"], original, atol=1.0 / 32768 + 1e-6)  # 16-bit FLAC
    resampled = next(iter(ShardDataset(folder, sample_rate=8000, shuffle=False)))
    assert resampled["waveform"].size == items[0]["waveform"].size // 2


def test_original_bytes_and_overwrite(corpus, tmp_path):
    manifest, clip_ids = corpus(3)
    out = tmp_path / "orig"
    result = write_shards(manifest, out, sample_rate=None)
    with tarfile.open(result.shards[0]) as tar:
        assert tar.getnames()[0] == "000000000.wav"
        assert tar.extractfile("000000000.wav").read() == (tmp_path / "audio" / "clip000.wav").read_bytes()
    assert ids(ShardDataset(out, sample_rate=RATE, shuffle=False)) == clip_ids
    with pytest.raises(ClapkitError, match="overwrite"):
        write_shards(manifest, out)
    assert write_shards(manifest, out, overwrite=True, max_items_per_shard=1).items == 3
    assert len(list_shards(out)) == 3


def test_parallel_writing_gives_the_same_shards(corpus, tmp_path):
    manifest, _ = corpus(5)
    one = write_shards(manifest, tmp_path / "one", sample_rate=8000, max_items_per_shard=2)
    two = write_shards(manifest, tmp_path / "two", sample_rate=8000, max_items_per_shard=2, workers=2)
    assert [p.read_bytes() for p in one.shards] == [p.read_bytes() for p in two.shards]


def test_shuffle_is_seeded_per_epoch(shards):
    folder, clip_ids, _ = shards
    dataset = ShardDataset(folder, sample_rate=RATE, shuffle_buffer=4, seed=3)
    epoch0 = ids(dataset)
    assert sorted(epoch0) == clip_ids and epoch0 != clip_ids
    assert ids(ShardDataset(folder, sample_rate=RATE, shuffle_buffer=4, seed=3)) == epoch0
    dataset.set_epoch(1)
    epoch1 = ids(dataset)
    assert sorted(epoch1) == clip_ids and epoch1 != epoch0
    assert ids(ShardDataset(folder, sample_rate=RATE, shuffle_buffer=4, seed=4)) != epoch0


@pytest.mark.parametrize("world_size", [2, 3, 6])  # 6 ranks > 4 shards: items are split instead of shards
def test_ranks_are_disjoint_and_cover(shards, world_size):
    folder, clip_ids, _ = shards
    per_rank = [ids(ShardDataset(folder, sample_rate=RATE, seed=1, rank=r, world_size=world_size))
                for r in range(world_size)]
    assert sorted(sum(per_rank, [])) == clip_ids
    assert all(per_rank)


def test_rank_from_environment(shards, monkeypatch):
    folder, _, _ = shards
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    from_env = ShardDataset(folder, sample_rate=RATE, seed=1)
    assert (from_env.rank, from_env.world_size) == (1, 2)
    assert ids(from_env) == ids(ShardDataset(folder, sample_rate=RATE, seed=1, rank=1, world_size=2))
    with pytest.raises(ClapkitError, match="both rank and world_size"):
        ShardDataset(folder, sample_rate=RATE, rank=0)


@pytest.mark.parametrize("chunk", [1, 2])
def test_worker_split_takes_turns_over_the_rank_stream(shards, chunk):
    folder, _, _ = shards
    dataset = ShardDataset(folder, sample_rate=RATE, seed=5, shuffle_buffer=3, worker_chunk=chunk)
    full = ids(dataset)
    workers = [[i["id"] for i in dataset.items(w, 3)] for w in range(3)]
    assert sorted(sum(workers, [])) == sorted(full) and all(workers)
    interleaved, queues = [], [list(w) for w in workers]  # a DataLoader's round robin, one chunk per turn
    while any(queues):
        for queue in queues:
            interleaved += queue[:chunk]
            del queue[:chunk]
    assert interleaved == full


def test_dataloader_workers(shards):
    folder, _, _ = shards
    dataset = ShardDataset(folder, sample_rate=RATE, seed=2, shuffle_buffer=3, worker_chunk=2)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=list)
    assert [item["id"] for batch in loader for item in batch] == ids(dataset)


def test_resume_gives_exactly_the_remaining_items(shards):
    folder, _, _ = shards
    options = {"sample_rate": RATE, "seed": 7, "shuffle_buffer": 4, "rank": 0, "world_size": 1}
    reference = ShardDataset(folder, **options)
    reference.set_epoch(2)
    full = ids(reference)
    for taken in (0, 1, 5, 10, 11):
        first = ShardDataset(folder, **options)
        first.set_epoch(2)
        stream = iter(first)
        head = [next(stream)["id"] for _ in range(taken)]
        state = json.loads(json.dumps(first.state_dict()))  # plain data: saves anywhere
        assert state["epoch"] == 2 and state["items_consumed"] == taken
        resumed = ShardDataset(folder, **options)
        resumed.load_state_dict(state)
        resumed.set_epoch(2)  # what a loop does at the start of the resumed epoch: keeps the position
        assert head + ids(resumed) == full
        assert resumed.state_dict()["items_consumed"] == len(full)
        resumed.set_epoch(3)
        assert len(ids(resumed)) == len(full)  # the next epoch starts from its beginning


def test_resume_with_items_taken_from_a_dataloader(shards):
    folder, _, _ = shards
    options = {"sample_rate": RATE, "seed": 1, "shuffle_buffer": 3, "worker_chunk": 2}
    full = ids(ShardDataset(folder, **options))
    dataset = ShardDataset(folder, **options)
    loader = iter(torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=list))
    head = [item["id"] for _ in range(3) for item in next(loader)]
    state = dataset.state_dict(items_taken=6)
    assert state["items_consumed"] == 6 and state["shard_index"] is None
    resumed = ShardDataset(folder, **options)
    resumed.load_state_dict(state)
    assert head + ids(resumed) == full


def test_state_from_another_setup_is_refused(shards):
    folder, _, _ = shards
    state = ShardDataset(folder, sample_rate=RATE, seed=1).state_dict()
    with pytest.raises(ClapkitError, match="seed was 1 now 2"):
        ShardDataset(folder, sample_rate=RATE, seed=2).load_state_dict(state)
    with pytest.raises(ClapkitError, match="world_size"):
        ShardDataset(folder, sample_rate=RATE, seed=1, rank=0, world_size=2).load_state_dict(state)


def _flac(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _write_tar(path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bad_items_are_skipped_with_counts(tmp_path, caplog):
    good = _flac((0.2 * np.random.default_rng(0).standard_normal(1600)).astype(np.float32))
    meta = lambda key, **extra: json.dumps({"id": key, "text": [f"{key} caption"], **extra}).encode()  # noqa: E731
    _write_tar(tmp_path / "bad-000000.tar", [
        ("a.flac", good), ("a.json", meta("a")),
        ("b.flac", b"fLaC but then garbage"), ("b.json", meta("b")),                   # undecodable
        ("c.flac", _flac(np.zeros(1600, np.float32))), ("c.json", meta("c")),          # silent
        ("d.flac", _flac(np.zeros(0, np.float32))), ("d.json", meta("d")),             # empty
        ("e.flac", good), ("e.json", json.dumps({"id": "e", "text": []}).encode()),    # no caption
        ("f.flac", good),                                                               # no metadata
        ("g.json", b"{broken"), ("g.flac", good),                                       # bad metadata
        ("h.flac", good), ("h.json", meta("h", tag=["dog"], rewrites=["r"])),
    ])
    dataset = ShardDataset(tmp_path, sample_rate=RATE, shuffle=False)
    with caplog.at_level("WARNING", logger="clapkit.train"):
        items = list(dataset)
    assert [i["id"] for i in items] == ["a", "h"]
    assert items[1]["keywords"] == ["dog"] and items[1]["rewrites"] == ["r"]
    assert dataset.skipped == {"undecodable": 1, "silent": 1, "empty": 1, "no_caption": 1, "bad_item": 2}
    assert sum("skipping" in r.message for r in caplog.records) == 6
    keep_silent = ShardDataset(tmp_path, sample_rate=RATE, shuffle=False, skip_silent=False)
    assert ids(keep_silent) == ["a", "c", "h"]
    repeat = ShardDataset(tmp_path, sample_rate=RATE, shuffle=False, on_bad_item="repeat")
    assert ids(repeat) == ["a"] * 7 + ["h"]  # one item per stream position


def test_truncated_shard_keeps_the_items_before_the_damage(shards, tmp_path):
    folder, clip_ids, result = shards
    data = result.shards[0].read_bytes()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "shard-000000.tar").write_bytes(data[: len(data) * 2 // 3])
    assert len(scan_shard(damaged / "shard-000000.tar", 0)) >= 1
    dataset = ShardDataset(damaged, sample_rate=RATE, shuffle=False)
    got = ids(dataset)
    assert 1 <= len(got) < 3 and got == clip_ids[: len(got)]
    assert sum(dataset.skipped.values()) >= 1


def test_list_shards_patterns(shards):
    folder, _, result = shards
    assert list_shards(folder) == result.shards
    assert list_shards(str(folder / "shard-{000001..000002}.tar")) == result.shards[1:3]
    assert list_shards(str(folder / "shard-00000[03].tar")) == [result.shards[0], result.shards[3]]
    with pytest.raises(ClapkitError, match="not found"):
        list_shards(folder / "nope.tar")
    assert ShardDataset(folder, sample_rate=RATE).num_items() == 11
