"""Evaluation reports: a JSON with every number and the exact settings, a Markdown summary, and for zero-shot
classification the confusion matrix as CSV and PNG (PNG when matplotlib is installed).

Reports are deterministic: no timestamps; NaN (a class without clips) is written as ``null``.
"""

from __future__ import annotations

import csv
import json
import math
import platform
from pathlib import Path
from typing import Any

import numpy as np

from clapkit.files import atomic_open, atomic_write, write_text_atomic

HEADLINE = {
    "zero_shot": ("top1_accuracy", "top5_accuracy", "balanced_accuracy", "mAP", "mAP@10", "mean_rank"),
    "linear_probe": ("accuracy", "accuracy_std", "mAP", "mAP_std"),
}


def model_info(model, weights: str | None = None, fingerprint: str | None = None) -> dict[str, Any]:
    """What identifies the evaluated model in a report."""
    import torch

    import clapkit

    return {"name": model.config.name, "family": model.config.family, "weights": weights,
            "fingerprint": fingerprint, "logit_scale": model.logit_scale, "embedding_dim": model.config.joint_dim,
            "sample_rate": model.sample_rate, "clip_seconds": model.config.frontend.clip_seconds,
            "versions": {"clapkit": clapkit.__version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": platform.python_version()}}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(report: dict[str, Any], directory: str | Path, stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` (+ confusion CSV/PNG per zero-shot result); returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem or f"{report['task']}-{report['dataset']['name']}"
    report = _clean(report)
    paths: dict[str, Path] = {}
    for name, result in report.get("results", {}).items():
        confusion = result.get("confusion_matrix")
        if confusion:
            classes, matrix = confusion["classes"], confusion["rows_true_columns_predicted"]
            base = f"{stem}-confusion-{name}"
            paths[f"confusion_csv_{name}"] = write_confusion_csv(classes, matrix, directory / f"{base}.csv")
            png = write_confusion_png(classes, np.array(matrix), directory / f"{base}.png", f"{stem} ({name})")
            if png is not None:
                paths[f"confusion_png_{name}"] = png
    report["files"] = {k: p.name for k, p in paths.items()}
    paths["json"] = directory / f"{stem}.json"
    write_text_atomic(paths["json"], json.dumps(report, indent=2, allow_nan=False) + "\n")
    paths["markdown"] = directory / f"{stem}.md"
    write_text_atomic(paths["markdown"], markdown_summary(report))
    return paths


def write_confusion_csv(classes: list[str], matrix: list[list[int]], path: Path) -> Path:
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, matrix):
            writer.writerow([name, *row])
    return path


def write_confusion_png(classes: list[str], matrix: np.ndarray, path: Path, title: str) -> Path | None:
    """Row-normalised confusion matrix image; ``None`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    size = max(4.0, 0.22 * len(classes) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(normalised, vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=6 if len(classes) > 20 else 8)
    ax.set_yticks(range(len(classes)), classes, fontsize=6 if len(classes) > 20 else 8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    # no version/time stamp: same bytes every run
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None}))
    plt.close(fig)
    return path


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _retrieval_table(results: dict[str, Any]) -> list[str]:
    columns = ("R@1", "R@5", "R@10", "mAP@10", "mAP@10_sorted", "mean_rank", "median_rank")
    lines = ["", "| direction | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for result in results.values():
        for direction in ("text_to_audio", "audio_to_text"):
            values = [_format(result["metrics"].get(f"{direction}_{c}")) for c in columns]
            lines.append(f"| {direction} | " + " | ".join(values) + " |")
    return lines


def markdown_summary(report: dict[str, Any]) -> str:
    """A short human summary: model, dataset, settings, a headline table, per-class extremes."""
    model, dataset, settings = report.get("model", {}), report["dataset"], report.get("settings", {})
    lines = [f"# {report['task'].replace('_', '-')} evaluation: {dataset['name']}", ""]
    if model:
        lines.append(f"- model: `{model.get('name')}` (weights: `{model.get('weights')}`, fingerprint "
                     f"`{str(model.get('fingerprint'))[:12]}`), clapkit {model.get('versions', {}).get('clapkit')}")
    lines.append(f"- dataset: {dataset['clips']} clips, {dataset['classes']} classes, {dataset['captions']} captions "
                 f"from `{dataset['root']}`; missing {dataset.get('missing_clips', 0)}, undecodable "
                 f"{dataset.get('unreadable', 0)}")
    for note in dataset.get("notes", []):
        lines.append(f"- note: {note}")
    if "templates" in settings:
        lines.append(f"- templates: {', '.join(repr(t) for t in settings['templates'])}")
    if "reclap" in settings:
        r = settings["reclap"]
        lines.append(f"- ReCLAP prompts: {r['describer']}, {r['prompts_per_class']} per class, seed {r['seed']}")
    for key in ("protocol", "classifier"):
        if key in settings:
            lines.append(f"- {key}: {settings[key]}")
    results = report.get("results", {})
    if report["task"] == "retrieval":
        lines += _retrieval_table(results)
    else:
        columns = [k for k in HEADLINE.get(report["task"], ()) if any(k in r["metrics"] for r in results.values())]
        lines += ["", "| run | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        for name, result in results.items():
            lines.append(f"| {name} | " + " | ".join(_format(result["metrics"].get(k)) for k in columns) + " |")
    for name, result in results.items():
        per_class = {k: v for k, v in result.get("per_class", {}).items() if v is not None}
        if per_class:
            ordered = sorted(per_class.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{k} {v:.2f}" for k, v in ordered[:5])
            worst = ", ".join(f"{k} {v:.2f}" for k, v in ordered[-5:])
            lines += ["", f"{name}: best classes: {shown}; worst: {worst}"]
    if report.get("files"):
        lines += ["", "files: " + ", ".join(f"`{v}`" for v in report["files"].values())]
    return "\n".join(lines) + "\n"
