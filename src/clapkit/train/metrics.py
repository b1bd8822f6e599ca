"""Training metrics: CSV files (``train_metrics.csv``, ``val_metrics.csv``), TensorBoard if installed, and a PNG of
the curves (``curves.png``, matplotlib if installed). On resume, rows after the resumed step are dropped so the
files read as one uninterrupted run.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

from clapkit.files import atomic_open

log = logging.getLogger(__name__)

SPLITS = ("train", "val")


def csv_path(output_dir: str | Path, split: str) -> Path:
    return Path(output_dir) / f"{split}_metrics.csv"


def read_metrics(output_dir: str | Path, split: str) -> list[dict[str, float]]:
    """Rows of a metrics CSV as dicts of floats (empty cells are NaN)."""
    path = csv_path(output_dir, split)
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in
                csv.DictReader(handle)]


class MetricsLogger:
    """Append rows per split; only the main process writes. ``resume_step``: drop rows with a later step first."""

    def __init__(self, output_dir: str | Path, enabled: bool = True, resume_step: int | None = None,
                 tensorboard: bool = True):
        self.output_dir = Path(output_dir)
        self.enabled = enabled
        self.columns: dict[str, list[str]] = {}
        self.writer = None
        if not enabled:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            path = csv_path(self.output_dir, split)
            if path.is_file():
                self._truncate(path, resume_step if resume_step is not None else -1, split)
        if tensorboard:
            self.writer = _tensorboard_writer(self.output_dir / "tensorboard", (resume_step or 0) + 1)

    def _truncate(self, path: Path, resume_step: int, split: str) -> None:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = [row for row in reader if row.get("step") and int(float(row["step"])) <= resume_step]
        if not columns:
            return
        self.columns[split] = columns
        with atomic_open(path, "w", newline="") as handle:  # a crash while resuming keeps the old file
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    def log(self, split: str, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: v for k, v in values.items() if isinstance(v, (int, float))}}
        path = csv_path(self.output_dir, split)
        columns = self.columns.get(split)
        if columns is None or not path.is_file():
            columns = list(row)
            self.columns[split] = columns
            with open(path, "w", newline="") as handle:
                csv.DictWriter(handle, fieldnames=columns).writeheader()
        new = [k for k in row if k not in columns]
        if new:
            log.warning("metrics %s: new columns %s are not in %s and are not written", split, new, path.name)
        with open(path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore").writerow(row)
        if self.writer is not None:
            for key, value in row.items():
                if key != "step":
                    self.writer.add_scalar(f"{split}/{key}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _tensorboard_writer(directory: Path, purge_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard is not installed (pip install 'clapkit[train]'); metrics go to CSV only")
        return None
    return SummaryWriter(str(directory), purge_step=purge_step)


def plot_curves(output_dir: str | Path, path: str | Path | None = None) -> Path | None:
    """Draw training loss, learning rate, logit scale and validation recall against step into a PNG.
    Returns the PNG's path, or ``None`` when matplotlib is missing or there is nothing to draw."""
    output_dir = Path(output_dir)
    train, val = read_metrics(output_dir, "train"), read_metrics(output_dir, "val")
    if not train and not val:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed (pip install 'clapkit[train]'); no curves.png")
        return None
    panels = [("loss", "training loss", train, ["loss"]), ("lr", "learning rate", train, ["lr"]),
              ("logit_scale", "logit scale", train, ["logit_scale"]),
              ("recall", "validation recall", val, [f"{d}_R@{k}" for d in ("text_to_audio", "audio_to_text")
                                                    for k in (1, 10)])]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7))
    for axis, (_, title, rows, keys) in zip(axes.flat, panels, strict=True):
        axis.set_title(title)
        axis.set_xlabel("step")
        for key in keys:
            points = [(row["step"], row[key]) for row in rows if key in row and not math.isnan(row[key])]
            if points:
                axis.plot(*zip(*points, strict=True), label=key, marker="." if len(points) < 30 else None)
        if title == "validation recall" and val and "chance_R@1" in val[-1]:
            axis.axhline(val[-1]["chance_R@1"], color="grey", linestyle=":", label="chance R@1")
            axis.axhline(val[-1].get("chance_R@10", math.nan), color="grey", linestyle="--", label="chance R@10")
        if axis.lines:
            axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    target = Path(path) if path else output_dir / "curves.png"
    from clapkit.files import atomic_write

    atomic_write(target, lambda tmp: figure.savefig(tmp, dpi=90, format="png"))
    plt.close(figure)
    return target
