"""Writing manifests: the one writer (``read_manifest`` in ``train/data.py`` is the one reader)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path

from clapkit.files import atomic_open

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
