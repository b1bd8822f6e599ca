"""Reports (JSON, Markdown, confusion CSV/PNG; deterministic) and the ``clapkit eval`` command."""

import csv
import json

import pytest

from clapkit.cli import main
from clapkit.eval.report import write_report


def toy_report():
    return {
        "task": "zero_shot",
        "model": {"name": "m", "weights": "random", "fingerprint": "abc", "versions": {"clapkit": "0.1.0"}},
        "dataset": {"name": "toy", "root": "/data", "clips": 3, "classes": 2, "captions": 0, "missing_clips": 0,
                    "notes": []},
        "settings": {"templates": ["This is a sound of {}."], "protocol": "single-label"},
        "results": {"templates": {"metrics": {"top1_accuracy": 2 / 3, "num_clips": 3},
                                  "per_class": {"dog": 1.0, "cat": float("nan")},
                                  "confusion_matrix": {"classes": ["dog", "cat"],
                                                       "rows_true_columns_predicted": [[2, 0], [1, 0]]}}},
    }


def test_write_report_files_and_determinism(tmp_path):
    paths = write_report(toy_report(), tmp_path / "a")
    data = json.loads(paths["json"].read_text())
    assert data["results"]["templates"]["per_class"] == {"dog": 1.0, "cat": None}  # NaN -> null, valid JSON
    assert data["results"]["templates"]["metrics"]["top1_accuracy"] == pytest.approx(2 / 3)
    with open(paths["confusion_csv_templates"]) as f:
        assert list(csv.reader(f)) == [["true \\ predicted", "dog", "cat"], ["dog", "2", "0"], ["cat", "1", "0"]]
    assert paths["confusion_png_templates"].read_bytes()[:4] == b"\x89PNG"
    markdown = paths["markdown"].read_text()
    assert "| templates | 0.6667 |" in markdown and "'This is a sound of {}.'" in markdown
    again = write_report(toy_report(), tmp_path / "b")
    for key, path in paths.items():
        assert again[key].read_bytes() == path.read_bytes(), key


def test_retrieval_markdown_has_one_row_per_direction(tmp_path):
    metrics = {"text_to_audio_R@1": 0.7, "audio_to_text_R@1": 1.0, "audio_to_text_mAP@10_sorted": 0.75}
    report = {"task": "retrieval", "dataset": {"name": "toy", "root": "/r", "clips": 2, "classes": 0, "captions": 10},
              "results": {"retrieval": {"metrics": metrics}}}
    markdown = write_report(report, tmp_path)["markdown"].read_text()
    assert "| text_to_audio | 0.7000 | - |" in markdown
    assert "| audio_to_text | 1.0000 | - | - | - | 0.7500 | - | - |" in markdown


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_zeroshot_retrieval_probe(small_model_name, small_model, sound_folder, cache_dir, tmp_path, capsys):
    common = ["--model", small_model_name, "--weights", "random", "--output", str(tmp_path),
              "--cache-dir", str(cache_dir)]
    code, out, err = run(["eval", "zeroshot", "--dataset", "folder", "--root", str(sound_folder), "--template",
                          "ensemble", "--reclap", "offline", "--reclap-prompts", "2", *common], capsys)
    assert code == 0, err
    assert "templates: top1_accuracy" in out and "reclap: top1_accuracy" in out
    report = json.loads((tmp_path / f"zero_shot-folder-{small_model_name}.json").read_text())
    assert report["model"]["weights"] == "random" and report["model"]["versions"]["clapkit"]
    assert report["settings"]["reclap"] == {"describer": "ontology", "prompts_per_class": 2, "seed": 0}
    assert report["arguments"]["template"] == ["ensemble"] and report["cache"]["misses"] >= 0
    assert (tmp_path / f"zero_shot-folder-{small_model_name}-confusion-reclap.png").is_file()

    code, out, err = run(["eval", "retrieval", "--dataset", "csv", "--root", str(sound_folder / "manifest.csv"),
                          *common], capsys)
    assert code == 0, err
    retrieval = json.loads((tmp_path / f"retrieval-csv-{small_model_name}.json").read_text())
    assert retrieval["results"]["retrieval"]["metrics"]["num_captions"] == 12
    assert retrieval["cache"]["hits"] == 6  # the zero-shot run embedded these clips already (same seed, same model)

    code, out, err = run(["eval", "probe", "--dataset", "folder", "--root", str(sound_folder), "--C", "0.5",
                          *common], capsys)
    assert code == 0, err
    probe = json.loads((tmp_path / f"linear_probe-folder-{small_model_name}.json").read_text())
    assert "C=0.5" in probe["settings"]["classifier"] and "accuracy" in probe["results"]["linear_probe"]["metrics"]


def test_cli_errors_are_clear(small_model_name, tmp_path, capsys):
    code, _, err = run(["eval", "zeroshot", "--dataset", "esc50", "--root", str(tmp_path / "missing"),
                        "--model", small_model_name, "--weights", "random"], capsys)
    assert code == 2 and "is not a directory" in err and "meta/esc50.csv" in err
    code, _, err = run(["eval", "retrieval", "--dataset", "nope", "--root", str(tmp_path),
                        "--model", small_model_name, "--weights", "random"], capsys)
    assert code == 2 and "unknown dataset 'nope'" in err
