"""``clapkit data shard`` and ``clapkit data captions`` end to end (offline and against a fake chat server)."""

from __future__ import annotations

import json

from clapkit.cli import main
from clapkit.train.manifests import read_manifest
from clapkit.train.shards import ShardDataset
from tests.chat_server import FakeChatServer
from tests.train.conftest import write_clip


def _manifest(tmp_path):
    write_clip(tmp_path / "a.wav", seed=1)
    write_clip(tmp_path / "b.wav", seed=2)
    rows = [{"id": "a", "audio": "a.wav", "captions": ["A man talks while a dog barks"]},
            {"id": "b", "audio": "b.wav", "keywords": ["Rain", "Thunder"]},
            {"id": "c", "audio": "missing.wav", "caption": "gone"}]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_data_shard_command(tmp_path, capsys):
    manifest = _manifest(tmp_path)
    assert main(["data", "shard", str(manifest), "--out", str(tmp_path / "shards"), "--sample-rate", "8000",
                 "--max-items-per-shard", "1"]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 items in 2 shards" in out and "1 missing" in out
    items = list(ShardDataset(tmp_path / "shards", sample_rate=8000, shuffle=False, keywords_as_caption=True))
    assert [i["id"] for i in items] == ["a", "b"] and items[0]["waveform"].size == 1600


def test_data_captions_offline(tmp_path, capsys):
    manifest = _manifest(tmp_path)
    out = tmp_path / "out" / "m2.jsonl"
    assert main(["data", "captions", str(manifest), "--out", str(out), "--keywords-to-caption", "--rewrites", "3",
                 "--seed", "1"]) == 0
    assert "1 keyword captions" in capsys.readouterr().out
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["a"]["captions"] == ["A man talks while a dog barks"]  # originals stay (--debias generated)
    assert len(rows["a"]["rewrites"]) == 3 and not any(" man " in r for r in rows["a"]["rewrites"])
    assert len(rows["b"]["captions"]) == 1 and "rain" in rows["b"]["captions"][0].lower()
    assert len(rows["b"]["rewrites"]) == 3
    entries = {e.id: e for e in read_manifest(out)}  # paths are rewritten relative to the new manifest
    assert entries["a"].audio.endswith("a.wav") and (tmp_path / "a.wav").samefile(entries["a"].audio)
    again = tmp_path / "again.jsonl"
    main(["data", "captions", str(manifest), "--out", str(again), "--keywords-to-caption", "--rewrites", "3",
          "--seed", "1"])
    assert [json.loads(line)["rewrites"] for line in again.read_text().splitlines()] == \
        [rows[k]["rewrites"] for k in ("a", "b", "c")]  # seeded: the same output


def test_data_captions_with_a_chat_server(tmp_path, capsys):
    manifest = _manifest(tmp_path)
    out = tmp_path / "chat.jsonl"
    args = ["data", "captions", str(manifest), "--out", str(out), "--keywords-to-caption", "--rewrites", "2",
            "--backend", "chat", "--model", "tiny", "--concurrency", "1"]
    with FakeChatServer(reply=lambda p: f"generated {len(p)} for a boy") as server:
        assert main(args + ["--base-url", server.base_url]) == 0
        first = len(server.requests)
        assert first == 1 + 2 * 3  # one keyword caption, 2 rewrites x 3 captions
        assert any("Rain, Thunder" in p for p in server.prompts)
        assert main(args + ["--base-url", server.base_url]) == 0
        assert len(server.requests) == first  # everything came from the cache
    assert (tmp_path / "chat.jsonl.textgen-cache.jsonl").exists()
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["b"]["captions"][0].startswith("generated") and rows["b"]["captions"][0].endswith("for a child")
    assert main(["data", "captions", str(manifest), "--out", str(out), "--rewrites", "1", "--backend", "chat"]) == 2
    assert "--base-url" in capsys.readouterr().err
