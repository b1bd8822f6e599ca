"""The default model's data (v2): corpus v2 (``meta.csv``, docs/corpus.md), the fixed split rule, the captions.

Corpus v2 rows: ``clip_id, path, source_package, source_path, licence, labels`` (AudioSet ontology names, ``;``,
primary first) ``, ontology_ids, top_category, keywords, evidence, caption, duration_s, sha1``; ``path`` is relative
to the folder of ``meta.csv``.

THE SPLIT RULE (written before any training; ``split_corpus``; the model card repeats it):
1. A clip's class is its primary label. Candidates for holding out: classes with ``HELDOUT_MIN_CLIPS`` (8) to
   ``HELDOUT_MAX_CLIPS`` (100) clips (holding out a class of hundreds, such as speech, would take a large part of the
   training data away) that are not an ontology ancestor of another label in the corpus (holding out "Animal"
   while training on "Dog" would be ill-posed) and are not a top-level category.
2. ``HELDOUT_COUNT`` (40) classes are drawn from the candidates, stratified by top-level category: each category gets
   ``round(40 * its share of the candidates)`` (largest remainder), at least one when it has a candidate; within a
   category ``random.Random(f"{HELDOUT_SEED}/{category}").sample`` over the sorted candidate names.
3. No clip carrying a held-out class among ANY of its labels is trained on. Of the clips whose primary label is held
   out, at most ``HELDOUT_EVAL_MAX_PER_CLASS`` (25) per class, drawn with ``random.Random(f"{HELDOUT_SEED}/{class}")``,
   form the held-out-class set (zero-shot among the held-out classes); the rest, and clips that carry a held-out
   class only as a secondary label, are not used at all.
4. Of every other class with >= 4 clips, ``HOLDOUT_FRACTION`` (10 %, at least one, at most
   ``HOLDOUT_MAX_PER_CLASS`` = 4) of the clips are held out, drawn with ``random.Random(f"{HELDOUT_SEED}/{class}")``;
   classes with fewer clips train on all of them. (The caps keep the evaluation set small enough to embed at 5 s.)
5. Near-duplicates follow their source: the segments of one file (``clip_id`` ``X-N``) and clips derived from a
   clip by an effect (``evidence`` "derived: ... of X") form one group with ``X``; a training clip whose group has a
   held-out clip is not used (``source_group``).
Exact duplicates (same ``sha1``) keep their first row only, so no held-out clip is also a training clip.
"""

from __future__ import annotations

import csv
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from clapkit.errors import ClapkitError

HELDOUT_SEED = 0
HELDOUT_COUNT = 40
HELDOUT_MIN_CLIPS = 8
HELDOUT_MAX_CLIPS = 100
HOLDOUT_FRACTION = 0.10
HOLDOUT_MAX_PER_CLASS = 4
HOLDOUT_MIN_CLASS_CLIPS = 4
HELDOUT_EVAL_MAX_PER_CLASS = 25
REQUIRED_COLUMNS = ("path", "source_package", "labels", "top_category", "caption")
ZERO_SHOT_TEMPLATE = "This is a sound of {}."
CORPUS_HELP = "build corpus v2 first (docs/corpus.md) and pass its folder (the one holding meta.csv)"


def readable_label(name: str) -> str:
    """An ontology class name as a prompt label: its first synonym ("Vehicle horn, car horn, honking" -> "vehicle
    horn"); a name the ontology does not know is lower-cased."""
    from clapkit.ontology import split_synonyms

    synonyms = split_synonyms(name)
    return synonyms[0] if synonyms else name.strip().lower()


def read_corpus(root: str | Path) -> list[dict[str, Any]]:
    """The rows of ``root/meta.csv`` with ``audio`` (absolute path), ``class`` (primary label), ``label_list``."""
    meta = Path(root) / "meta.csv"
    if not meta.is_file():
        raise ClapkitError(f"{meta}: no corpus here; {CORPUS_HELP}")
    rows, seen = [], set()
    with meta.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ClapkitError(f"{meta}: missing columns {missing}; is it a corpus v2 meta.csv? ({CORPUS_HELP})")
        for row in reader:
            labels = [x.strip() for x in (row.get("labels") or "").split(";") if x.strip()]
            if not labels or (row.get("sha1") and row["sha1"] in seen):
                continue
            seen.add(row.get("sha1") or row["path"])
            rows.append({**row, "audio": str((meta.parent / row["path"]).resolve()), "class": labels[0],
                         "label_list": labels, "top_category": row["top_category"].strip() or "unknown"})
    if not rows:
        raise ClapkitError(f"{meta}: lists no labelled clips; {CORPUS_HELP}")
    return rows


