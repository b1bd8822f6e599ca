"""The ESC-50-names diagnostic: which clips it counts, and when a prediction is right."""

from __future__ import annotations

import hashlib

import numpy as np

from clapkit.recipes import everyday
from clapkit.recipes.corpus import ZERO_SHOT_TEMPLATE


def _embed(texts):
    out = []
    for t in texts:
        rng = np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16))
        out.append(rng.standard_normal(32))
    return np.array(out)


def _audio_like(name: str) -> np.ndarray:
    return _embed([ZERO_SHOT_TEMPLATE.format(name)])[0]


def test_counts_only_covered_clips_and_accepts_any_covering_name():
    rows = [{"class": "Dog"}, {"class": "Chicken, rooster"}, {"class": "Chicken, rooster"}, {"class": "Piano"},
            {"class": "Knock"}]
    audio = np.stack([_audio_like("dog"), _audio_like("hen"), _audio_like("rooster"), _audio_like("dog"),
                      _audio_like("clock tick")])
    out = everyday.zero_shot(audio, rows, _embed)
    assert out["clips"] == 4  # the piano clip is no ESC-50 concept
    assert out["top1"] == 0.75  # dog right, both chickens right (hen and rooster cover it), the knock wrong
    assert out["per_name"]["door wood knock"] == 0.0 and out["per_name"]["dog"] == 1.0
    assert out["names"] == 3


def test_no_covered_clips_gives_nan_not_an_error():
    out = everyday.zero_shot(np.zeros((1, 32)), [{"class": "Piano"}], _embed)
    assert out["clips"] == 0 and np.isnan(out["top1"])


def test_every_covered_class_is_an_ontology_class():
    from clapkit.ontology import default_ontology

    names = {entry.name for entry in default_ontology()}
    assert len(everyday.NAMES) == 50
    missing = [c for classes in everyday.ESC50.values() for c in classes if c not in names]
    assert missing == []
