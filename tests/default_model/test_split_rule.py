"""The v2 split rule (``clapkit.recipes.corpus``): 40 whole classes held out, stratified over the top-level
categories, never trained on under any label; held-out clips of the other classes; deterministic."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from clapkit.errors import ClapkitError
from clapkit.ontology import default_ontology
from clapkit.recipes import corpus


def _rows() -> list[dict]:
    """~90 leaf classes of the ontology over the top-level categories, 3-14 clips each, some with second labels;
    plus "Dog" (an ancestor of "Bark") with many clips."""
    ontology = default_ontology()
    leaves = [e for e in ontology if not e.child_ids and not e.abstract and not e.blacklisted]
    picked, per_top = [], Counter()
    for entry in sorted(leaves, key=lambda e: e.name):
        top = ontology.ancestors(entry)[-1].name if ontology.ancestors(entry) else entry.name
        if per_top[top] < 15:
            per_top[top] += 1
            picked.append((entry.name, top))
    picked += [("Dog", "Animal"), ("Speech", "Human sounds")]
    rng = random.Random(1)
    rows = []
    for k, (name, top) in enumerate(picked):
        for i in range(20 if name == "Dog" else 120 if name == "Speech" else 30 if k % 7 == 0 else 3 + k % 12):
            second = picked[(k + 5) % len(picked)][0] if i % 4 == 0 else None
            rows.append({"audio": f"/c/{k}_{i}.flac", "class": name, "label_list": [name] + ([second] if second
                         else []), "top_category": top, "source_package": f"p{rng.randrange(3)}",
                         "caption": f"{name} {i}"})
    return rows


def test_forty_classes_held_out_across_categories():
    rows = _rows()
    split = corpus.split_corpus(rows)
    held = set(split["heldout"])
    assert len(held) == corpus.HELDOUT_COUNT == 40
    category = {r["class"]: r["top_category"] for r in rows}
    counts = Counter(r["class"] for r in rows)
    assert all(counts[c] >= corpus.HELDOUT_MIN_CLIPS for c in held)
    assert "Dog" not in held  # an ancestor of another label is never held out
    assert "Speech" not in held  # nor a class of more than 100 clips
    tops = Counter(category[c] for c in held)
    candidates = Counter(category[c] for c, n in counts.items() if 8 <= n <= 100 and c != "Dog")
    assert set(tops) == set(candidates)  # every category with candidates is represented...
    for top, n in tops.items():  # ...in proportion to its candidates (largest remainder)
        assert abs(n - 40 * candidates[top] / sum(candidates.values())) < 1.01
    # no training clip carries a held-out class, under any of its labels; clips of held-out classes are all kept
    assert not any(held & set(r["label_list"]) for r in split["train"])
    assert {r["class"] for r in split["heldout_classes"]} == held
    for name in held:  # at most 25 evaluation clips per held-out class, all of them when it has fewer
        assert sum(r["class"] == name for r in split["heldout_classes"]) == min(counts[name], 25)
    assert not held & {r["class"] for r in split["heldout_clips"]}
    assert all(held & set(r["label_list"]) for r in split["unused"])
    parts = ("train", "heldout_classes", "heldout_clips", "unused")
    assert sorted(r["audio"] for p in parts for r in split[p]) == sorted(r["audio"] for r in rows)
    for name, n in counts.items():
        if name in held:
            continue
        trained = sum(r["class"] == name for r in split["train"])
        if n >= corpus.HOLDOUT_MIN_CLASS_CLIPS and not any(held & set(r["label_list"]) for r in rows
                                                          if r["class"] == name):
            assert n - trained == min(4, max(1, round(corpus.HOLDOUT_FRACTION * n)))


def test_split_is_deterministic_and_order_free():
    rows = _rows()
    first = corpus.split_corpus(rows)
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    again = corpus.split_corpus(shuffled)
    for key in ("heldout", "train", "heldout_classes", "heldout_clips", "unused"):
        assert first[key] == again[key]


def test_too_small_corpus_is_refused():
    with pytest.raises(ClapkitError, match="too small"):
        corpus.split_corpus(_rows()[:60])


def test_reading_corpus_v2(fake_corpus, tmp_path):
    rows = corpus.read_corpus(fake_corpus)
    assert rows[0]["audio"].startswith(str(fake_corpus)) and rows[0]["class"] == "Bark"
    assert any(r["label_list"] == ["Bark", "Wind"] for r in rows)
    with pytest.raises(ClapkitError, match="meta.csv"):
        corpus.read_corpus(tmp_path)
    (tmp_path / "meta.csv").write_text("path,labels\nx.wav,Bark\n")
    with pytest.raises(ClapkitError, match="missing columns"):
        corpus.read_corpus(tmp_path)


def test_captions_match_the_zero_shot_prompt():
    row = {"class": "Vehicle horn, car horn, honking", "label_list": ["Vehicle horn, car horn, honking", "Rain"],
           "caption": "A car honks twice."}
    texts = corpus.clip_captions(row)
    assert texts[:5] == ["A car honks twice.", "This is a sound of vehicle horn.", "This is a sound of car horn.",
                         "This is a sound of honking.", "the sound of rain"]
    assert texts[5].startswith("vehicle horn: ")  # the ontology's description
    assert corpus.clip_captions({**row, "rewrites": "A horn. | Honk!"}, rewrites=True)[5:7] == ["A horn.", "Honk!"]


def test_licence_table_counts_every_clip(fake_corpus, tmp_path):
    rows = corpus.read_corpus(fake_corpus)
    split = corpus.split_corpus(rows, count=2)
    path = corpus.write_licences(split, tmp_path / "licences.csv", fake_corpus)
    table = corpus.licence_rows(split)
    assert [r["package"] for r in table] == ["fake-pkg0", "fake-pkg1"]
    assert sum(r["train_clips"] + r["heldout_clips"] for r in table) == len(rows)
    assert all(r["licences"] == "CC0-1.0" for r in table)
    assert path.read_text().splitlines()[0] == "package,version,train_clips,heldout_clips,licences"


def test_segments_and_derived_copies_of_a_held_out_clip_are_not_trained_on():
    rows = _rows()
    for r in rows:
        r["clip_id"] = r["audio"].rsplit("/", 1)[1].split(".")[0].replace("_", "x")
    extra = []
    for k, r in enumerate(rows[::3]):  # segments of a third of the files, and a derived copy of each
        extra += [{**r, "audio": f"/c/seg{k}_{i}.flac", "clip_id": f"{r['clip_id']}-{i}"} for i in (1, 2)]
        extra.append({**r, "audio": f"/c/der{k}.flac", "clip_id": f"d{k}", "class": "Reverberation",
                      "top_category": "Channel, environment and background",
                      "label_list": ["Reverberation", r["class"]], "evidence": f"derived: hall of {r['clip_id']}-2"})
    split = corpus.split_corpus(rows + extra)
    held = {corpus.source_group(r) for r in split["heldout_clips"] + split["heldout_classes"]}
    assert held and not any(corpus.source_group(r) in held for r in split["train"])
    groups = {corpus.source_group(r) for r in extra}
    assert groups & held and any(corpus.source_group(r) in groups for r in split["train"])  # others still train
    derived = extra[2]
    assert corpus.source_group(derived) == corpus.source_group(extra[0]) == rows[0]["clip_id"]
    parts = ("train", "heldout_classes", "heldout_clips", "unused")
    assert sorted(r["audio"] for p in parts for r in split[p]) == sorted(r["audio"] for r in rows + extra)
