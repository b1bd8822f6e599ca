"""The harvest: packages -> candidates -> labels -> decoded clips (cached, resumable) -> de-duplicated corpus.

Re-runnable: extraction, decoding and downloads are cached under ``work`` (one JSONL line per decoded file, written
as it finishes, so a crash loses at most the files in flight); labels, captions and de-duplication are recomputed
from the cache each run, and every output file is written atomically, so the same inputs give the same meta.csv.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from clapkit.errors import ClapkitError
from clapkit.harvest.decode import MAX_SEGMENTS, MAX_SEGMENTS_FIELD, MIN_SECONDS, decode_task, stale
from clapkit.harvest.embed import Embedder
from clapkit.harvest.labels import MINILM_THRESHOLD, Labeler, Labelling
from clapkit.harvest.outputs import HarvestResult, write_outputs
from clapkit.harvest.packages import Package, download, extract, resolve_copyrights
from clapkit.harvest.rules import MAX_SECONDS_UNLESS_AMBIENT, NON_DIALOGUE, SPEECH_CAP, directory_drop
from clapkit.harvest.scan import Candidate, Skip, scan_package
from clapkit.harvest.words import path_dirs
from clapkit.ontology import Ontology, default_ontology

log = logging.getLogger(__name__)


@dataclass
class Planned:
    candidate: Candidate
    labelling: Labelling
    stem: str


def clip_stem(package: str, source_path: str) -> str:
    return hashlib.sha1(f"{package}\0{source_path}".encode()).hexdigest()[:12]


def find_debs(sources: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """.deb files given directly or inside given directories (sorted by file name)."""
    debs: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            debs += sorted(path.glob("*.deb"))
        elif path.is_file() and path.suffix == ".deb":
            debs.append(path)
        else:
            raise ClapkitError(f"{source}: not a .deb file or a directory of them")
    return sorted(set(debs), key=lambda p: p.name)


def harvest(sources: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
            download_names: Sequence[str] = (), work: str | os.PathLike[str] | None = None,
            embedder: Embedder | str | None = "minilm", workers: int = 2, progress: bool = True,
            ontology: Ontology | None = None, synth: bool = False,
            minilm_threshold: float = MINILM_THRESHOLD, derive: int = 0) -> HarvestResult:
    """Build the corpus in ``out`` (layout: docs/corpus.md) from .deb files/directories ``sources`` and packages
    ``download_names`` (fetched with ``apt-get download`` into ``work/debs``).

    ``synth``: also render the espeak-ng / FluidR3 / noise sets (``harvest.synth``). ``embedder``: ``"minilm"``
    (all-MiniLM-L6-v2 near misses), ``None`` (no near-miss rule) or any callable ``list[str] -> (n, d)`` array of
    unit rows; ``minilm_threshold``: the cosine a near miss needs. ``derive``: clips per channel/environment effect
    derived from the corpus' own clips (``harvest.derive``; 0: none). ``work`` (default ``out/.work``) holds the
    extracted packages and the decode cache; keep it to make re-runs fast.
    """
    out = Path(out)
    work = Path(work) if work is not None else out / ".work"
    debs = find_debs(sources)
    if download_names:
        debs = sorted(set(debs) | set(download(list(download_names), work / "debs")), key=lambda p: p.name)
    if synth:  # espeak-ng words and FluidR3 instrument notes, as two local packages (harvest/synth.py)
        from clapkit.harvest.synth import render_noise, render_synth

        debs = sorted(set(debs) | set(render_synth(work)) | {render_noise(work)}, key=lambda p: p.name)
    if not debs:
        raise ClapkitError("no packages to harvest: give .deb files, directories of them, or --download NAMES")
    ontology = ontology or default_ontology()
    packages = [extract(deb, work / "extract") for deb in _progress(debs, progress, "extracting", "pkg")]
    packages = _one_per_name(packages)
    resolve_copyrights(packages)
    if embedder == "minilm":
        from clapkit.harvest.embed import MiniLMEmbedder

        embedder = MiniLMEmbedder()
    labeler = Labeler(ontology, embedder if callable(embedder) else None, minilm_threshold)
    plan, skips, seen = _plan(packages, labeler)
    results = _decode(plan, work, workers, progress)
    return write_outputs(out, packages, plan, skips, seen, results, ontology, work=work, derive=derive)


def _one_per_name(packages: list[Package]) -> list[Package]:
    by_name: dict[str, Package] = {}
    for p in packages:  # the highest version of a package name wins (file names sort by version within a name)
        by_name[p.name] = p
    return [by_name[name] for name in sorted(by_name)]


def _plan(packages: list[Package], labeler: Labeler) -> tuple[list[Planned], list[Skip], Counter]:
    candidates: list[Candidate] = []
    skips: list[Skip] = []
    seen: Counter = Counter()
    for package in packages:
        found = list(scan_package(package.name, package.root))
        seen[package.name] = len(found)
        if package.copyright is None:
            skips += [Skip(package.name, c.source_path, "package has no copyright file") for c in found]
            continue
        if not package.main_archive:
            skips += [Skip(package.name, c.source_path, f"package is in {package.section} (not free)") for c in found]
            continue
        for item in found:
            (skips if isinstance(item, Skip) else candidates).append(item)
    labeler.prepare((c.package, c.source_path) for c in candidates)
    plan: list[Planned] = []
    speech: dict[str, list[Planned]] = {}
    for c in candidates:
        labelling = labeler.label(c.package, c.source_path)
        if not labelling.drop and labelling.speech is None:
            reason = directory_drop(path_dirs(c.source_path))
            if reason and not (reason.endswith("(dialogue)") and labelling.labels
                               and labelling.labels[0].name in NON_DIALOGUE):
                labelling.drop = reason
        if labelling.drop:
            skips.append(Skip(c.package, c.source_path, labelling.drop))
        elif not labelling.labels:
            skips.append(Skip(c.package, c.source_path, "no label: the path words map to no AudioSet class "
                                                        f"({' '.join(labelling.keywords) or 'no words'})"))
        else:
            item = Planned(c, labelling, clip_stem(c.package, c.source_path))
            if labelling.speech is not None:
                speech.setdefault(c.package, []).append(item)
            else:
                plan.append(item)
    for package, items in speech.items():
        items.sort(key=lambda p: hashlib.sha1(p.candidate.source_path.encode()).hexdigest())
        plan += items[:SPEECH_CAP]
        skips += [Skip(package, p.candidate.source_path, f"speech cap ({SPEECH_CAP} clips per package)")
                  for p in items[SPEECH_CAP:]]
    plan.sort(key=lambda p: (p.candidate.package, p.candidate.source_path))
    return plan, skips, seen


def _limits(item: Planned, ontology: Ontology) -> dict:
    """Music and human sounds: files over 60 s dropped, at most 3 segments; field recordings (the other
    categories): any length, up to ``MAX_SEGMENTS_FIELD`` segments."""
    if ontology.top_category(item.labelling.labels[0]).name in ("Music", "Human sounds"):
        return {"max_seconds": MAX_SECONDS_UNLESS_AMBIENT, "max_segments": MAX_SEGMENTS, "min_seconds": MIN_SECONDS}
    return {"max_seconds": 0.0, "max_segments": MAX_SEGMENTS_FIELD, "min_seconds": MIN_SECONDS}


def _decode(plan: list[Planned], work: Path, workers: int, progress: bool) -> dict[tuple[str, str], dict]:
    """Decode what the cache lacks; the results of every planned file by (package, source_path)."""
    state = work / "decoded"
    state.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[str, str], dict] = {}
    for journal in sorted(state.glob("*.jsonl")):
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash
                continue
            if all(Path(c["file"]).is_file() for c in record["clips"]):
                done[(record["package"], record["source_path"])] = record
    ontology = default_ontology()
    todo = []
    for item in plan:
        c = item.candidate
        task = {"package": c.package, "source_path": c.source_path, "file": c.file, "member": c.member,
                "out_dir": str(state / c.package), "clip_stem": item.stem, **_limits(item, ontology)}
        record = done.get((c.package, c.source_path))
        if record is None or stale(record, task):
            todo.append(task)
    if todo:
        journals: dict[str, object] = {}
        try:
            bar = _bar(len(todo), progress)
            context = get_context("spawn")
            with context.Pool(max(1, workers)) as pool:
                for record in pool.imap_unordered(decode_task, todo, chunksize=4):
                    handle = journals.get(record["package"])
                    if handle is None:
                        handle = journals[record["package"]] = open(state / f"{record['package']}.jsonl", "a",
                                                                   encoding="utf-8")
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    handle.flush()
                    done[(record["package"], record["source_path"])] = record
                    bar.update(1)
            bar.close()
        finally:
            for handle in journals.values():
                handle.close()
    return done


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="decoding", disable=not enabled, dynamic_ncols=True)


def _progress(items, enabled: bool, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)
