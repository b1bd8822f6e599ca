"""Training data: manifests (CSV / TSV / JSONL / JSON), folders with captions beside the audio, and the map-style
:class:`ManifestDataset`. Webdataset tar shards live in ``clapkit.train.shards``.

Every dataset yields the same item dict::

    {"id": str, "waveform": np.ndarray (float32, mono, at the dataset's sample_rate),
     "captions": list[str] (>= 1), "keywords": list[str], "rewrites": list[str]}

Bad rows and items (no path, no caption, unreadable, missing, empty or silent audio) are skipped, counted per reason
(``.skipped``) and logged once each on ``clapkit.train``; nothing crashes. Columns and layouts: docs/training-data.md.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch.utils.data

from clapkit.audio.io import is_silent, load_audio
from clapkit.errors import AudioError, ClapkitError
from clapkit.inputs import AUDIO_EXTENSIONS

log = logging.getLogger("clapkit.train")

PATH_FIELDS = ("audio", "path", "audio_path", "file", "file_name", "filename", "wav", "flac")
KEYWORD_FIELDS = ("keywords", "tags", "tag", "labels")
REWRITE_FIELDS = ("rewrites",)
ID_FIELDS = ("id", "key")
SILENCE_THRESHOLD_DB = -90.0


@dataclass(frozen=True)
class ManifestEntry:
    """One training clip (resolved ``audio`` path); ``captions`` may be empty only when ``keywords`` are given."""

    id: str
    audio: str
    captions: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    rewrites: tuple[str, ...] = ()

    def to_record(self, relative_to: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """A JSONL manifest row; the audio path is made relative to ``relative_to`` when possible."""
        audio = self.audio
        if relative_to is not None:
            try:
                audio = os.path.relpath(self.audio, relative_to)
            except ValueError:  # another drive on Windows
                audio = os.path.abspath(self.audio)
        return {"id": self.id, "audio": audio, "captions": list(self.captions), "keywords": list(self.keywords),
                "rewrites": list(self.rewrites)}


class SkipCounter(Counter):
    """Counts skipped rows/items per reason and logs one warning line per skip."""

    def skip(self, reason: str, what: str, detail: str = "") -> None:
        self[reason] += 1
        log.warning("skipping %s: %s%s", what, reason.replace("_", " "), f" ({detail})" if detail else "")

    def summary(self) -> str:
        return ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(self.items())) or "none"


@dataclass
class Manifest:
    """Parsed manifest: usable ``entries`` in file order and the ``skipped`` rows by reason."""
    entries: list[ManifestEntry]
    skipped: SkipCounter
    source: str

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    def __getitem__(self, index: int) -> ManifestEntry:
        return self.entries[index]


def text_list(value: Any) -> list[str]:
    """A cell or JSON value as a list of non-empty strings: lists stay lists, a string holding a JSON array is parsed,
    other strings are split on ``|`` (multi-valued CSV cells: ``"a dog barks|a dog barking"``)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    if not isinstance(value, str):
        raise ValueError(f"expected text or a list of texts, got {type(value).__name__}")
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return text_list(parsed)
    return [part.strip() for part in text.split("|") if part.strip()]


