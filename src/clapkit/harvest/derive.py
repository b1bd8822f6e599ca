"""Derived clips: real clips of the corpus heard through a channel or an acoustic environment (``harvest.effects``:
a large hall, heavy reverberation, a small room, an echo, a radio, static, distortion, mains hum, white or pink
noise), so the ontology's "Channel, environment and background" category is learnt from real sounds.

Each effect takes ``per_effect`` source clips, one per primary class in turn (classes and clips in a hash order
seeded by the effect), so many concepts get each effect once rather than one concept many times; a source clip
gets at most one effect. A derived clip keeps every label of its source after the effect's label (sources have at
most two labels, so the three-label limit holds and a split that holds out a class holds out its derived clips too),
the source's licence and package, the evidence ``derived: <effect> (<parameters>) of <clip_id>`` and a caption that
says both ("a dog barks, heard in a large hall"). Rendered once into ``work/derived`` (a JSONL journal), so re-runs
are cheap and give the same rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile

from clapkit.harvest.decode import pcm_sha1
from clapkit.harvest.effects import EFFECTS, SAMPLE_RATE, Effect
from clapkit.ontology import Ontology

CHANNEL = "Channel, environment and background"
MAX_SOURCE_SECONDS = 10.0
MIN_SOURCE_SECONDS = 0.5
MAX_SOURCE_LABELS = 2
RENDERED = "clapkit-synth-"  # rendered packages (text-to-speech, soundfont notes, noise) are not derived from


def _key(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def choose_sources(rows: list[dict], per_effect: int, effects=EFFECTS) -> list[tuple[Effect, dict]]:
    """``(effect, source row)`` pairs: per effect up to ``per_effect`` rows, round-robin over primary classes."""
    eligible = [r for r in rows if len(r["labels"].split(";")) <= MAX_SOURCE_LABELS
                and r["top_category"] != CHANNEL and not r["source_package"].startswith(RENDERED)
                and float(r["duration_s"]) >= MIN_SOURCE_SECONDS]
    used: set[str] = set()
    chosen: list[tuple[Effect, dict]] = []
    for effect in effects:
        by_class: dict[str, list[dict]] = defaultdict(list)
        for r in eligible:
            if r["top_category"] in effect.sources:
                by_class[r["class"]].append(r)
        queues = [sorted(v, key=lambda r: _key(effect.name, r["clip_id"]))
                  for _, v in sorted(by_class.items(), key=lambda kv: _key(effect.name, kv[0]))]
        taken, depth = 0, 0
        while taken < per_effect and any(len(q) > depth for q in queues):
            for queue in queues:
                if taken >= per_effect:
                    break
                if depth < len(queue) and queue[depth]["clip_id"] not in used:
                    used.add(queue[depth]["clip_id"])
                    chosen.append((effect, queue[depth]))
                    taken += 1
            depth += 1
    return chosen


def derived_rows(rows: list[dict], out: Path, work: Path, ontology: Ontology, per_effect: int) -> list[dict]:
    """Render (or read from the journal) the derived clips of ``rows`` (meta.csv rows as dicts, paths relative to
    ``out``) and return their rows; the FLAC files are written under ``work/derived/<package>/``."""
    if per_effect <= 0:
        return []
    state = work / "derived"
    state.mkdir(parents=True, exist_ok=True)
    journal_path = state / "derived.jsonl"
    done: dict[str, dict] = {}
    if journal_path.is_file():
        for line in journal_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if Path(record["file"]).is_file():
                done[record["clip_id"]] = record
    result = []
    with journal_path.open("a", encoding="utf-8") as journal:
        for effect, src in choose_sources(rows, per_effect):
            clip_id = _key(src["clip_id"], effect.name)[:12]
            record = done.get(clip_id)
            if record is None:
                record = _render(effect, src, clip_id, out, state)
                journal.write(json.dumps(record, ensure_ascii=False) + "\n")
                journal.flush()
            result.append(_row(effect, src, record, ontology))
    return result


def _render(effect: Effect, src: dict, clip_id: str, out: Path, state: Path) -> dict:
    x, rate = soundfile.read(out / src["path"], dtype="float32", always_2d=False)
    if rate != SAMPLE_RATE or x.ndim != 1:
        raise ValueError(f"{src['path']}: derived clips need the corpus' mono {SAMPLE_RATE} Hz FLAC")
    x = x[: int(MAX_SOURCE_SECONDS * SAMPLE_RATE)]
    y, params = effect.apply(x, random.Random(clip_id))
    y = np.clip(y, -1.0, 1.0).astype(np.float32)
    path = state / src["source_package"] / f"{clip_id}.flac"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    soundfile.write(tmp, y, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    os.replace(tmp, path)
    return {"clip_id": clip_id, "file": str(path), "sha1": pcm_sha1(y), "duration_s": round(len(y) / SAMPLE_RATE, 3),
            "params": params}


def _row(effect: Effect, src: dict, record: dict, ontology: Ontology) -> dict:
    labels = [effect.label] + [n for n in src["labels"].split(";") if n != effect.label]
    phrases = list(effect.phrases)
    random.Random(record["clip_id"]).shuffle(phrases)
    caption = f"{src['caption'].rstrip(' .')}, {phrases[0]}"
    # the source's rewrites with the other phrases (rewriting the effect's words would garble them: "small room")
    rewrites = [f"{text.rstrip(' .')}, {phrases[(i + 1) % len(phrases)]}"
                for i, text in enumerate(t for t in src["rewrites"].split(" | ") if t)]
    return {
        "clip_id": record["clip_id"], "path": f"clips/{src['source_package']}/{record['clip_id']}.flac",
        "source_package": src["source_package"], "source_path": f"{src['source_path']}#{effect.name}",
        "licence": src["licence"], "labels": ";".join(labels),
        "ontology_ids": ";".join(ontology.get(n).id for n in labels), "top_category": CHANNEL,
        "keywords": src["keywords"],
        "evidence": f"derived: {effect.name} ({record['params']}) of {src['clip_id']}; {src['evidence']}",
        "caption": caption, "duration_s": f"{record['duration_s']:.3f}", "sha1": record["sha1"],
        "rewrites": " | ".join(rewrites), "class": effect.label, "file": record["file"],
    }
