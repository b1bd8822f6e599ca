"""Write the corpus: de-duplicate decoded clips (first source in package/path order wins), caption them, link the
kept FLAC files into ``out/clips/<package>/``, and write meta.csv, skipped.csv, packages.csv and the licences.
Every table is sorted and written atomically; clips no longer in meta.csv are removed from ``out/clips``."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from clapkit.files import atomic_write
from clapkit.harvest.captions import Captioner
from clapkit.harvest.packages import Package
from clapkit.harvest.scan import Skip
from clapkit.ontology import Ontology

META_COLUMNS = ("clip_id", "path", "source_package", "source_path", "licence", "labels", "ontology_ids",
                "top_category", "keywords", "evidence", "caption", "duration_s", "sha1", "rewrites", "class")
SKIP_COLUMNS = ("package", "source_path", "reason")
PACKAGE_COLUMNS = ("package", "version", "licence_summary", "files_seen", "clips_kept", "skipped", "duplicates")



@dataclass
class HarvestResult:
    out: Path
    clips: int = 0
    skipped: Counter = field(default_factory=Counter)
    labels: int = 0  # distinct primary labels
    all_labels: int = 0  # distinct labels in any position
    classes: int = 0
    per_package: dict[str, int] = field(default_factory=dict)
    per_top: Counter = field(default_factory=Counter)


def _write_csv(path: Path, columns, rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    atomic_write(path, lambda tmp: tmp.write_text(buffer.getvalue(), encoding="utf-8"))


def _link(src: Path, dst: Path) -> None:
    if dst.exists():
        if os.path.samefile(src, dst):
            return
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_outputs(out: Path, packages: list[Package], plan, skips: list[Skip], seen: Counter,
                  results: dict, ontology: Ontology, work: Path | None = None, derive: int = 0):
    """``derive``: derived clips per channel effect (``harvest.derive``, rendered under ``work``), 0 for none."""
    captioner = Captioner(ontology)
    by_name = {p.name: p for p in packages}
    first_of: dict[str, str] = {}
    rows, kept_files = [], set()
    skips = list(skips)
    duplicates: Counter = Counter()
    result = HarvestResult(out=out)
    for item in plan:
        c, labelling = item.candidate, item.labelling
        record = results.get((c.package, c.source_path))
        if record is None:
            skips.append(Skip(c.package, c.source_path, "not decoded (interrupted run)"))
            continue
        if record["skip"]:
            skips.append(Skip(c.package, c.source_path, record["skip"]))
            continue
        package = by_name[c.package]
        licence = package.copyright.licence_of(c.source_path.replace("!", "/")) if package.copyright else ""
        for clip in record["clips"]:
            segment = f"#segment{clip['segment']}" if clip["segment"] >= 0 else ""
            if clip["sha1"] in first_of:
                duplicates[c.package] += 1
                skips.append(Skip(c.package, c.source_path + segment, f"duplicate of {first_of[clip['sha1']]}"))
                continue
            first_of[clip["sha1"]] = f"{c.package}:{c.source_path}{segment}"
            clip_id = Path(clip["file"]).stem
            rel = f"clips/{c.package}/{clip_id}.flac"
            _link(Path(clip["file"]), out / rel)
            kept_files.add(rel)
            caption, rewrites = captioner.caption(clip_id, labelling)
            labels = labelling.labels
            rows.append(dict(zip(META_COLUMNS, (
                clip_id, rel, c.package, c.source_path + segment, licence, ";".join(e.name for e in labels),
                ";".join(e.id for e in labels), ontology.top_category(labels[0]).name, " ".join(labelling.keywords),
                labelling.evidence, caption, f"{clip['duration_s']:.3f}", clip["sha1"], " | ".join(rewrites),
                labels[0].name))))
    if derive:
        from clapkit.harvest.derive import derived_rows

        for row in derived_rows(rows, out, work if work is not None else out / ".work", ontology, derive):
            if row["sha1"] in first_of:
                continue
            first_of[row["sha1"]] = f"{row['source_package']}:{row['source_path']}"
            _link(Path(row.pop("file")), out / row["path"])
            kept_files.add(row["path"])
            rows.append(row)
        rows.sort(key=lambda r: (r["source_package"], r["source_path"]))
    _write_csv(out / "meta.csv", META_COLUMNS, [[r[c] for c in META_COLUMNS] for r in rows])
    _remove_orphans(out / "clips", kept_files, out)  # after meta.csv: a new reader never sees a missing clip
    skips.sort(key=lambda s: (s.package, s.source_path))
    _write_csv(out / "skipped.csv", SKIP_COLUMNS, [(s.package, s.source_path, s.reason) for s in skips])
    kept = Counter(r["source_package"] for r in rows)
    skipped = Counter(s.package for s in skips)
    licence_dir = out / "licences"
    licence_dir.mkdir(parents=True, exist_ok=True)
    package_rows = []
    for p in packages:
        summary = p.copyright.summary if p.copyright else "no copyright file"
        package_rows.append((p.name, p.version, summary, seen[p.name], kept[p.name], skipped[p.name],
                             duplicates[p.name]))
        if p.copyright_path is not None and kept[p.name]:
            text = p.copyright.text
            atomic_write(licence_dir / f"{p.name}.copyright", lambda tmp, t=text: tmp.write_text(t, encoding="utf-8"))
    _write_csv(out / "packages.csv", PACKAGE_COLUMNS, package_rows)
    result.clips = len(rows)
    result.skipped = Counter(s.reason.split(" (")[0].split(":")[0] for s in skips)
    result.labels = len({r["class"] for r in rows})
    result.all_labels = len({n for r in rows for n in r["labels"].split(";")})
    result.classes = len({i for r in rows for i in r["ontology_ids"].split(";")})
    result.per_package = dict(kept)
    result.per_top = Counter(r["top_category"] for r in rows)
    return result


def _remove_orphans(clips: Path, kept: set[str], out: Path) -> None:
    if not clips.is_dir():
        return
    for path in sorted(clips.rglob("*.flac")):
        if path.relative_to(out).as_posix() not in kept:
            path.unlink()
