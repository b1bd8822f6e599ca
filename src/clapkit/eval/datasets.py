"""Evaluation datasets read from their official layouts under a local root; nothing is downloaded.

An ``EvalDataset`` is a list of ``Clip`` (path, class indices, captions, fold) plus the class names and how the
dataset is meant to be evaluated (single- or multi-label, which folds the linear probe cross-validates over).
``load_dataset(name, root)`` (``clapkit.eval.catalog``, the registry, built once) dispatches to the adapters in
``clapkit.eval.layouts``; the generic layouts (a folder per class, a CSV manifest, the project's sound corpus) and the
types all adapters share live here.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clapkit.errors import ClapkitError
from clapkit.inputs import AUDIO_EXTENSIONS


class DatasetError(ClapkitError, ValueError):
    """A dataset root, metadata file or audio file is missing or malformed. The message shows the expected layout."""


@dataclass(frozen=True)
class Clip:
    """One audio file. ``labels``: class indices (one for single-label data); ``captions``: zero or more;
    ``fold``: the official fold or split this clip belongs to (``None`` when the dataset has none)."""

    path: Path
    labels: tuple[int, ...] = ()
    captions: tuple[str, ...] = ()
    fold: str | None = None


@dataclass(frozen=True)
class ProbeSplit:
    """One linear-probe round: train on clips whose fold is in ``train_folds``, test on ``test_folds``."""

    name: str
    train_folds: tuple[str, ...]
    test_folds: tuple[str, ...]


@dataclass
class EvalDataset:
    name: str
    root: Path
    clips: list[Clip]
    classes: list[str] = field(default_factory=list)
    multi_label: bool = False
    probe_splits: list[ProbeSplit] = field(default_factory=list)
    template: str = "laion"  # the prompt template set the papers use for this dataset (see prompts.TEMPLATES)
    missing: list[str] = field(default_factory=list)  # listed clips whose audio file is absent (dropped)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def has_labels(self) -> bool:
        return bool(self.classes) and any(c.labels for c in self.clips)

    @property
    def has_captions(self) -> bool:
        return any(c.captions for c in self.clips)

    def targets(self) -> np.ndarray:
        """Single-label class index per clip (N,)."""
        return np.array([c.labels[0] for c in self.clips], dtype=np.int64)

    def replace_clips(self, clips: list[Clip], note: str | None = None) -> EvalDataset:
        notes = self.notes + ([note] if note else [])
        return dataclasses.replace(self, clips=list(clips), notes=notes)

    def labelled(self) -> EvalDataset:
        """Only the clips with at least one class (a manifest may mix labelled and caption-only rows)."""
        kept = [c for c in self.clips if c.labels]
        if len(kept) == len(self.clips):
            return self
        if not kept:
            raise DatasetError(f"{self.name} has no clip with a class label")
        return self.replace_clips(kept, f"{len(self.clips) - len(kept)} clips without a class left out")

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "root": str(self.root), "clips": len(self.clips), "classes": len(self.classes),
                "captions": sum(len(c.captions) for c in self.clips), "multi_label": self.multi_label,
                "missing_clips": len(self.missing), "missing_examples": self.missing[:10], "notes": self.notes}


# ------------------------------------------------------------------------------------------------ shared helpers
def require(path: Path, layout: str, what: str = "file") -> Path:
    """``path`` must exist, else a ``DatasetError`` showing the expected layout."""
    if not path.exists():
        raise DatasetError(f"{what} not found: {path}\nexpected layout:\n{layout}")
    return path


def require_root(root: str | Path, layout: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset root {str(root)!r} is not a directory\nexpected layout:\n{layout}")
    return root


def read_csv(path: Path, layout: str, columns: tuple[str, ...] = (), header: bool = True) -> list[dict[str, str]]:
    """Rows of a CSV as dicts; the named columns must be present."""
    require(path, layout)
    with open(path, newline="", encoding="utf-8-sig") as f:
        if not header:
            return [{str(i): v for i, v in enumerate(row)} for row in csv.reader(f) if row]
        reader = csv.DictReader(f)
        absent = [c for c in columns if c not in (reader.fieldnames or [])]
        if absent:
            raise DatasetError(f"{path}: missing column(s) {absent}; found {reader.fieldnames}\n"
                               f"expected layout:\n{layout}")
        return list(reader)


def drop_missing(clips: list[Clip], layout: str, allow_missing: bool, root: Path) -> tuple[list[Clip], list[str]]:
    """Split clips into present and missing; missing files are an error unless ``allow_missing``."""
    present = [c for c in clips if c.path.is_file()]
    missing = [str(c.path.relative_to(root) if c.path.is_relative_to(root) else c.path) for c in clips
               if not c.path.is_file()]
    if missing and not allow_missing:
        shown = ", ".join(missing[:3]) + (f" ... (+{len(missing) - 3} more)" if len(missing) > 3 else "")
        raise DatasetError(f"{len(missing)} of {len(clips)} listed audio files are missing under {root}: {shown}\n"
                           f"expected layout:\n{layout}\n(pass allow_missing=True / --allow-missing to evaluate "
                           f"on the clips that are present and report the missing ones)")
    return present, missing


def cross_validation(folds: list[str]) -> list[ProbeSplit]:
    """Leave-one-fold-out splits over the given folds."""
    return [ProbeSplit(f"fold{f}" if f.isdigit() else f, tuple(x for x in folds if x != f), (f,)) for f in folds]


def assign_folds(clips: list[Clip], num_folds: int = 5) -> list[Clip]:
    """Deterministic stratified folds for data without official ones: within each class (first label), clips in
    path order get folds 1..k round-robin."""
    by_class: dict[int, list[int]] = {}
    for i in sorted(range(len(clips)), key=lambda i: str(clips[i].path)):
        by_class.setdefault(clips[i].labels[0] if clips[i].labels else -1, []).append(i)
    folds = [""] * len(clips)
    for members in by_class.values():
        for j, i in enumerate(members):
            folds[i] = str(j % num_folds + 1)
    return [dataclasses.replace(c, fold=f) for c, f in zip(clips, folds)]


def class_index(names: list[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


# ---------------------------------------------------------------------------------------------- generic layouts
FOLDER_LAYOUT = """ROOT/
  <class name>/          one folder per class (sorted names = class order)
    *.wav|*.flac|...     audio files, any depth below the class folder"""

CSV_LAYOUT = """MANIFEST.csv (or ROOT/manifest.csv or ROOT/meta.csv) with a header row:
  path      audio file, relative to the CSV's folder (or absolute)          required
  class     class name; several separated by --label-separator (multi-label) optional
  caption   one caption; or caption_1, caption_2, ... columns; rows that     optional
            repeat a path add captions/labels to that clip
  fold      official fold or split name                                      optional"""


def load_folder_per_class(root: str | Path, num_folds: int = 5, **_: Any) -> EvalDataset:
    root = require_root(root, FOLDER_LAYOUT)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    clips = [Clip(path, (i,)) for i, d in enumerate(class_dirs) for path in sorted(d.rglob("*"))
             if path.suffix.lower() in AUDIO_EXTENSIONS]
    if not clips:
        raise DatasetError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in class folders under {root}\n"
                           f"expected layout:\n{FOLDER_LAYOUT}")
    folds = [str(k) for k in range(1, num_folds + 1)]
    return EvalDataset("folder", root, assign_folds(clips, num_folds), [d.name for d in class_dirs],
                       probe_splits=cross_validation(folds),
                       notes=[f"no official folds: {num_folds} stratified folds assigned round-robin in path order"])


def load_csv_manifest(
    root: str | Path,
    path_column: str = "path",
    class_column: str | None = "class",
    caption_column: str | None = "caption",
    fold_column: str | None = "fold",
    label_separator: str | None = None,
    num_folds: int = 5,
    allow_missing: bool = False,
    name: str = "csv",
    **_: Any,
) -> EvalDataset:
    """A generic manifest; see ``CSV_LAYOUT``. Columns that are absent are simply not used (except ``path``)."""
    manifest = _find_manifest(Path(root).expanduser())
    rows = read_csv(manifest, CSV_LAYOUT, (path_column,))
    fieldnames = list(rows[0]) if rows else []
    caption_columns = [caption_column] if caption_column in fieldnames else sorted(
        (c for c in fieldnames if c.startswith("caption_") and c[8:].isdigit()), key=lambda c: int(c[8:]))
    use_class = class_column in fieldnames
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = merged.setdefault(row[path_column], {"labels": [], "captions": [], "fold": None})
        if use_class and row[class_column].strip():
            names = row[class_column].split(label_separator) if label_separator else [row[class_column]]
            entry["labels"] += [n.strip() for n in names if n.strip() and n.strip() not in entry["labels"]]
        entry["captions"] += [row[c].strip() for c in caption_columns if row.get(c, "").strip()]
        if fold_column in fieldnames and row[fold_column].strip():
            entry["fold"] = row[fold_column].strip()
    classes = sorted({n for e in merged.values() for n in e["labels"]})
    index = class_index(classes)
    base = manifest.parent
    clips = [Clip(Path(p) if Path(p).is_absolute() else base / p, tuple(index[n] for n in e["labels"]),
                  tuple(e["captions"]), e["fold"]) for p, e in merged.items()]
    clips, missing = drop_missing(clips, CSV_LAYOUT, allow_missing, base)
    notes = [f"manifest {manifest}"]
    has_folds = bool(clips) and all(c.fold for c in clips)
    if not has_folds and classes:
        clips = assign_folds(clips, num_folds)
        notes.append(f"no fold column: {num_folds} stratified folds assigned round-robin in path order")
    folds = sorted({c.fold for c in clips if c.fold}, key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f))
    multi_label = bool(label_separator) or any(len(c.labels) > 1 for c in clips)
    return EvalDataset(name, base, clips, classes, multi_label=multi_label,
                       probe_splits=cross_validation(folds) if classes else [], missing=missing, notes=notes)


def _find_manifest(root: Path) -> Path:
    if root.is_file():
        return root
    for candidate in ("manifest.csv", "meta.csv"):
        if (root / candidate).is_file():
            return root / candidate
    raise DatasetError(f"no manifest at {root} (looked for the file itself, {root}/manifest.csv and {root}/meta.csv)"
                       f"\nexpected layout:\n{CSV_LAYOUT}")


SOUNDCORPUS_LAYOUT = """ROOT/                      (built by `clapkit data harvest`, docs/corpus.md)
  meta.csv                 path,source_package,source_path,...,class,caption,... (path relative to ROOT)
  clips/<package>/*.flac"""


def load_sound_corpus(root: str | Path, num_folds: int = 5, allow_missing: bool = False, **_: Any) -> EvalDataset:
    """The project's sound corpus (``debian/`` or ``synth/`` set): a CSV manifest with path, class and caption."""
    root = require_root(root, SOUNDCORPUS_LAYOUT)
    require(root / "meta.csv", SOUNDCORPUS_LAYOUT)
    dataset = load_csv_manifest(root / "meta.csv", fold_column=None, num_folds=num_folds, allow_missing=allow_missing,
                                name="soundcorpus")
    return dataset


def subset(
    dataset: EvalDataset, max_per_class: int | None = None, limit: int | None = None, folds: list[str] | None = None
) -> EvalDataset:
    """A deterministic subset: only the given folds, then the first ``max_per_class`` clips of each class (manifest
    order), then ``limit`` clips spread evenly over the list."""
    clips, notes = dataset.clips, []
    if folds:
        clips = [c for c in clips if c.fold in set(folds)]
        notes.append(f"folds {','.join(folds)} only")
    if max_per_class:
        seen: dict[int, int] = {}
        kept = []
        for c in clips:
            key = c.labels[0] if c.labels else -1
            if seen.get(key, 0) < max_per_class:
                kept.append(c)
                seen[key] = seen.get(key, 0) + 1
        clips = kept
        notes.append(f"at most {max_per_class} clips per class")
    if limit and limit < len(clips):
        clips = [clips[i] for i in np.linspace(0, len(clips) - 1, limit).round().astype(int)]
        notes.append(f"{limit} clips spread evenly over the list")
    if not clips:
        raise DatasetError(f"{dataset.name}: the subset ({'; '.join(notes)}) is empty")
    return dataset.replace_clips(clips, "subset: " + "; ".join(notes)) if notes else dataset
