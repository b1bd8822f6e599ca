"""Manifests: reading (CSV / TSV / JSONL / JSON files, and folders with captions beside the audio) and writing.

``read_manifest`` is the one reader and ``write_manifest`` the one writer. Bad rows (no audio path, no caption and no
keywords, malformed JSON, a duplicate id, with ``check_files`` a missing file) are skipped, counted per reason
(``Manifest.skipped``) and logged once each on ``clapkit.train``. Columns and layouts: docs/training-data.md. The
datasets over manifests live in ``clapkit.train.data``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clapkit.errors import ClapkitError
from clapkit.files import atomic_open
from clapkit.inputs import AUDIO_EXTENSIONS

log = logging.getLogger("clapkit.train")

PATH_FIELDS = ("audio", "path", "audio_path", "file", "file_name", "filename", "wav", "flac")
KEYWORD_FIELDS = ("keywords", "tags", "tag", "labels")
REWRITE_FIELDS = ("rewrites",)
ID_FIELDS = ("id", "key")


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


CSV_FIELDS = ("id", "audio", "captions", "keywords", "rewrites")


def write_manifest(entries: Iterable, path: str | os.PathLike[str]) -> Path:
    """Write ``ManifestEntry`` items as JSONL (or CSV with JSON-array cells when ``path`` ends in .csv), audio paths
    relative to the output's folder, atomically (a failure never leaves half a manifest)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    records = [e.to_record(relative_to=out.parent.resolve()) for e in entries]
    with atomic_open(out, "w", newline="", encoding="utf-8") as f:
        if out.suffix.lower() == ".csv":
            writer = csv.DictWriter(f, fieldnames=list(CSV_FIELDS))
            writer.writeheader()
            for r in records:
                writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v
                                 for k, v in r.items()})
        else:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return out
