"""Evaluation v2 of the default model, on the fixed split of ``corpus.split_corpus`` (clips the training never saw).

From L2-normalised audio embeddings of the held-out clips and a text-embedding function (so the shipped model, v1,
and head variants on cached features are measured by the same code):
(a) ``zero_shot_heldout``: N-way zero-shot among the held-out classes (prompt "This is a sound of {label}."), on the
    clips of those classes;
(b) ``zero_shot_all``: zero-shot among ALL classes of the corpus, on every held-out clip (unseen and seen classes);
(c) ``retrieval``: text-to-audio over every held-out clip; each distinct caption is a query, every clip with that
    caption is relevant; R@1, R@10;
(d) ``zero_shot_everyday``: zero-shot among ESC-50's 50 class names on the held-out clips of those concepts
    (``recipes.everyday``; a diagnostic of naming everyday sounds with that benchmark's kind of label), and
    ``zero_shot_everyday_seen_clips`` on the held-out clips of trained classes only (what a shipped model, trained
    on every class, meets on recordings of concepts it knows).
Each overall and per top-level category (of the clip, or of the query's clips). Plain numpy in float64 with stable
sorting: deterministic and independent of batch sizes. ``centre="labels"`` measures a transductive hubness
correction (subtract the mean of the class-prompt embeddings); a model's own correction lives in its text head.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clapkit.recipes import everyday
from clapkit.recipes.corpus import ZERO_SHOT_TEMPLATE, readable_label

TextFn = Callable[[Sequence[str]], np.ndarray]


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _ranks(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Best 0-based rank of a relevant column per row (ties: lower index first, as a stable sort orders them)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hit = np.take_along_axis(relevant, order, axis=1)
    return np.argmax(hit, axis=1)


def _per_category(values: np.ndarray, categories: Sequence[str]) -> dict[str, float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for v, c in zip(values, categories):
        groups[c].append(float(v))
    return {c: float(np.mean(v)) for c, v in sorted(groups.items())}


def _class_embeddings(classes: Sequence[str], embed_text: TextFn, centre: str) -> np.ndarray:
    text = _normalise(embed_text([ZERO_SHOT_TEMPLATE.format(c) for c in classes]))
    if centre == "labels":
        text = _normalise(text - text.mean(axis=0))
    return text


def zero_shot(audio: np.ndarray, rows: Sequence[dict[str, Any]], classes: Sequence[str], embed_text: TextFn,
              centre: str = "none") -> dict[str, Any]:
    targets = np.array([classes.index(readable_label(r["class"])) for r in rows])
    scores = _normalise(audio) @ _class_embeddings(classes, embed_text, centre).T
    ranks = _ranks(scores, targets[:, None] == np.arange(len(classes))[None, :])
    hit = ranks == 0
    per_class = _per_category(hit, [classes[t] for t in targets])
    predicted = np.argmax(scores, axis=1)
    share = np.bincount(predicted, minlength=len(classes)).max() / max(len(rows), 1)
    return {"classes": len(classes), "clips": len(rows), "chance": 1 / len(classes), "top1": float(hit.mean()),
            "top5": float((ranks < 5).mean()), "balanced_top1": float(np.mean(list(per_class.values()))),
            "largest_prediction_share": float(share), "classes_at_zero": sum(v == 0 for v in per_class.values()),
            "per_category": _per_category(hit, [r["top_category"] for r in rows]), "per_class": per_class}


def retrieval(audio: np.ndarray, rows: Sequence[dict[str, Any]], embed_text: TextFn) -> dict[str, Any]:
    captions = sorted({r["caption"].strip() for r in rows})
    relevant = np.array([[r["caption"].strip() == c for r in rows] for c in captions])
    category = [next(r["top_category"] for r in rows if r["caption"].strip() == c) for c in captions]
    ranks = _ranks(_normalise(embed_text(captions)) @ _normalise(audio).T, relevant)
    return {"clips": len(rows), "queries": len(captions), "r1": float((ranks < 1).mean()),
            "r10": float((ranks < 10).mean()), "chance_r10": float(np.mean(np.minimum(1.0, 10 * relevant.sum(1)
                                                                                         / len(rows)))),
            "per_category_r1": _per_category(ranks < 1, category),
            "per_category_r10": _per_category(ranks < 10, category)}


def evaluate(audio_unseen: np.ndarray, audio_seen: np.ndarray, split: dict[str, Any], embed_text: TextFn,
             all_classes: Sequence[str], centre: str = "none") -> dict[str, Any]:
    """All measurements. ``audio_unseen``/``audio_seen``: embeddings of ``split["heldout_classes"]`` and
    ``split["heldout_clips"]`` in their order; ``all_classes``: readable labels of every class of the corpus."""
    unseen_rows, seen_rows = split["heldout_classes"], split["heldout_clips"]
    heldout = sorted({readable_label(c) for c in split["heldout"]})
    both = np.concatenate([audio_unseen, audio_seen])
    numbers = {"zero_shot_heldout": zero_shot(audio_unseen, unseen_rows, heldout, embed_text, centre),
               "zero_shot_all": zero_shot(both, unseen_rows + seen_rows, list(all_classes), embed_text, centre),
               "zero_shot_all_seen_clips": zero_shot(audio_seen, seen_rows, list(all_classes), embed_text, centre),
               "retrieval": retrieval(both, unseen_rows + seen_rows, embed_text),
               "retrieval_unseen": retrieval(audio_unseen, unseen_rows, embed_text),
               "zero_shot_everyday": everyday.zero_shot(both, unseen_rows + seen_rows, embed_text),
               "zero_shot_everyday_seen_clips": everyday.zero_shot(audio_seen, seen_rows, embed_text)}
    for key in ("zero_shot_all", "zero_shot_all_seen_clips"):
        numbers[key].pop("per_class")
    return numbers


def all_class_labels(rows: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({readable_label(r["class"]) for r in rows})


def model_text_fn(model) -> TextFn:
    return lambda texts: model.embed_text(list(texts))


def evaluate_model(model, split: dict[str, Any], all_classes: Sequence[str], batch_size: int = 8) -> dict[str, Any]:
    """The measurements of a loaded clapkit model (audio read and embedded as at inference: the first clip)."""
    unseen = model.embed_audio([r["audio"] for r in split["heldout_classes"]], batch_size=batch_size)
    seen = model.embed_audio([r["audio"] for r in split["heldout_clips"]], batch_size=batch_size)
    return evaluate(unseen, seen, split, model_text_fn(model), all_classes)


def write_numbers(numbers: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(numbers, indent=2, default=float) + "\n")
    return path


def summary_lines(numbers: dict[str, Any]) -> list[str]:
    z, a, r, ru = (numbers[k] for k in ("zero_shot_heldout", "zero_shot_all", "retrieval", "retrieval_unseen"))
    return [
        f"zero-shot among {z['classes']} held-out classes ({z['clips']} clips, chance {z['chance']:.3f}): "
        f"top-1 {z['top1']:.3f}, balanced {z['balanced_top1']:.3f}",
        f"zero-shot among all {a['classes']} classes on {a['clips']} held-out clips: top-1 {a['top1']:.3f}",
        f"text-to-audio over {r['clips']} held-out clips ({r['queries']} queries): R@1 {r['r1']:.3f} "
        f"R@10 {r['r10']:.3f}; unseen classes only: R@1 {ru['r1']:.3f} R@10 {ru['r10']:.3f}",
    ] + ([f"zero-shot among ESC-50's 50 names on {e['clips']} held-out clips of {e['names']} of those concepts: "
          f"top-1 {e['top1']:.3f}"] if (e := numbers.get("zero_shot_everyday", {})).get("clips") else [])
