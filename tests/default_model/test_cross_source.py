"""The cross-source measurement on the made-up corpus: folds by package, heads trained without the fold's
packages, only real recordings of ESC-50 concepts named, deterministic."""

from __future__ import annotations

import pytest

from clapkit.recipes import crosssource
from clapkit.recipes.build import SHIPPED, run_recipe
from clapkit.recipes.headtrain import variant


def test_package_folds_are_deterministic_and_spread():
    folds = crosssource.package_folds({f"pkg{i}" for i in range(12)}, 5)
    assert folds == crosssource.package_folds({f"pkg{i}" for i in range(12)}, 5)
    assert sorted(list(folds.values()).count(k) for k in range(5)) == [2, 2, 2, 3, 3]


def test_everyday_rows_leave_out_derived_rendered_and_other_concepts():
    rows = [{"class": "Bark", "evidence": "name", "source_package": "p", "audio": "a"},
            {"class": "Bark", "evidence": "derived: hall of x", "source_package": "p", "audio": "b"},
            {"class": "Bark", "evidence": "name", "source_package": "clapkit-synth-noise", "audio": "c"},
            {"class": "Piano", "evidence": "name", "source_package": "p", "audio": "d"},
            {"class": "Rain", "evidence": "name", "source_package": "q", "audio": "e"}]
    assert [r["audio"] for r in crosssource.everyday_rows(rows, {"e": "unreadable"})] == ["a"]


@pytest.fixture(scope="module")
def measured(fake_corpus, tmp_path_factory):
    out = []
    for name in ("a", "b"):
        options = variant(SHIPPED, steps=20, batch_size=32, warmup=5)
        out.append(run_recipe(fake_corpus, tmp_path_factory.mktemp(name), options=options, views=1,
                              heldout_count=2, quiet=True, cross_source=True))
    return out


def test_cross_source_numbers(measured):
    first, second = measured
    c = first["cross_source_everyday"]
    assert c["folds"] == 2 and c["trained_folds"] == 2  # two packages: each fold trains on the other one
    # the made-up corpus' 37 clips less piano (3) and doorbell (4): no ESC-50 concept
    assert c["clips"] == 30 and c["names"] == 6
    assert 0.0 <= c["top1"] <= 1.0 and 0.0 <= c["balanced_top1"] <= 1.0
    assert set(c["per_name"]) <= {"dog", "cat", "rain", "thunderstorm", "coughing", "wind"}
    assert sum(n for n, _ in c["per_name"].values()) == c["clips"]
    assert set(c["per_package"]) == {"fake-pkg0", "fake-pkg1"}
    assert sum(n for n, _ in c["per_package"].values()) == c["clips"]
    # each fold trains on exactly the other package's clips (fake-pkg0: 19 of the 37, fake-pkg1: 18)
    assert sorted(c["train_clips_per_fold"].values()) == [18, 19]
    assert second["cross_source_everyday"] == c