def _first_field(row: dict[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        if name in row and row[name] not in (None, ""):
            return row[name]
    return None


def row_captions(row: dict[str, Any]) -> list[str]:
    captions: list[str] = []
    for name in ("caption", "text"):  # one caption each (a "|" inside is kept); a list is several
        value = row.get(name)
        captions += [value.strip()] if isinstance(value, str) else text_list(value)
    captions += text_list(row.get("captions"))
    numbered = sorted((k for k in row if k.startswith("caption_") and k[8:].isdigit()), key=lambda k: int(k[8:]))
    for name in numbered:  # Clotho: caption_1 ... caption_5
        value = row[name]
        captions += [value.strip()] if isinstance(value, str) else text_list(value)
    return list(dict.fromkeys(c for c in captions if c))


def parse_row(row: dict[str, Any], base_dir: Path) -> tuple[str, dict[str, Any]]:
    """``(audio path, fields)`` from one manifest row; ``ValueError`` names what is wrong."""
    row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    audio = _first_field(row, PATH_FIELDS)
    if not isinstance(audio, str) or not audio.strip():
        raise ValueError(f"no audio path (one of the columns {', '.join(PATH_FIELDS)})")
    path = Path(os.path.expanduser(audio.strip()))
    path = path if path.is_absolute() else base_dir / path
    captions = row_captions(row)
    keywords = text_list(_first_field(row, KEYWORD_FIELDS))
    rewrites = text_list(_first_field(row, REWRITE_FIELDS))
    identifier = _first_field(row, ID_FIELDS)
    return str(path), {"id": None if identifier is None else str(identifier).strip(), "captions": captions,
                       "keywords": keywords, "rewrites": rewrites}


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """``(line number, row or None, error)`` for every record of a CSV/TSV/JSONL/JSON manifest."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            for row in reader:
                yield reader.line_num, row, ""
        return
    with path.open(encoding="utf-8-sig") as f:
        head = f.read(1)
        while head and head.isspace():
            head = f.read(1)
        f.seek(0)
        if suffix == ".json" and head == "[":
            try:
                records = json.load(f)
            except json.JSONDecodeError as exc:
                raise ClapkitError(f"{path}: not valid JSON ({exc})") from None
            for i, record in enumerate(records, 1):
                yield (i, record, "") if isinstance(record, dict) else (i, None, "not a JSON object")
            return
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"not valid JSON ({exc.msg})"
                continue
            yield (number, record, "") if isinstance(record, dict) else (number, None, "not a JSON object")


def read_manifest(
    source: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, check_files: bool = False
) -> Manifest:
    """Read a manifest file (``.csv``, ``.tsv``, ``.jsonl``, ``.json``) or a folder with captions beside the audio.

    Relative audio paths are resolved against ``root`` (default: the manifest's folder). Rows naming the same audio
    file are merged (their captions, keywords and rewrites are joined), so AudioCaps-style one-caption-per-row CSVs
    give one entry per clip. Rows without an audio path, without captions and keywords, with malformed JSON or a
    duplicate id are skipped and counted; with ``check_files`` so are rows whose audio file does not exist.
    """
    path = Path(source)
    if path.is_dir():
        return read_folder(path)
    if not path.is_file():
        raise ClapkitError(f"{path}: manifest not found; give a .csv, .tsv, .jsonl or .json file or a folder")
    if path.suffix.lower() not in (".csv", ".tsv", ".jsonl", ".json", ".ndjson"):
        raise ClapkitError(f"{path}: unknown manifest type {path.suffix!r}; use .csv, .tsv, .jsonl or .json")
    base_dir = Path(root) if root is not None else path.parent
    skipped = SkipCounter()
    merged: dict[str, dict[str, Any]] = {}
    for number, row, error in _rows(path):
        where = f"{path.name} row {number}"
        if row is None:
            skipped.skip("bad_row", where, error)
            continue
        try:
            audio, fields = parse_row(row, base_dir)
        except ValueError as exc:
            skipped.skip("bad_row", where, str(exc))
            continue
        if not fields["captions"] and not fields["keywords"]:
            skipped.skip("no_caption", where, "no caption and no keywords")
            continue
        if check_files and not Path(audio).is_file():
            skipped.skip("missing_file", where, audio)
            continue
        if audio in merged:
            for key in ("captions", "keywords", "rewrites"):
                merged[audio][key] = list(dict.fromkeys(merged[audio][key] + fields[key]))
        else:
            fields["where"] = where
            merged[audio] = fields
    return Manifest(_entries(merged, base_dir, skipped), skipped, str(path))


def as_manifest(source, root: str | os.PathLike[str] | None = None) -> Manifest:
    """A manifest from a path (file or caption folder), a ``Manifest`` or a list of ``ManifestEntry``."""
    if isinstance(source, Manifest):
        return source
    if isinstance(source, (str, os.PathLike)):
        return read_manifest(source, root=root)
    return Manifest(list(source), SkipCounter(), "entries")


def _entries(merged: dict[str, dict[str, Any]], base_dir: Path, skipped: SkipCounter) -> list[ManifestEntry]:
    entries, seen = [], set()
    for audio, fields in merged.items():
        identifier = fields["id"] or _default_id(audio, base_dir)
        if identifier in seen:
            skipped.skip("duplicate_id", fields.get("where", audio), f"id {identifier!r} is already used")
            continue
        seen.add(identifier)
        entries.append(ManifestEntry(identifier, audio, tuple(fields["captions"]), tuple(fields["keywords"]),
                                     tuple(fields["rewrites"])))
    return entries


def _default_id(audio: str, base_dir: Path) -> str:
    try:
        relative = Path(audio).resolve().relative_to(base_dir.resolve())
    except ValueError:
        relative = Path(Path(audio).name)
    return relative.with_suffix("").as_posix()


def _sidecar_fields(audio: Path) -> dict[str, Any] | None:
    """Captions beside ``x.wav``: ``x.json`` (an object with manifest fields) or ``x.txt`` (one caption per line)."""
    json_path, txt_path = audio.with_suffix(".json"), audio.with_suffix(".txt")
    if json_path.is_file():
        record = json.loads(json_path.read_text(encoding="utf-8-sig"))
        if not isinstance(record, dict):
            raise ValueError(f"{json_path.name} is not a JSON object")
        _, fields = parse_row({**record, "audio": str(audio)}, audio.parent)
        return fields
    if txt_path.is_file():
        lines = [line.strip() for line in txt_path.read_text(encoding="utf-8-sig").splitlines()]
        return {"id": None, "captions": [line for line in lines if line], "keywords": [], "rewrites": []}
    return None


def read_folder(root: str | os.PathLike[str]) -> Manifest:
    """A folder (searched recursively) of audio files with captions beside them: ``dog.wav`` + ``dog.txt`` (one
    caption per line) or ``dog.json`` (``{"captions": [...], "keywords": [...], "rewrites": [...]}``, the manifest
    fields). Ids are the paths relative to ``root`` without extension. Audio without captions is skipped."""
    root = Path(root)
    skipped = SkipCounter()
    merged: dict[str, dict[str, Any]] = {}
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        where = audio.relative_to(root).as_posix()
        try:
            fields = _sidecar_fields(audio)
        except (ValueError, OSError) as exc:
            skipped.skip("bad_row", where, str(exc))
            continue
        if fields is None or (not fields["captions"] and not fields["keywords"]):
            skipped.skip("no_caption", where, "no .txt or .json captions beside it")
            continue
        fields["where"] = where
        merged[str(audio)] = fields
    return Manifest(_entries(merged, root, skipped), skipped, str(root))


def make_item(identifier: str, waveform: np.ndarray, captions: Iterable[str], keywords: Iterable[str] = (),
              rewrites: Iterable[str] = ()) -> dict[str, Any]:
    """The item dict every dataset yields."""
    return {"id": str(identifier), "waveform": np.ascontiguousarray(waveform, dtype=np.float32),
            "captions": list(captions), "keywords": list(keywords), "rewrites": list(rewrites)}


def audio_error_reason(error: AudioError) -> str:
    """Skip-count reason for an :class:`AudioError`: ``missing``, ``empty`` or ``undecodable``."""
    text = error.reason.lower()
    if "not found" in text:
        return "missing"
    if "empty" in text or "no samples" in text or "no audio samples" in text or "length 0" in text:
        return "empty"
    return "undecodable"


@dataclass
class ItemChecks:
    """The checks every dataset applies before yielding an item (shared by manifests and shards)."""

    skip_silent: bool = True
    silence_threshold_db: float = SILENCE_THRESHOLD_DB
    keywords_as_caption: bool = False
    seed: int = 0
    _captioner: Any = field(default=None, init=False, repr=False)

    def captions_for(self, captions: list[str], keywords: list[str]) -> list[str]:
        """The captions, or an offline keyword caption (fixed by ``seed`` and the keywords) when allowed."""
        if captions or not (self.keywords_as_caption and keywords):
            return captions
        if self._captioner is None:
            from clapkit.train.captions import KeywordCaptioner

            self._captioner = KeywordCaptioner(seed=self.seed)
        return [self._captioner.caption(keywords)]

    def audio_problem(self, waveform: np.ndarray) -> str | None:
        if waveform.size == 0:
            return "empty"
        if self.skip_silent and is_silent(waveform, self.silence_threshold_db):
            return "silent"
        return None


class ManifestDataset(torch.utils.data.Dataset):
    """Map-style dataset over a manifest, a folder, a :class:`Manifest` or a list of entries.

    ``dataset[i]`` decodes entry ``i`` to ``sample_rate`` and returns the item dict. A bad item (missing, undecodable,
    empty, silent, no caption) is counted in ``.skipped``, logged once, remembered, and replaced by the next good
    entry (wrapping around), so a DataLoader never sees an exception for bad data. Counts are per process (each
    DataLoader worker keeps its own).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Manifest | Sequence[ManifestEntry],
        sample_rate: int,
        *,
        root: str | os.PathLike[str] | None = None,
        skip_silent: bool = True,
        silence_threshold_db: float = SILENCE_THRESHOLD_DB,
        keywords_as_caption: bool = False,
        seed: int = 0,
    ):
        manifest = as_manifest(source, root)
        self.entries = manifest.entries
        self.manifest_skipped = manifest.skipped
        self.sample_rate = int(sample_rate)
        self.checks = ItemChecks(skip_silent, silence_threshold_db, keywords_as_caption, seed)
        self.skipped = SkipCounter()
        self._bad: set[int] = set()
        if not self.entries:
            raise ClapkitError(f"{manifest.source}: no usable entries (skipped: {manifest.skipped.summary()})")

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> dict[str, Any] | None:
        """Item ``index``, or ``None`` (counted and logged) when it is bad."""
        entry = self.entries[index]
        where = f"{entry.id} ({entry.audio})"
        captions = self.checks.captions_for(list(entry.captions), list(entry.keywords))
        if not captions:
            self.skipped.skip("no_caption", where)
            return None
        try:
            waveform = load_audio(entry.audio, self.sample_rate)
        except AudioError as exc:
            self.skipped.skip(audio_error_reason(exc), where, exc.reason)
            return None
        problem = self.checks.audio_problem(waveform)
        if problem:
            self.skipped.skip(problem, where)
            return None
        return make_item(entry.id, waveform, captions, entry.keywords, entry.rewrites)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.entries)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} entries")
        index %= n
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                continue
            item = self.load(i)
            if item is not None:
                return item
            self._bad.add(i)
        raise ClapkitError(f"no usable items: all {n} entries are bad (skipped: {self.skipped.summary()})")
