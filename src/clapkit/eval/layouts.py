"""Adapters for the standard datasets, reading each one laid out as its official download unpacks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from clapkit.eval.datasets import (
    AUDIO_EXTENSIONS,
    Clip,
    DatasetError,
    EvalDataset,
    ProbeSplit,
    class_index,
    cross_validation,
    drop_missing,
    read_csv,
    require,
    require_root,
)

ESC50_LAYOUT = """ROOT/                        (the unzipped ESC-50-master/)
  meta/esc50.csv             filename,fold,target,category,esc10,src_file,take
  audio/<filename>.wav       2000 clips, folds 1-5"""

US8K_LAYOUT = """ROOT/                        (the unpacked UrbanSound8K/)
  metadata/UrbanSound8K.csv  slice_file_name,fsID,start,end,salience,fold,classID,class
  audio/fold1/ ... audio/fold10/<slice_file_name>"""

CLOTHO_LAYOUT = """ROOT/                        (Clotho v2 from Zenodo, audio archives unpacked next to the CSVs)
  clotho_captions_<split>.csv   file_name,caption_1,...,caption_5   (split: development|validation|evaluation)
  <split>/<file_name>           the audio (clotho_audio_<split>.7z unpacks to <split>/)"""

AUDIOCAPS_LAYOUT = """ROOT/                        (the audiocaps repository's dataset/ CSVs plus your local audio)
  <split>.csv or dataset/<split>.csv   audiocap_id,youtube_id,start_time,caption   (split: train|val|test)
  audio/<split>/ (or audio/, <split>/)  one file per clip named <youtube_id>, Y<youtube_id>,
                                         <youtube_id>_<start_time> or Y<youtube_id>_<start_time> (.wav/.flac/...)
  clips that are missing locally are counted and reported, not an error"""

FSD50K_LAYOUT = """ROOT/                        (FSD50K from Zenodo, unzipped)
  FSD50K.ground_truth/vocabulary.csv   index,label,mid  (no header)
  FSD50K.ground_truth/dev.csv          fname,labels,mids,split   (split: train|val)
  FSD50K.ground_truth/eval.csv         fname,labels,mids
  FSD50K.dev_audio/<fname>.wav, FSD50K.eval_audio/<fname>.wav"""

GTZAN_LAYOUT = """ROOT/                        (GTZAN: genres/ of the original archive, or genres_original/)
  [genres/ | genres_original/]<genre>/<genre>.000NN.(au|wav)   10 genres x 100 clips"""


def _classes_by_id(rows: list[dict[str, str]], id_column: str, name_column: str) -> tuple[list[str], dict[int, int]]:
    """Class names ordered by the official class id, and id -> index in that list."""
    names = {int(r[id_column]): r[name_column] for r in rows}
    ids = sorted(names)
    return [names[i] for i in ids], {i: k for k, i in enumerate(ids)}


def load_esc50(root: str | Path, allow_missing: bool = False, **_: Any) -> EvalDataset:
    """ESC-50: 50 classes x 40 clips, 5 official folds (cross-validated by the linear probe)."""
    root = require_root(root, ESC50_LAYOUT)
    rows = read_csv(root / "meta" / "esc50.csv", ESC50_LAYOUT, ("filename", "fold", "target", "category"))
    classes, position = _classes_by_id(rows, "target", "category")
    clips = [Clip(root / "audio" / r["filename"], (position[int(r["target"])],), fold=r["fold"]) for r in rows]
    clips, missing = drop_missing(clips, ESC50_LAYOUT, allow_missing, root)
    folds = sorted({c.fold for c in clips}, key=int)
    return EvalDataset("esc50", root, clips, classes, probe_splits=cross_validation(folds), missing=missing)


def load_urbansound8k(root: str | Path, allow_missing: bool = False, **_: Any) -> EvalDataset:
    """UrbanSound8K: 10 classes, 8732 slices, 10 official folds (never shuffle across folds)."""
    root = require_root(root, US8K_LAYOUT)
    columns = ("slice_file_name", "fold", "classID", "class")
    rows = read_csv(root / "metadata" / "UrbanSound8K.csv", US8K_LAYOUT, columns)
    classes, position = _classes_by_id(rows, "classID", "class")
    clips = [Clip(root / "audio" / f"fold{r['fold']}" / r["slice_file_name"], (position[int(r["classID"])],),
                  fold=r["fold"]) for r in rows]
    clips, missing = drop_missing(clips, US8K_LAYOUT, allow_missing, root)
    folds = sorted({c.fold for c in clips}, key=int)
    return EvalDataset("urbansound8k", root, clips, classes, probe_splits=cross_validation(folds), missing=missing)


def load_clotho(root: str | Path, split: str = "evaluation", allow_missing: bool = False, **_: Any) -> EvalDataset:
    """Clotho v2 captions: 5 captions per clip (retrieval only)."""
    root = require_root(root, CLOTHO_LAYOUT)
    if split not in ("development", "validation", "evaluation"):
        raise DatasetError(f"clotho split must be development, validation or evaluation, not {split!r}")
    rows = read_csv(root / f"clotho_captions_{split}.csv", CLOTHO_LAYOUT, ("file_name", "caption_1"))
    audio_dir = next((d for d in (root / split, root / f"clotho_audio_{split}") if d.is_dir()), root / split)
    numbered = [c for c in (rows[0] if rows else {}) if re.fullmatch(r"caption_\d+", c)]
    caption_columns = sorted(numbered, key=lambda c: int(c[8:]))
    clips = [Clip(audio_dir / r["file_name"], captions=tuple(r[c].strip() for c in caption_columns if r[c].strip()),
                  fold=split) for r in rows]
    clips, missing = drop_missing(clips, CLOTHO_LAYOUT, allow_missing, root)
    return EvalDataset(f"clotho-{split}", root, clips, missing=missing)


def load_audiocaps(root: str | Path, split: str = "test", allow_missing: bool = True, **_: Any) -> EvalDataset:
    """AudioCaps: YouTube ids mapped to local files; test and val have 5 captions per clip, train 1."""
    root = require_root(root, AUDIOCAPS_LAYOUT)
    csv_path = next((p for p in (root / f"{split}.csv", root / "dataset" / f"{split}.csv") if p.is_file()),
                    root / f"{split}.csv")
    rows = read_csv(csv_path, AUDIOCAPS_LAYOUT, ("youtube_id", "start_time", "caption"))
    files = _index_audio([root / "audio" / split, root / split, root / "audio"])
    grouped: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        grouped.setdefault((r["youtube_id"], r["start_time"]), []).append(r["caption"].strip())
    clips, missing = [], []
    for (youtube_id, start), captions in grouped.items():
        start_int = str(int(float(start))) if start.replace(".", "", 1).isdigit() else start
        names = [youtube_id, f"Y{youtube_id}", f"{youtube_id}_{start}", f"Y{youtube_id}_{start}",
                 f"{youtube_id}_{start_int}", f"Y{youtube_id}_{start_int}"]
        found = next((files[n] for n in names if n in files), None)
        if found is None:
            missing.append(f"{youtube_id} (start {start})")
        else:
            clips.append(Clip(found, captions=tuple(captions), fold=split))
    if missing and not allow_missing:
        raise DatasetError(f"{len(missing)} of {len(grouped)} AudioCaps {split} clips have no local file "
                           f"(first: {missing[0]})\nexpected layout:\n{AUDIOCAPS_LAYOUT}")
    if not clips:
        raise DatasetError(f"none of the {len(grouped)} AudioCaps {split} clips was found under {root}\n"
                           f"expected layout:\n{AUDIOCAPS_LAYOUT}")
    notes = [f"{len(missing)} of {len(grouped)} clips missing locally (not downloadable any more)"] if missing else []
    return EvalDataset(f"audiocaps-{split}", root, clips, missing=missing, notes=notes)


def _index_audio(folders: list[Path]) -> dict[str, Path]:
    """File stem -> path for audio files below the first existing folders (earlier folders win)."""
    index: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() in AUDIO_EXTENSIONS:
                    index.setdefault(path.stem, path)
    return index


def load_fsd50k(root: str | Path, split: str = "eval", allow_missing: bool = False, **_: Any) -> EvalDataset:
    """FSD50K: 200 classes, multi-label (mAP). ``split``: eval (zero-shot), dev, or all (linear probe: train on
    dev's train+val, test on eval)."""
    root = require_root(root, FSD50K_LAYOUT)
    truth = root / "FSD50K.ground_truth"
    vocabulary = read_csv(truth / "vocabulary.csv", FSD50K_LAYOUT, header=False)
    classes = [r["1"] for r in sorted(vocabulary, key=lambda r: int(r["0"]))]
    index = class_index(classes)
    if split not in ("eval", "dev", "all"):
        raise DatasetError(f"fsd50k split must be eval, dev or all, not {split!r}")
    clips = []
    for part in (("dev", "eval") if split == "all" else (split,)):
        rows = read_csv(truth / f"{part}.csv", FSD50K_LAYOUT, ("fname", "labels"))
        for r in rows:
            unknown = [n for n in r["labels"].split(",") if n not in index]
            if unknown:
                raise DatasetError(f"{truth / f'{part}.csv'}: clip {r['fname']} has labels {unknown} that are not in "
                                   f"vocabulary.csv")
            fold = r.get("split") or part
            clips.append(Clip(root / f"FSD50K.{part}_audio" / f"{r['fname']}.wav",
                              tuple(index[n] for n in r["labels"].split(",")), fold=fold))
    clips, missing = drop_missing(clips, FSD50K_LAYOUT, allow_missing, root)
    probe = [ProbeSplit("eval", ("train", "val"), ("eval",))] if split == "all" else []
    return EvalDataset(f"fsd50k-{split}", root, clips, classes, multi_label=True, probe_splits=probe, missing=missing)


GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def load_gtzan(root: str | Path, **_: Any) -> EvalDataset:
    """GTZAN: 10 genres x 100 clips. No official folds: 10 folds of consecutive clip numbers (00000-00009 fold 1,
    ...), so near-duplicate neighbouring excerpts stay in one fold. LAION prompts music as "This is a {} song."."""
    root = require_root(root, GTZAN_LAYOUT)
    base = next((d for d in (root / "genres_original", root / "genres", root) if (d / "blues").is_dir()), None)
    if base is None:
        raise DatasetError(f"no genre folders (blues/, classical/, ...) under {root}\nexpected layout:\n{GTZAN_LAYOUT}")
    genres = [g for g in GTZAN_GENRES if (base / g).is_dir()]
    clips = []
    for i, genre in enumerate(genres):
        for path in sorted(require(base / genre, GTZAN_LAYOUT, "genre folder").iterdir()):
            if path.suffix.lower() in AUDIO_EXTENSIONS:
                number = re.search(r"(\d+)$", path.stem)
                fold = str(int(number.group(1)) // 10 % 10 + 1) if number else "1"
                clips.append(Clip(path, (i,), fold=fold))
    if not clips:
        raise DatasetError(f"no audio files in the genre folders under {base}\nexpected layout:\n{GTZAN_LAYOUT}")
    folds = sorted({c.fold for c in clips}, key=int)
    return EvalDataset("gtzan", root, clips, genres, probe_splits=cross_validation(folds), template="laion-music",
                       notes=["no official folds: fold = clip number // 10 % 10 + 1"])