_DERIVED = re.compile(r"derived: .* of ([0-9A-Za-z]+(?:-\d+)?)")
_SEGMENT = re.compile(r"^(.+)-\d+$")


def source_group(row: dict[str, Any]) -> str:
    """The clip a row comes from: a derived clip's source, a segment's file (``X-N`` -> ``X``), else itself."""
    found = _DERIVED.search(row.get("evidence") or "")
    clip = found.group(1) if found else (row.get("clip_id") or row["audio"])
    segment = _SEGMENT.match(clip)
    return segment.group(1) if segment else clip


def _ancestor_names(names: set[str]) -> set[str]:
    from clapkit.ontology import default_ontology

    ontology, out = default_ontology(), set()
    for name in names:
        try:
            entry = ontology.get(name)
        except ClapkitError:
            continue
        out.update(a.name for a in ontology.ancestors(entry))
    return out


def _quotas(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Largest-remainder apportionment of ``total`` over categories by size (capped by size), then at least one for
    every category where that is possible, taken from the largest quota."""
    whole = sum(sizes.values())
    exact = {c: total * n / whole for c, n in sizes.items()}
    quota = {c: min(sizes[c], int(exact[c])) for c in sizes}
    for c in sorted(sizes, key=lambda c: (-(exact[c] - int(exact[c])), c)) * 2:
        if sum(quota.values()) >= total:
            break
        if quota[c] < sizes[c]:
            quota[c] += 1
    for c in sorted(sizes, key=lambda c: (-sizes[c], c)):
        if quota[c] == 0:
            donor = max(sorted(quota), key=lambda d: quota[d])
            if quota[donor] <= 1:
                break
            quota[donor] -= 1
            quota[c] = 1
    return quota


def heldout_classes(rows: list[dict[str, Any]], count: int = HELDOUT_COUNT,
                    min_clips: int = HELDOUT_MIN_CLIPS) -> list[str]:
    """The classes never trained on (rule steps 1-2 of the module docstring), sorted."""
    rows = sorted(rows, key=lambda r: r["audio"])
    counts: dict[str, int] = defaultdict(int)
    category: dict[str, str] = {}
    for row in rows:
        counts[row["class"]] += 1
        category.setdefault(row["class"], row["top_category"])
    all_labels = {label for row in rows for label in row["label_list"]}
    ancestors = _ancestor_names(all_labels)
    tops = {row["top_category"] for row in rows}
    candidates = sorted(c for c, n in counts.items()
                        if min_clips <= n <= HELDOUT_MAX_CLIPS and c not in ancestors and c not in tops)
    if len(candidates) < count:
        raise ClapkitError(f"only {len(candidates)} classes have {min_clips}-{HELDOUT_MAX_CLIPS} clips (and are not an "
                           f"ancestor of another label); {count} are held out: the corpus is too small")
    by_category: dict[str, list[str]] = defaultdict(list)
    for c in candidates:
        by_category[category[c]].append(c)
    quota = _quotas({k: len(v) for k, v in by_category.items()}, count)
    chosen = []
    for cat in sorted(by_category):
        chosen += random.Random(f"{HELDOUT_SEED}/{cat}").sample(by_category[cat], quota[cat])
    return sorted(chosen)


def split_corpus(rows: list[dict[str, Any]], count: int = HELDOUT_COUNT,
                 min_clips: int = HELDOUT_MIN_CLIPS) -> dict[str, Any]:
    """``{"heldout": [...], "train": rows, "heldout_classes": rows, "heldout_clips": rows}`` (rule steps 3-4)."""
    rows = sorted(rows, key=lambda r: r["audio"])  # the input order does not matter
    unseen = set(heldout_classes(rows, count, min_clips))
    split: dict[str, Any] = {"heldout": sorted(unseen), "train": [], "heldout_classes": [], "heldout_clips": [],
                             "unused": []}
    by_class: dict[str, list[dict[str, Any]]] = defaultdict(list)
    unseen_members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["class"] in unseen:
            unseen_members[row["class"]].append(row)
        elif unseen & set(row["label_list"]):
            split["unused"].append(row)
        else:
            by_class[row["class"]].append(row)
    for name in sorted(unseen_members):
        members = unseen_members[name]
        kept = set(random.Random(f"{HELDOUT_SEED}/{name}").sample(range(len(members)),
                                                                  min(len(members), HELDOUT_EVAL_MAX_PER_CLASS)))
        for i, row in enumerate(members):
            split["heldout_classes" if i in kept else "unused"].append(row)
    for name in sorted(by_class):
        members = by_class[name]
        if len(members) < HOLDOUT_MIN_CLASS_CLIPS:
            split["train"] += members
            continue
        n = min(HOLDOUT_MAX_PER_CLASS, max(1, round(HOLDOUT_FRACTION * len(members))))
        held = set(random.Random(f"{HELDOUT_SEED}/{name}").sample(range(len(members)), n))
        for i, row in enumerate(members):
            split["heldout_clips" if i in held else "train"].append(row)
    held_groups = {source_group(r) for r in split["heldout_classes"] + split["heldout_clips"]}
    leaking = [r for r in split["train"] if source_group(r) in held_groups]
    split["train"] = [r for r in split["train"] if source_group(r) not in held_groups]
    split["unused"] += leaking
    key = lambda r: r["audio"]  # noqa: E731
    for name in ("train", "heldout_classes", "heldout_clips", "unused"):
        split[name].sort(key=key)
    return split


def clip_captions(row: dict[str, Any], descriptions: bool = True, rewrites: bool = False) -> list[str]:
    """The texts a training clip is paired with: its corpus caption, the zero-shot prompt of its primary label (and of
    each of its synonyms), "the sound of X" for every other label, (``rewrites``) the corpus' rewrites of the
    caption, and (``descriptions``) "X: <ontology description>" of the primary label."""
    from clapkit.ontology import default_ontology, split_synonyms

    label = readable_label(row["class"])
    texts = [row["caption"].strip(), ZERO_SHOT_TEMPLATE.format(label)]
    texts += [ZERO_SHOT_TEMPLATE.format(s) for s in split_synonyms(row["class"])[1:]]
    texts += [f"the sound of {readable_label(x)}" for x in row["label_list"][1:]]
    if rewrites:
        texts += [t.strip() for t in (row.get("rewrites") or "").split(" | ") if t.strip()]
    if descriptions:
        try:
            description = default_ontology().get(row["class"]).description.strip()
        except ClapkitError:
            description = ""
        if description:
            texts.append(f"{label}: {description.split('. ')[0].rstrip('.')}.")
    return list(dict.fromkeys(t for t in texts if t))


def split_summary(corpus: str | Path, split: dict[str, Any]) -> dict[str, Any]:
    def per_category(rows):
        out: dict[str, int] = defaultdict(int)
        for row in rows:
            out[row["top_category"]] += 1
        return dict(sorted(out.items()))

    category = {r["class"]: r["top_category"] for r in split["heldout_classes"]}
    return {
        "corpus": str(Path(corpus).resolve()),
        "rule": {"heldout_count": HELDOUT_COUNT, "heldout_min_clips": HELDOUT_MIN_CLIPS,
                 "heldout_max_clips": HELDOUT_MAX_CLIPS, "seed": HELDOUT_SEED,
                 "holdout_fraction": HOLDOUT_FRACTION, "holdout_max_per_class": HOLDOUT_MAX_PER_CLASS,
                 "heldout_eval_max_per_class": HELDOUT_EVAL_MAX_PER_CLASS},
        "heldout_classes": {c: category.get(c, "") for c in split["heldout"]},
        "clips": {name: len(split[name]) for name in ("train", "heldout_classes", "heldout_clips", "unused")},
        "clips_per_category": {name: per_category(split[name]) for name in ("train", "heldout_classes",
                                                                              "heldout_clips")},
        "train_classes": len({r["class"] for r in split["train"]}),
        "train_packages": len({r["source_package"] for r in split["train"]}),
    }


def licence_rows(split: dict[str, Any]) -> list[dict[str, Any]]:
    """Per source package: clips trained on, clips held out, and the licences of its clips (corpus ``licence``)."""
    table: dict[str, dict[str, Any]] = {}
    for part, column in (("train", "train_clips"), ("heldout_classes", "heldout_clips"),
                         ("heldout_clips", "heldout_clips")):
        for row in split[part]:
            entry = table.setdefault(row["source_package"], {"package": row["source_package"], "train_clips": 0,
                                                             "heldout_clips": 0, "licences": set()})
            entry[column] += 1
            entry["licences"].add((row.get("licence") or "unknown").strip())
    return [{**e, "licences": "; ".join(sorted(e["licences"]))} for _, e in sorted(table.items())]


def write_licences(split: dict[str, Any], path: str | Path, corpus: str | Path | None = None) -> Path:
    """``licence_rows`` as CSV, with each package's version from the corpus' ``packages.csv`` when it has one."""
    versions: dict[str, str] = {}
    packages = Path(corpus) / "packages.csv" if corpus is not None else None
    if packages is not None and packages.is_file():
        with packages.open(newline="") as handle:
            versions = {r["package"]: r.get("version", "") for r in csv.DictReader(handle)}
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["package", "version", "train_clips", "heldout_clips", "licences"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "version": versions.get(r["package"], "")} for r in licence_rows(split))
    return path
