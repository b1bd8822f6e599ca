"""Cross-source naming of everyday sounds: how the shipped recipe does on recordings of concepts it knows, made by
someone else (the hidden real-recording sets' situation, which the class split cannot show: its held-out clips of a
trained class come from the same packages as the class's training clips).

The corpus' packages are dealt into ``FOLDS`` folds (in the order of their names' SHA-1). For each fold the heads
are trained exactly as the shipped model is (every readable clip capped per class, the same options, backgrounds
and mixtures) on the clips of the OTHER folds' packages (derived clips follow their source's package), and name the
fold's real recordings (not derived, not rendered) of ESC-50's concepts among ESC-50's 50 names
(``recipes.everyday``). Pooled over folds: top-1, balanced top-1 (mean over names), the largest share of
predictions. The clean 5 s features are cached like every other view, so a re-run costs the head training only.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from clapkit.recipes import everyday, features
from clapkit.recipes.headtrain import train_heads
from clapkit.recipes.trainset import final_rows, training_data

log = logging.getLogger(__name__)

FOLDS = 5


def package_folds(packages: set[str], folds: int = FOLDS) -> dict[str, int]:
    order = sorted(packages, key=lambda p: hashlib.sha1(p.encode()).hexdigest())
    return {p: i % folds for i, p in enumerate(order)}


def everyday_rows(rows: list[dict[str, Any]], skipped: dict[str, str]) -> list[dict[str, Any]]:
    """Real recordings of ESC-50 concepts: not derived by an effect, not rendered, readable."""
    return [r for r in rows if r["class"] in everyday.COVERED and not r["evidence"].startswith("derived")
            and not r["source_package"].startswith("clapkit-synth") and r["audio"] not in skipped]


def measure(prepared: dict[str, Any], model, work: Path, options, views: int, quiet: bool = True,
            room: bool = False, folds: int = FOLDS) -> dict[str, Any]:
    rows, skipped = prepared["rows"], prepared["skipped"]
    fold_of = package_folds({r["source_package"] for r in rows}, folds)
    test = everyday_rows(rows, skipped)
    feats, bad = features.clip_features(model, test, work / "features" / "cache", 1, options.seed, quiet,
                                        "cross-source test clips")
    keep = [i for i, r in enumerate(test) if r["audio"] not in bad]
    test, feats = [test[i] for i in keep], feats[keep, 0]
    scores = np.zeros((len(test), len(everyday.NAMES)))
    trained_on = {}
    for fold in range(folds):
        in_fold = [i for i, r in enumerate(test) if fold_of[r["source_package"]] == fold]
        train = final_rows([r for r in rows if fold_of[r["source_package"]] != fold], skipped, options.seed)
        if not in_fold or not train:
            continue
        data, texts, _ = training_data(model, train, work / "features", views, options.seed, quiet,
                                       prepared["noise"], everyday.prompts(), room=room)
        heads, _ = train_heads(data, options)
        lookup = {t: j for j, t in enumerate(texts)}
        scores[in_fold] = everyday.cosine_scores(heads.audio_numpy(feats[in_fold]), heads.text_numpy(
            data.text[[lookup[p] for p in everyday.prompts()]]))
        trained_on[fold] = len(train)
    scored = [i for i, r in enumerate(test) if fold_of[r["source_package"]] in trained_on]
    if not scored:
        return {"folds": folds, "clips": 0, "top1": float("nan")}
    counted = everyday.tally(scores[scored], [test[i] for i in scored])
    per_package: dict[str, list[bool]] = defaultdict(list)
    for hit, i in zip(counted.pop("hits"), scored):
        per_package[test[i]["source_package"]].append(bool(hit))
    per_name = counted.pop("per_name")
    result = {"folds": folds, "trained_folds": len(trained_on), "clips": len(scored), "names": len(per_name),
              "packages": len(per_package), **counted, "train_clips_per_fold": trained_on,
              "per_name": {k: [len(v), float(np.mean(v))] for k, v in per_name.items()},
              "per_package": {k: [len(v), float(np.mean(v))] for k, v in sorted(per_package.items())}}
    log.info("cross-source everyday naming (%d clips of %d concepts, %d packages): top-1 %.3f, balanced %.3f",
             result["clips"], result["names"], result["packages"], result["top1"], result["balanced_top1"])
    return result
