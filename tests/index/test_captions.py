"""Captions in a sound index: written by a captioning model, stored per item, shown by the service, searched as text;
skipped with a clear message when the model cannot caption."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient

import clapkit
from clapkit.checkpoints import clapcap
from clapkit.cli import main
from clapkit.index import IndexSearcher, SoundIndex, build_index
from clapkit.index.captions import CAPTION_BOOST, caption_match, search_with_captions, words
from clapkit.serve import ServeSettings, create_app
from tests.audio_fixtures import write_clips
from tests.inference.test_captioning import perturbed_network, small_captioner_config
from tests.parity.gpt2_vocab import write_gpt2_tokenizer


@pytest.fixture(scope="module")
def captioner_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("captioner")
    write_gpt2_tokenizer(folder / "gpt2")
    config = small_captioner_config()
    torch.save({"model": clapcap.from_clapkit(perturbed_network(config).state_dict(), config)}, folder / "cap.pth")
    return folder / "cap.pth", folder / "gpt2"


@pytest.fixture
def library(tmp_path):
    write_clips(tmp_path / "lib", 3, prefix="clip")
    return tmp_path / "lib"


def test_words_and_match():
    assert words("A dog barks in the distance!") == {"dog", "bark", "distance"}
    assert caption_match(words("dogs barking"), "A dog barks ") == 0.5
    assert caption_match(words("dog"), None) == 0.0


def test_captions_boost_and_find_by_text(micro_model, library, tmp_path):
    build_index(micro_model, [library], tmp_path / "index", progress=False)
    index = SoundIndex.open(tmp_path / "index")
    ids = sorted(index.items)
    query = micro_model.embed_text(["rain on a roof"])[0]
    plain = {h.item.id: h.score for h in index.search(query, len(index))}
    index.set_caption(ids[-1], "Rain falls on a metal roof ")
    index.save()
    index = SoundIndex.open(tmp_path / "index")
    assert index.items[ids[-1]].caption == "Rain falls on a metal roof "  # stored in the item table
    hits = IndexSearcher(index, micro_model).search_text("rain on a roof", k=len(index))
    scores = {h.item.id: h.score for h in hits}
    assert scores[ids[-1]] == pytest.approx(plain[ids[-1]] + CAPTION_BOOST * 1.0, abs=1e-5)
    assert all(scores[i] == pytest.approx(plain[i], abs=1e-5) for i in ids[:-1])
    assert hits[0].item.id == ids[-1] or plain[hits[0].item.id] > plain[ids[-1]] + CAPTION_BOOST
    only = search_with_captions(index, "metal roof", 5, None)  # a model without a text encoder: captions alone
    assert [h.item.id for h in only] == [ids[-1]] and only[0].score == 1.0
    app = create_app(IndexSearcher(index, micro_model), ServeSettings(allowed_hosts=("testserver",)))
    with TestClient(app) as client:
        results = client.get("/api/search", params={"q": "rain"}).json()["results"]
        shown = {r["id"]: r["caption"] for r in results}
        assert shown[ids[-1]] == "Rain falls on a metal roof " and shown[ids[0]] is None


def test_index_build_with_captions(micro_model_dir, library, tmp_path, captioner_files, capsys):
    weights, tokenizer = captioner_files
    out = tmp_path / "index"
    assert main(["index", "build", str(library), "--model", str(micro_model_dir), "--out", str(out), "--no-progress",
                 "--captions"]) == 0
    err = capsys.readouterr().err
    assert "captions skipped" in err and "cannot write captions" in err
    assert not SoundIndex.open(out).has_captions
    (library / "broken.wav").write_bytes(b"RIFF not really")
    assert main(["index", "build", str(library), "--model", str(micro_model_dir), "--out", str(out), "--no-progress",
                 "--captions", str(weights), "--caption-tokenizer", str(tokenizer)]) == 0
    err = capsys.readouterr().err
    assert "captions: 3 written, 0 already there, 0 failed" in err
    index = SoundIndex.open(out)
    assert len(index) == 3 and all(item.caption for item in index.items.values())
    expected = clapkit.load(weights, tokenizer=tokenizer).caption([index.items[min(index.items)].path])[0]
    assert index.items[min(index.items)].caption == expected
