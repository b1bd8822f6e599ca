"""The bad-input corpus through every command that takes files: exit status, a message naming the item and the
cause, and nothing already done lost."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from clapkit.index import IndexSearcher, SoundIndex, build_index
from clapkit.serve import ServeSettings, create_app
from tests.audio_fixtures import clip, write_audio
from tests.bad_input.conftest import BAD, GOOD, run
from tests.small_models import MICRO_RATE


def _assert_names_every_bad_file(text: str, corpus) -> None:
    for name, reason in BAD.items():
        line = next((row for row in text.splitlines() if name in row), None)
        assert line is not None, f"{name} is not reported"
        assert reason in line, f"{name}: {line!r} does not say {reason!r}"


def test_embed_skips_reports_and_keeps_what_was_done(corpus, micro_model_dir, tmp_path, capsys):
    store = tmp_path / "store"
    code, _, err = run(["embed", corpus, "--model", micro_model_dir, "--out", store, "--quiet"], capsys)
    assert code == 0
    _assert_names_every_bad_file(err, corpus)
    with open(store / "errors.csv", newline="", encoding="utf-8") as handle:
        errors = {row["path"].rsplit("/", 1)[-1]: row["reason"] for row in csv.DictReader(handle)}
    assert set(errors) == set(BAD) and all(BAD[n] in errors[n] for n in BAD)
    with open(store / "index.csv", newline="", encoding="utf-8") as handle:
        stored = sorted(row["path"].rsplit("/", 1)[-1] for row in csv.DictReader(handle))
    assert stored == sorted(GOOD)
    before = np.load(store / "embeddings.npy")
    # a new bad file, then the same job again: the good files stay, nothing is embedded twice
    (corpus.parent / "later").mkdir(exist_ok=True)
    (corpus.parent / "later" / "late.wav").write_bytes(b"")
    code, _, err = run(["embed", corpus, corpus.parent / "later", "--model", micro_model_dir, "--out", store,
                        "--quiet"], capsys)  # fmt: skip
    assert code == 0 and "0 file(s)" in err and f"{len(GOOD)} already done" in err and "late.wav" in err
    assert np.array_equal(np.load(store / "embeddings.npy"), before)


def test_embed_of_only_bad_files_is_an_error(corpus, micro_model_dir, tmp_path, capsys):
    bad = [corpus / name for name in BAD]
    code, _, err = run(["embed", *bad, "--model", micro_model_dir, "--out", tmp_path / "s", "--quiet"], capsys)
    assert code == 2 and "clapkit: error: no input could be embedded" in err and "Traceback" not in err


def test_classify_skips_reports_and_exits_by_one_rule(corpus, micro_model_dir, capsys):
    code, out, err = run(["classify", corpus, "--labels", "dog,rain", "--model", micro_model_dir, "--quiet",
                          "--format", "csv"], capsys)  # fmt: skip
    assert code == 0
    assert sorted({row.split(",")[0].rsplit("/", 1)[-1] for row in out.splitlines()[1:]}) == sorted(
        n.replace('"', "") for n in GOOD
    ) or all(any(g.split()[0] in row for row in out.splitlines()) for g in GOOD)
    _assert_names_every_bad_file(err, corpus)
    for name in BAD:  # each bad file alone: nothing could be classified, exit 2, the reason named
        code, out, err = run(["classify", corpus / name, "--labels", "a,b", "--model", micro_model_dir], capsys)
        assert code == 2 and name in err and BAD[name] in err and "Traceback" not in err


def test_search_like_names_the_bad_file(corpus, micro_model_dir, tmp_path, capsys):
    store = tmp_path / "store"
    assert run(["embed", corpus / "good.wav", "--model", micro_model_dir, "--out", store, "--quiet"], capsys)[0] == 0
    for name in BAD:
        code, _, err = run(["search", "--like", corpus / name, "--in", store], capsys)
        assert code == 2 and name in err and BAD[name] in err, err
    code, out, _ = run(["search", "--like", corpus / "rate_8k.wav", "--in", store], capsys)  # not in the store
    assert code == 0 and "good.wav" in out


def test_locate_names_the_bad_file_and_finds_nothing_in_silence(corpus, silent_file, micro_model_dir, capsys):
    for name in BAD:
        code, _, err = run(["locate", corpus / name, "a dog", "--model", micro_model_dir, "--quiet"], capsys)
        assert code == 2 and name in err and BAD[name] in err, err
    code, out, err = run(["locate", silent_file, "glass breaking", "--model", micro_model_dir, "--quiet",
                          "--format", "csv"], capsys)  # fmt: skip
    assert code == 0 and out.strip() == "start,end,score"  # no range
    assert "0 range(s)" in err and "the audio is silent" in err


def test_index_build_skips_reports_and_keeps_the_index(corpus, micro_model_dir, tmp_path, capsys):
    out = tmp_path / "idx"
    code, _, err = run(["index", "build", corpus, "--model", micro_model_dir, "--out", out, "--quiet"], capsys)
    assert code == 0 and f"{len(GOOD)} sound(s)" in err
    _assert_names_every_bad_file(err, corpus)
    code, _, err = run(["index", "add", out, corpus / "empty.wav", "--quiet"], capsys)
    assert code == 0 and "empty.wav" in err and len(SoundIndex.open(out)) == len(GOOD)  # nothing lost
    code, _, err = run(["index", "build", *(corpus / n for n in BAD), "--model", micro_model_dir,
                        "--out", tmp_path / "idx2", "--quiet"], capsys)  # fmt: skip
    assert code == 2 and "no input could be indexed" in err


def test_eval_on_a_folder_layout_leaves_bad_clips_out(corpus, micro_model_dir, tmp_path, capsys):
    root = tmp_path / "dataset"
    for label, names in (("tone", ["good.wav", "rate_8k.wav", "empty.wav", "nan.wav"]),
                         ("other", ["eight_channels.wav", "truncated.wav", "text.mp3"])):  # fmt: skip
        (root / label).mkdir(parents=True)
        for name in names:
            shutil.copy(corpus / name, root / label / name)
    code, out, err = run(["eval", "zeroshot", "--dataset", "folder", "--root", root, "--model", micro_model_dir,
                          "--no-cache", "--output", tmp_path / "reports"], capsys)  # fmt: skip
    assert code == 0, err
    text = out + err + "".join(p.read_text() for p in (tmp_path / "reports").rglob("*.json"))
    for name in ("empty.wav", "nan.wav", "truncated.wav", "text.mp3"):
        assert name in text and BAD[name] in text


def test_service_upload_answers_each_bad_file(corpus, micro_model, micro_model_dir, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    write_audio(library / "a.wav", clip(1.0, 1), MICRO_RATE)
    build_index(micro_model, [library], tmp_path / "idx", model_source=str(micro_model_dir), progress=False)
    settings = ServeSettings(max_clip_seconds=5.0, allowed_hosts=("testserver",))
    app = create_app(IndexSearcher(SoundIndex.open(tmp_path / "idx"), micro_model, labels=["a", "b"]), settings)
    expected = {"empty.wav": 422, "truncated.wav": 422, "text.mp3": 415, "nan.wav": 422, "zero.wav": 422}
    with TestClient(app) as client:
        for name, status in expected.items():
            response = client.post("/api/tags", files={"file": (name, (corpus / name).read_bytes())})
            assert response.status_code == status, (name, response.text)
            detail = response.json()["detail"]
            assert name in detail and BAD[name].split(":")[0].lower() in detail.lower(), detail
        for name in ("eight_channels.wav", "rate_8k.wav", "rate_192k.wav"):
            response = client.post("/api/tags", files={"file": (name, (corpus / name).read_bytes())})
            assert response.status_code == 200 and len(response.json()["tags"]) == 2


@pytest.mark.parametrize("name", ["cut.safetensors", "random.safetensors", "bad-config.safetensors", "random.pt",
                                  "random.pth", "cut.pt", "hf", "clapkit-dir"])  # fmt: skip
def test_damaged_checkpoints_are_named_with_the_cause(damaged_checkpoints, corpus, name, capsys):
    path, message = damaged_checkpoints[name]
    code, _, err = run(["classify", corpus / "good.wav", "--labels", "a,b", "--model", path], capsys)
    assert code == 2 and err.startswith(f"clapkit: error: {path}") and message in err, err
    assert "Traceback" not in err and "--trust-pickle" not in err  # the pickle hint is only for real pickles
