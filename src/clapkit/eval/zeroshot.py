"""Zero-shot classification: audio embeddings against one embedding per class (a prompt ensemble).

Single-label data (ESC-50, UrbanSound8K, GTZAN, ...): softmax over ``logit_scale * cosine``; top-1 / top-5
accuracy, per-class accuracy, the confusion matrix, and LAION's class-rank numbers (mean/median rank, mAP@10).
Multi-label data (FSD50K): per-class sigmoid of the same logits; mAP over classes (LAION's ``get_map``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clapkit.eval import metrics as M
from clapkit.eval.cache import EmbeddingCache, dataset_audio_embeddings, embed_texts, model_fingerprint
from clapkit.eval.datasets import DatasetError, EvalDataset
from clapkit.eval.prompts import class_embeddings, clean_label, format_prompts, resolve_templates
from clapkit.inference import probabilities_from_logits


@dataclass
class ZeroShotResult:
    """Numbers of one zero-shot run. ``scores``: probabilities (N, C); ``per_class``: accuracy (single-label) or
    AP (multi-label) per class name; ``confusion``: (C, C) counts, rows true, columns predicted (single-label)."""

    metrics: dict[str, float]
    per_class: dict[str, float]
    scores: np.ndarray
    confusion: np.ndarray | None = None
    prompts: list[list[str]] = field(default_factory=list)


def zero_shot_probabilities(
    audio_embeddings: np.ndarray, class_embeddings: np.ndarray, logit_scale: float, multi_label: bool = False
) -> np.ndarray:
    """(N, C) probabilities: softmax over classes, or per-class sigmoid when ``multi_label``."""
    logits = logit_scale * np.asarray(audio_embeddings, np.float64) @ np.asarray(class_embeddings, np.float64).T
    return probabilities_from_logits(logits, multi_label)


def score_zero_shot(
    scores: np.ndarray, labels: Sequence[Sequence[int]], classes: Sequence[str], multi_label: bool = False
) -> ZeroShotResult:
    """Metrics of class scores (N, C) against the clips' class indices."""
    scores = np.asarray(scores)
    if multi_label:
        targets = M.multi_hot(labels, len(classes))
        ap = M.per_class_average_precision(scores, targets)
        top = M.predictions(scores)
        metrics = {"mAP": M.mean_average_precision(scores, targets),
                   "top1_hit": float(np.mean(targets[np.arange(len(top)), top] == 1)),
                   "classes_with_positives": int(np.isfinite(ap).sum()), "num_clips": len(scores)}
        return ZeroShotResult(metrics, dict(zip(classes, ap.tolist())), scores)
    targets = np.array([l[0] for l in labels], dtype=np.int64)
    confusion = M.confusion_matrix(targets, M.predictions(scores), len(classes))
    per_class = M.per_class_accuracy(confusion)
    ranks = M.rank_of_targets(scores, targets)
    metrics = {"top1_accuracy": M.top_k_accuracy(scores, targets, 1),
               "top5_accuracy": M.top_k_accuracy(scores, targets, 5),
               "balanced_accuracy": float(np.nanmean(per_class))}
    laion = M.rank_statistics(ranks)
    metrics.update({"mean_rank": laion["mean_rank"], "median_rank": laion["median_rank"], "mAP@10": laion["mAP@10"],
                    "num_clips": len(scores)})
    return ZeroShotResult(metrics, dict(zip(classes, per_class.tolist())), scores, confusion)


def zero_shot_settings(dataset: EvalDataset, templates: str | Sequence[str] | None, clean_labels: bool) -> dict:
    names = [clean_label(c) if clean_labels else c for c in dataset.classes]
    return {"templates": resolve_templates(templates or dataset.template), "labels": names}


def evaluate_zero_shot(
    model,
    dataset: EvalDataset,
    templates: str | Sequence[str] | None = None,
    clean_labels: bool = True,
    reclap=None,
    reclap_prompts: int = 8,
    seed: int = 0,
    cache: EmbeddingCache | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, Any]:
    """Zero-shot classification of ``dataset`` with ``model``; returns the report dict (see ``clapkit.eval.report``).

    ``templates``: a template-set name, templates with ``{}``, or a list of them (default: the dataset's, as the
    papers used); ``reclap``: a describer (``clapkit.eval.reclap``) to also run ReCLAP prompt augmentation with
    ``reclap_prompts`` prompts sampled per class; the report then holds both results.
    """
    if not dataset.has_labels:
        raise DatasetError(f"{dataset.name} has no class labels: zero-shot classification needs a labelled dataset")
    dataset = dataset.labelled()
    cache = cache or EmbeddingCache(None, model_fingerprint(model))
    dataset, audio, unreadable = dataset_audio_embeddings(model, dataset, cache, batch_size, progress)
    settings = zero_shot_settings(dataset, templates, clean_labels)
    labels = [c.labels for c in dataset.clips]

    def run(prompts: list[list[str]]) -> ZeroShotResult:
        text = class_embeddings(lambda texts: embed_texts(model, texts, cache), prompts)
        result = score_zero_shot(zero_shot_probabilities(audio, text, model.logit_scale, dataset.multi_label),
                                 labels, dataset.classes, dataset.multi_label)
        result.prompts = prompts
        return result

    results = {"templates": run(format_prompts(settings["labels"], settings["templates"]))}
    protocol = ("multi-label: per-class sigmoid(logit_scale * cosine), macro mAP over classes with positives"
                if dataset.multi_label else
                "single-label: softmax(logit_scale * cosine) over classes; top-k accuracy; ties by class order")
    report_settings: dict[str, Any] = {**settings, "clean_labels": clean_labels, "protocol": protocol,
                                       "class_embedding": "mean of L2-normalised prompt embeddings, re-normalised"}
    if reclap is not None:
        from clapkit.eval.reclap import reclap_prompt_sets

        prompts = reclap_prompt_sets(settings["labels"], reclap, reclap_prompts, seed)
        results["reclap"] = run(prompts)
        report_settings["reclap"] = {"describer": reclap.name, "prompts_per_class": reclap_prompts, "seed": seed}
    return {
        "task": "zero_shot",
        "dataset": dataset.summary() | {"unreadable": len(unreadable), "unreadable_examples": dict(list(
            unreadable.items())[:10])},
        "settings": report_settings,
        "results": {name: _result_dict(r, dataset) for name, r in results.items()},
        "cache": cache.stats(),
    }


def _result_dict(result: ZeroShotResult, dataset: EvalDataset) -> dict[str, Any]:
    out: dict[str, Any] = {"metrics": result.metrics, "per_class": result.per_class,
                           "prompts": {c: p for c, p in zip(dataset.classes, result.prompts)}}
    if result.confusion is not None:
        out["confusion_matrix"] = {"classes": list(dataset.classes), "rows_true_columns_predicted":
                                   result.confusion.tolist()}
    return out
