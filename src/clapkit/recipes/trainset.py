"""The training set of the default-model recipe: which clips (capped per class, spread over packages), which
background clips, which two-source mixtures, and their cached features and caption table (``training_data``).
Used by the recipe (``build``) and by the cross-source measurement (``crosssource``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clapkit.recipes import corpus as corpus_v2
from clapkit.recipes.headtrain import TrainData, caption_table

CLEAN_TRAIN_VIEW = False  # no extra clean 5 s view of training clips: it would triple the feature cost
MIXTURES_PER_CLIP = 0.15
TRAIN_MAX_PER_CLASS = 100  # training clips per class, spread over its packages (balanced sampling needs no more)
BACKGROUND_CLIPS = 64  # training clips of ambience classes mixed into augmented views as real background noise
BACKGROUND_CLASSES = frozenset({
    "Wind", "Rustling leaves", "Rain", "Rain on surface", "Stream", "Waterfall", "Ocean", "Waves, surf",
    "Thunderstorm", "Crowd", "Hubbub, speech noise, speech babble", "Traffic noise, roadway noise", "Hum",
    "Environmental noise", "Outside, urban or manmade", "Outside, rural or natural", "Inside, small room",
    "Inside, large room or hall", "Inside, public space", "Field recording", "Rustle", "Fire", "Insect", "Cricket"})


def cap_per_class(rows: list[dict[str, Any]], cap: int, seed: int) -> list[dict[str, Any]]:
    """At most ``cap`` clips of every class, taken in turn from its packages (each package's clips in a seeded
    order), so a class keeps its variety; the result in the input order."""
    import random

    by_class: dict[str, dict[str, list[int]]] = {}
    for i, row in enumerate(rows):
        by_class.setdefault(row["class"], {}).setdefault(row["source_package"], []).append(i)
    keep: set[int] = set()
    for name, packages in sorted(by_class.items()):
        queues = []
        for package, members in sorted(packages.items()):
            members = members[:]
            random.Random(f"{seed}/{name}/{package}").shuffle(members)
            queues.append(members)
        chosen: list[int] = []
        while len(chosen) < cap and any(queues):
            for queue in queues:
                if queue and len(chosen) < cap:
                    chosen.append(queue.pop(0))
        keep.update(chosen)
    return [row for i, row in enumerate(rows) if i in keep]


def mixture_pairs(classes: list[str], n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng([seed, 3])
    pairs = []
    while len(pairs) < n and len(set(classes)) > 1:
        i, j = (int(v) for v in rng.integers(0, len(classes), size=2))
        if classes[i] != classes[j]:
            pairs.append((i, j))
    return pairs


def background_rows(train: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Up to ``BACKGROUND_CLIPS`` training clips of ambience classes (``BACKGROUND_CLASSES``), spread over classes
    and packages: the real background noise of augmented views (only training clips, so no held-out class leaks)."""
    import random

    pool = [r for r in train if r["class"] in BACKGROUND_CLASSES]
    per_class = -(-BACKGROUND_CLIPS // max(1, len({r["class"] for r in pool})))  # ceil
    chosen = cap_per_class(pool, per_class, seed)
    return sorted(random.Random(f"{seed}/backgrounds").sample(chosen, min(len(chosen), BACKGROUND_CLIPS)),
                  key=lambda r: r["audio"])


def training_data(model, train: list[dict[str, Any]], feats_dir: Path, views: int, seed: int, quiet: bool,
                  noise: tuple[list[np.ndarray], str], extra_texts: list[str] = (), room: bool = False
                  ) -> tuple[TrainData, list[str], dict[str, str]]:
    """Cached features (``views`` per clip, mixtures) and MiniLM embeddings of ``train``'s captions and
    ``extra_texts``: the heads' training data, the text table's texts, and the skipped clips. ``noise``: loaded
    background clips (``features.load_backgrounds``; empty: coloured noise only) for half the noisy views; ``room``:
    some views reverberated (``augment.in_room``)."""
    from clapkit.recipes import augment, features

    cache = feats_dir / "cache"
    train_feats, skipped = features.clip_features(model, train, cache, views, seed, quiet, "training",
                                                  clean=CLEAN_TRAIN_VIEW, backgrounds=noise, room=room)
    pairs = mixture_pairs([r["class"] for r in train], int(MIXTURES_PER_CLIP * len(train)), seed)
    mix = features.mixture_features(model, train, pairs, cache, seed, quiet)
    clip_texts = [corpus_v2.clip_captions(r) for r in train]
    mix_texts = [[augment.mixture_caption(clip_texts[i][0], clip_texts[j][0]), corpus_v2.ZERO_SHOT_TEMPLATE.format(
        f"{corpus_v2.readable_label(train[i]['class'])} and {corpus_v2.readable_label(train[j]['class'])}")]
        for i, j in pairs]
    texts, ids = caption_table([*clip_texts, *mix_texts, list(extra_texts)])
    table = features.text_embeddings(model, texts, feats_dir / "texts", quiet)
    data = TrainData(train_feats, ids[: len(train)], [r["class"] for r in train],
                     [r["source_package"] for r in train], table, mix, ids[len(train) : len(train) + len(pairs)])
    return data, texts, skipped


def final_rows(rows: list[dict[str, Any]], skipped: dict[str, str], seed: int) -> list[dict[str, Any]]:
    """What the shipped model trains on once the split has measured it: EVERY readable corpus clip (held-out
    classes and held-out clips included), capped per class as the split's training set is."""
    return cap_per_class([r for r in rows if r["audio"] not in skipped], TRAIN_MAX_PER_CLASS, seed)
