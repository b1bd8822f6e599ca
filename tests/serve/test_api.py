"""The JSON API: search, similar sounds, tags, timelines, audio streaming with ranges, limits and refusals."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from clapkit.serve import ServeSettings, create_app
from tests.audio_fixtures import wav_bytes
from tests.index.conftest import LONG_SECONDS
from tests.serve.conftest import SETTINGS, TAG_LABELS


def item_id(client: TestClient, name: str) -> int:
    found = client.get("/api/search", params={"q": "anything", "k": 100}).json()["results"]
    return next(r["id"] for r in found if r["name"] == name)


def test_health_describes_index_model_and_limits(client, searcher):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["items"] == 7 and body["kind"] == "exact" and body["dimension"] == 32
    assert body["model"]["fingerprint"] == searcher.index.model["fingerprint"]
    assert body["limits"]["max_upload_bytes"] == SETTINGS.max_upload_bytes
    assert body["limits"]["max_clip_seconds"] == SETTINGS.max_clip_seconds


def test_text_search_ranks_by_cosine_similarity(client, searcher):
    body = client.get("/api/search", params={"q": "a dog barking", "k": 5}).json()
    assert body["query"] == "a dog barking" and body["kind"] == "exact"
    results = body["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    text = searcher.embed_text("a dog barking")
    for result in results:
        expected = float(searcher.index.embedding(result["id"]) @ text)
        assert result["score"] == pytest.approx(expected, abs=1e-5)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    every = client.get("/api/search", params={"q": "a dog barking", "k": 100}).json()["results"]
    assert len(every) == 7 and {r["path"] for r in every} >= {"animals/bark-000.wav", "long/recording.wav"}
    long = next(r for r in every if r["name"] == "recording.wav")
    assert long["long"] is True and long["duration_seconds"] == pytest.approx(LONG_SECONDS)
    assert long["audio_url"] == f"/api/items/{long['id']}/audio"
    assert not next(r for r in every if r["name"] == "bark-000.wav")["long"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "\x85"},
        {"q": "\u3000\n"},
        {"q": "x", "k": 0},
        {"q": "x", "k": 101},
        {"q": "x" * 501},
        {"q": "x", "k": "a"},
    ],
)
def test_bad_search_parameters_are_422(client, params):
    response = client.get("/api/search", params=params)
    assert response.status_code == 422 and response.json()["detail"]


def test_search_text_with_unicode_spaces_around_words_is_accepted(client):
    assert client.get("/api/search", params={"q": "\x85a dog\u3000"}).status_code == 200


def test_more_like_this_leaves_the_item_out(client, searcher):
    target = item_id(client, "rain-001.wav")
    body = client.get(f"/api/items/{target}/similar", params={"k": 10}).json()
    assert body["like_id"] == target and len(body["results"]) == 6
    assert target not in [r["id"] for r in body["results"]]
    vector = searcher.index.embedding(target)
    assert body["results"][0]["score"] == pytest.approx(
        max(float(searcher.index.embedding(i) @ vector) for i in searcher.index.items if i != target), abs=1e-5
    )
    assert client.get(f"/api/items/{target}").json()["name"] == "rain-001.wav"


@pytest.mark.parametrize("path", ["/api/items/999/similar", "/api/items/999", "/api/items/999/audio"])
def test_unknown_items_are_404(client, path):
    response = client.get(path)
    assert response.status_code == 404 and "no item with id 999" in response.json()["detail"]


def test_similar_to_an_uploaded_clip(client, searcher):
    data = wav_bytes(1.0, seed=1)
    response = client.post("/api/similar", files={"file": ("my clip.wav", data, "audio/wav")}, params={"k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["like_upload"] == "my clip.wav" and len(body["results"]) == 3
    # the upload is the same sound as animals/bark-001.wav (same generator and seed, 1 s instead of 2.5 s)
    from clapkit.audio.io import load_audio

    expected = searcher.index.search(searcher.embed_waveform(load_audio(_write(data), 16000)), 3)
    assert [r["id"] for r in body["results"]] == [h.item.id for h in expected]


def _write(data: bytes):
    import tempfile

    handle = tempfile.NamedTemporaryFile(suffix=".wav", delete=False)
    handle.write(data)
    handle.close()
    return handle.name


def test_uploads_over_the_limits_are_413(client):
    too_long = wav_bytes(6.0)  # 6 s > 5 s, 192 kB < 400 kB
    response = client.post("/api/similar", files={"file": ("long.wav", too_long, "audio/wav")})
    assert response.status_code == 413 and "limit is 5 s" in response.json()["detail"]
    too_big = b"RIFF" + bytes(SETTINGS.max_upload_bytes + 10)
    response = client.post("/api/tags", files={"file": ("big.wav", too_big, "audio/wav")})
    assert response.status_code == 413 and "upload limit" in response.json()["detail"]


def test_a_body_over_the_limit_is_refused_before_it_is_read(client):
    oversized = {
        "Content-Length": str(10 * SETTINGS.max_upload_bytes),
        "Content-Type": "multipart/form-data; boundary=x",
    }
    response = client.post("/api/similar", headers=oversized, content=b"--x--")
    assert response.status_code == 413
    chunks = (bytes(65536) for _ in range(20))  # 1.3 MB, chunked: no Content-Length
    response = client.post("/api/similar", content=chunks, headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "request body over" in response.json()["detail"]


@pytest.mark.parametrize(
    "content, kind",
    [(b"hello, this is text, not sound", "text/plain"), (b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png")],
)
def test_non_audio_uploads_are_415(client, content, kind):
    response = client.post("/api/similar", files={"file": ("notes.wav", content, kind)})
    assert response.status_code == 415 and "not an audio file" in response.json()["detail"]


def test_missing_or_empty_uploads_are_422(client):
    assert client.post("/api/similar").status_code == 422
    assert client.post("/api/similar", data={"other": "x"}).status_code == 422
    response = client.post("/api/tags", files={"file": ("empty.wav", b"", "audio/wav")})
    assert response.status_code == 422 and "empty" in response.json()["detail"]


def test_zero_shot_tags_of_a_clip_and_of_an_item(client, searcher):
    response = client.post("/api/tags", files={"file": ("c.wav", wav_bytes(1.0), "audio/wav")}, params={"k": 5})
    tags = response.json()["tags"]
    assert [t["label"] for t in tags] and {t["label"] for t in tags} == set(TAG_LABELS)
    assert sum(t["probability"] for t in tags) == pytest.approx(1.0, abs=1e-6)
    assert [t["probability"] for t in tags] == sorted((t["probability"] for t in tags), reverse=True)
    own = client.post(
        "/api/tags", files={"file": ("c.wav", wav_bytes(1.0), "audio/wav")}, params={"labels": "cat, cow ,cat", "k": 5}
    ).json()["tags"]
    assert sorted(t["label"] for t in own) == ["cat", "cow"]
    target = item_id(client, "bark-000.wav")
    item_tags = client.get(f"/api/items/{target}/tags", params={"k": 2}).json()
    expected = searcher.tags(searcher.index.embedding(target), k=2)
    assert [t["label"] for t in item_tags["tags"]] == [t.label for t in expected] and item_tags["item_id"] == target
    for labels in (",".join("x" * 101 for _ in range(2)), ",".join(str(i) for i in range(101))):  # too long, too many
        assert client.get(f"/api/items/{target}/tags", params={"labels": labels}).status_code == 422
    blank = client.get(f"/api/items/{target}/tags", params={"labels": " , ", "k": 2}).json()
    assert blank["tags"] == item_tags["tags"]  # blank labels mean the default vocabulary


def test_timeline_of_a_long_file(client, searcher):
    target = item_id(client, "recording.wav")
    body = client.get(f"/api/items/{target}/timeline", params={"q": "a loud beep"}).json()
    starts = [w["start"] for w in body["windows"]]
    assert starts == [0.0, 5.0, 10.0, 15.0]  # 10 s windows, 5 s hop, up to the end
    assert body["windows"][-1]["end"] == pytest.approx(LONG_SECONDS)
    assert body["duration_seconds"] == pytest.approx(LONG_SECONDS)
    text = searcher.embed_text("a loud beep")
    from clapkit.locate import locate

    reference = locate(searcher.model, searcher.index.item(target).path, "a loud beep")
    np.testing.assert_allclose([w["score"] for w in body["windows"]], reference.scores, atol=1e-5)
    assert len(text) == 32
    assert body["best"] == max(body["windows"], key=lambda w: w["score"])
    for span in body["ranges"]:
        assert 0 <= span["start"] < span["end"] <= LONG_SECONDS and span["score"] >= body["threshold"]
    again = client.get(f"/api/items/{target}/timeline", params={"q": "rain"}).json()  # cached windows
    assert [w["start"] for w in again["windows"]] == starts and again["query"] == "rain"


def test_timeline_limits(searcher):
    settings = ServeSettings(max_timeline_seconds=20, allowed_hosts=("testserver",))
    with TestClient(create_app(searcher, settings)) as limited:
        long = next(i for i in searcher.index.items.values() if i.path.endswith("recording.wav"))
        response = limited.get(f"/api/items/{long.id}/timeline", params={"q": "x"})
        assert response.status_code == 422 and "limited to 20 s" in response.json()["detail"]
        assert limited.get(f"/api/items/{long.id}/timeline").status_code == 422  # no q


def test_audio_is_streamed_with_range_requests(client, searcher):
    target = item_id(client, "bark-001.wav")
    data = open(searcher.index.item(target).path, "rb").read()
    size = len(data)
    whole = client.get(f"/api/items/{target}/audio")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "audio/wav"
    part = client.get(f"/api/items/{target}/audio", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == data[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{size}" and part.headers["content-length"] == "100"
    tail = client.get(f"/api/items/{target}/audio", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    rest = client.get(f"/api/items/{target}/audio", headers={"Range": f"bytes={size - 5}-"})
    assert rest.status_code == 206 and rest.content == data[-5:]
    other_unit = client.get(f"/api/items/{target}/audio", headers={"Range": "items=0-5"})
    assert other_unit.status_code == 200 and other_unit.content == data


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes=100-50", "bytes=abc", "bytes=", "bytes=-0", "bytes=5-x"])
def test_bad_ranges_are_416(client, searcher, header):
    target = item_id(client, "bark-001.wav")
    size = len(open(searcher.index.item(target).path, "rb").read())
    response = client.get(f"/api/items/{target}/audio", headers={"Range": header.format(size=size)})
    assert response.status_code == 416 and response.headers["content-range"] == f"bytes */{size}"


@pytest.mark.parametrize(
    "path",
    [
        "/api/items/..%2F..%2F..%2Fetc%2Fpasswd/audio",
        "/api/items/%2Fetc%2Fpasswd/audio",
        "/api/items/-1/audio",
        "/api/items/1.5/audio",
        "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/%2e%2e/app.py",
        "/static/../app.py",
        "/api/items/0/audio/../../../../etc/passwd",
    ],
)
def test_no_file_outside_the_index_can_be_read(client, path):
    response = client.get(path)
    assert response.status_code in (404, 422)
    assert b"root:" not in response.content and b"def create_app" not in response.content


def test_a_file_deleted_since_indexing_is_404(tmp_path, micro_model, micro_model_dir):
    from clapkit.index import IndexSearcher, SoundIndex, build_index
    from tests.audio_fixtures import write_clips

    clips = write_clips(tmp_path / "lib", 2)
    build_index(micro_model, [tmp_path / "lib"], tmp_path / "idx", progress=False)
    searcher = IndexSearcher(SoundIndex.open(tmp_path / "idx"), micro_model)
    clips[0].unlink()
    with TestClient(create_app(searcher, ServeSettings(allowed_hosts=("testserver",)))) as client:
        gone = searcher.index.item_for_path(clips[0]).id
        response = client.get(f"/api/items/{gone}/audio")
        assert response.status_code == 404 and "no longer on disk" in response.json()["detail"]


def test_foreign_host_headers_are_refused(client):
    from clapkit.serve.app import host_name

    assert client.get("/api/health", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/api/health", headers={"Host": "127.0.0.1.evil.example:80"}).status_code == 400
    assert client.get("/api/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "LOCALHOST"}).status_code == 200
    assert [host_name(h) for h in ("[::1]:8000", "[::1]", "localhost:80", "::1", "example.org")] == [
        "::1",
        "::1",
        "localhost",
        "::1",
        "example.org",
    ]


def test_page_static_files_and_schema(client):
    page = client.get("/")
    assert page.status_code == 200 and 'role="search"' in page.text and 'aria-live="polite"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "fetch(" in client.get("/static/app.js").text
    assert client.get("/static/style.css").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/api/search", "/api/similar", "/api/tags", "/api/items/{item_id}/audio", "/api/health"} <= set(
        schema["paths"]
    )
    assert "413" in schema["paths"]["/api/similar"]["post"]["responses"]
    assert client.get("/docs").status_code == 404  # no page that loads scripts from a CDN
