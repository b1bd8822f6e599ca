"""``clapkit classify`` (labels, prompt ensembles, softmax/sigmoid, top-k, formats), ``clapkit search`` (text and
``--like``) and the errors a user can act on."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil

import numpy as np
import pytest
import torch

import clapkit
from clapkit.cli import main
from clapkit.inference import top_labels
from clapkit.jobs import run_embed_job
from clapkit.store import EmbeddingStore
from tests.audio_fixtures import write_clips
from tests.small_models import micro_config, small_config

LABELS = ["dog barking", "rain", "car horn", "a high tone"]


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    write_clips(folder, 5, seconds=(1.0, 2.0, 3.0))
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEnot audio")
    return folder


def _run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_classify_outputs_the_model_probabilities(audio, micro_model, micro_model_dir, capsys, tmp_path):
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("# my classes\n" + "\n".join(LABELS) + "\n\n")
    code, out, err = _run(capsys, "classify", audio, "--model", micro_model_dir, "--labels-file", labels_file,
                          "--format", "json", "--top-k", "2")  # fmt: skip
    assert code == 0 and "broken.wav" in err
    document = json.loads(out)
    paths = sorted(str(p) for p in audio.glob("clip-*.wav"))
    assert [r["path"] for r in document["results"]] == paths and document["labels"] == LABELS
    assert [f["path"] for f in document["failures"]] == [str(audio / "broken.wav")]
    expected = micro_model.classify(paths, LABELS)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-6)
    for result, row in zip(document["results"], expected):
        assert [t["label"] for t in result["top"]] == [LABELS[j] for j in np.argsort(-row, kind="stable")[:2]]
        np.testing.assert_allclose([t["probability"] for t in result["top"]], np.sort(row)[::-1][:2], atol=1e-5)


def test_prompt_ensembles_multi_label_and_csv(audio, micro_model, micro_model_dir, capsys):
    prompts = ["a recording of {}", "the sound of {}."]
    code, out, _ = _run(capsys, "classify", audio / "clip-000.wav", audio / "clip-001.wav", "--model",
                        micro_model_dir, "--labels", ",".join(LABELS), "--prompt", prompts[0], "--prompt", prompts[1],
                        "--multi-label", "--top-k", "10", "--format", "csv")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 2 * len(LABELS) and list(rows[0]) == ["path", "rank", "label", "probability"]
    templates = np.stack([micro_model.embed_text([t.format(label) for label in LABELS]) for t in prompts]).mean(0)
    text = templates / np.linalg.norm(templates, axis=1, keepdims=True)
    audio_embeddings = micro_model.embed_audio([str(audio / "clip-000.wav"), str(audio / "clip-001.wav")])
    logits = micro_model.logit_scale * audio_embeddings @ text.T
    expected = 1 / (1 + np.exp(-logits))  # a sigmoid per label: they need not sum to 1
    for i, path in enumerate(["clip-000.wav", "clip-001.wav"]):
        mine = {r["label"]: float(r["probability"]) for r in rows if r["path"].endswith(path)}
        np.testing.assert_allclose([mine[label] for label in LABELS], expected[i], atol=1e-4)
    np.testing.assert_allclose(micro_model.label_embeddings(LABELS, prompts), text, atol=1e-6)
    code, out, _ = _run(capsys, "classify", audio / "clip-000.wav", "--model", micro_model_dir, "--labels", "dog,rain")
    assert code == 0 and out.splitlines()[0].split() == ["path", "top", "labels"] and "clip-000.wav" in out


def test_top_labels_orders_and_caps():
    probabilities = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]])
    assert top_labels(probabilities, ["a", "b", "c"], 2) == [[("b", 0.6), ("c", 0.3)], [("a", 0.5), ("b", 0.25)]]
    assert len(top_labels(probabilities, ["a", "b", "c"], 10)[0]) == 3
    with pytest.raises(ValueError, match="do not match"):
        top_labels(probabilities, ["a", "b"], 1)


def test_search_by_text_and_by_sound(audio, micro_model, micro_model_dir, capsys, tmp_path):
    store_dir = tmp_path / "store"
    run_embed_job(micro_model, [audio], store_dir, model_source=str(micro_model_dir), progress=False)
    store = EmbeddingStore(store_dir)
    code, out, _ = _run(capsys, "search", "a high tone", "--in", store_dir, "--top-k", "3", "--format", "json")
    assert code == 0  # the model comes from store.json
    results = json.loads(out)["results"]
    scores = np.asarray(store.embeddings) @ micro_model.embed_text(["a high tone"])[0]
    best = np.argsort(-scores, kind="stable")[:3]
    assert [r["path"] for r in results] == [store.paths[i] for i in best]
    np.testing.assert_allclose([r["score"] for r in results], scores[best], atol=1e-5)

    query = audio / "clip-002.wav"
    code, out, _ = _run(capsys, "search", "--like", query, "--in", store_dir, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    similarity = np.asarray(store.embeddings) @ store.embedding(query)
    order = [i for i in np.argsort(-similarity, kind="stable") if store.paths[i] != str(query)]
    assert code == 0 and [r["path"] for r in rows] == [store.paths[i] for i in order]  # the query itself left out

    copy = tmp_path / "copy-of-clip-004.wav"  # a sound that is not in the store: embedded with the store's model
    shutil.copy(audio / "clip-004.wav", copy)
    code, out, _ = _run(capsys, "search", "--like", copy, "--in", store_dir, "--top-k", "1", "--format", "json")
    (top,) = json.loads(out)["results"]
    assert code == 0 and top["path"] == str(audio / "clip-004.wav") and top["score"] == pytest.approx(1.0, abs=1e-5)


def test_search_errors(audio, micro_model, capsys, tmp_path):
    run_embed_job(micro_model, [audio / "clip-000.wav"], tmp_path / "store", model_source="micro", progress=False)
    torch.manual_seed(3)
    other = clapkit.load(micro_config().name, weights="random")
    other.save(tmp_path / "other-model")
    code, _, err = _run(capsys, "search", "rain", "--in", tmp_path / "store", "--model", tmp_path / "other-model")
    assert code == 2 and "the model given differs" in err
    code, _, err = _run(capsys, "search", "rain", "--like", audio / "clip-000.wav", "--in", tmp_path / "store")
    assert code == 2 and "not both" in err
    code, _, err = _run(capsys, "search", "rain", "--in", tmp_path / "nowhere")
    assert code == 2 and "not an embedding store" in err


def test_errors_a_user_can_act_on(audio, micro_model_dir, capsys, tmp_path, monkeypatch):
    wav = audio / "clip-000.wav"
    code, _, err = _run(capsys, "classify", wav, "--model", micro_model_dir, "--labels-file", tmp_path / "nope.txt")
    assert code == 2 and "nope.txt: labels file not found" in err
    code, _, err = _run(capsys, "classify", wav, "--model", micro_model_dir, "--labels", "a,b", "--prompt", "no slot")
    assert code == 2 and "must contain {}" in err
    code, _, err = _run(capsys, "embed", wav, "--model", "laion-htsat-tiny", "--out", tmp_path / "s")
    assert code == 2 and "weights=PATH" in err and "clapkit models --public" in err
    code, _, err = _run(capsys, "embed", wav, "--model", "laion-htsat-tiny", "--weights", tmp_path / "630k.pt",
                        "--out", tmp_path / "s")  # fmt: skip
    assert code == 2 and "630k.pt: weights file not found" in err and "LAION-CLAP" in err
    code, _, err = _run(capsys, "embed", tmp_path / "empty-folder", "--model", micro_model_dir, "--out", tmp_path / "s")
    assert code == 2 and "no audio files to embed" in err
    code, _, err = _run(capsys, "classify", "--model", micro_model_dir, "--labels", "a")
    assert code == 2 and "no inputs" in err

    mismatched = small_config()  # HTSAT-tiny + small BERT: the micro model's weights do not fit it
    clapkit.register_model(mismatched)
    code, _, err = _run(capsys, "classify", wav, "--model", mismatched.name, "--weights",
                        micro_model_dir / "model.safetensors", "--labels", "a")  # fmt: skip
    assert code == 2 and "weights do not fit" in err and "wrong shape" in err

    monkeypatch.delenv("CLAPKIT_TOKENIZERS", raising=False)
    config = micro_config()
    no_tokenizer = config.replace(
        name="micro-roberta-vocab", text=dataclasses.replace(config.text, tokenizer="roberta")
    )
    clapkit.register_model(no_tokenizer)
    torch.manual_seed(0)
    clapkit.load(no_tokenizer.name, weights="random").save(tmp_path / "needs-tokenizer")
    code, _, err = _run(capsys, "classify", wav, "--model", tmp_path / "needs-tokenizer", "--labels", "a")
    assert code == 2 and "tokenizer" in err and "save_pretrained" in err
