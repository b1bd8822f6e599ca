"""Evaluation metrics as pure numpy functions: classification, multi-label and retrieval.

Conventions shared by every function here:
- scores are "higher is more similar"; a positive scale (the logit scale) never changes a ranking, so cosine
  similarities and logits give the same numbers;
- ranks are 0-based internally (rank 0 = retrieved first) and reported 1-based as ``mean_rank``/``median_rank``,
  exactly as LAION-CLAP's ``get_metrics`` does (``preds.mean() + 1``, ``floor(median(preds)) + 1``);
- ties are broken by index (the item listed first wins), so every number is a deterministic function of the scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rank_of_targets(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of ``targets[i]`` in row ``scores[i]`` (sorted by descending score, ties by index)."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if scores.ndim != 2 or targets.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (N, C) and targets (N,), got {scores.shape} and {targets.shape}")
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    higher = (scores > target_scores).sum(axis=1)
    tied_before = ((scores == target_scores) & (np.arange(scores.shape[1])[None, :] < targets[:, None])).sum(axis=1)
    return higher + tied_before


def top_k_accuracy(scores: np.ndarray, targets: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose target class is among the ``k`` highest scores."""
    return float(np.mean(rank_of_targets(scores, targets) < k))


def predictions(scores: np.ndarray) -> np.ndarray:
    """Arg-max class per row (first index on ties)."""
    return np.asarray(scores).argmax(axis=1)


def confusion_matrix(targets: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(targets, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class (correct / clips of that class); NaN for a class with no clips."""
    counts = confusion.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.diag(confusion) / np.maximum(counts, 1), np.nan)


def rank_statistics(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@k, mAP@10, mean and median rank from 0-based ranks of one relevant item per query (LAION's get_metrics)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {f"R@{k}": float(np.mean(ranks < k)) for k in ks}
    out["mAP@10"] = float(np.mean(np.where(ranks < 10, 1.0 / (ranks + 1.0), 0.0)))
    out["mean_rank"] = float(ranks.mean() + 1.0)
    out["median_rank"] = float(np.floor(np.median(ranks)) + 1.0)
    return out


# ---------------------------------------------------------------------------------------------------- multi-label
def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Average precision of one ranking: sum over thresholds of (recall step) x precision, as scikit-learn's
    ``average_precision_score`` (tied scores form one threshold). NaN when nothing is relevant."""
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant).astype(bool)
    positives = int(relevant.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_relevant = scores[order], relevant[order]
    true_positives = np.cumsum(sorted_relevant)
    # the last position of each run of equal scores is one threshold
    last_of_run = np.r_[np.nonzero(np.diff(sorted_scores))[0], len(sorted_scores) - 1]
    tp = true_positives[last_of_run].astype(np.float64)
    precision = tp / (last_of_run + 1.0)
    recall_steps = np.diff(np.r_[0.0, tp]) / positives
    return float(np.sum(recall_steps * precision))


def per_class_average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """AP of each class (column) over clips (rows); ``targets`` is multi-hot (N, C). NaN for classes without
    positives."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and multi-hot targets {targets.shape} differ in shape")
    return np.array([average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])])


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro mAP: the mean of per-class AP over classes with at least one positive (LAION's ``get_map``, which
    averages scikit-learn's per-class AP)."""
    ap = per_class_average_precision(scores, targets)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def multi_hot(labels: Sequence[Sequence[int]], num_classes: int) -> np.ndarray:
    """Label index lists -> multi-hot matrix (N, C) of 0/1."""
    out = np.zeros((len(labels), num_classes), dtype=np.int8)
    for row, indices in enumerate(labels):
        out[row, list(indices)] = 1
    return out


# ------------------------------------------------------------------------------------------------------ retrieval
def text_to_audio_ranks(similarity: np.ndarray, caption_audio: np.ndarray) -> np.ndarray:
    """0-based rank of each caption's own clip among all clips. ``similarity`` is (captions, clips)."""
    return rank_of_targets(similarity, caption_audio)


def audio_to_text_ranks(similarity: np.ndarray, caption_audio: np.ndarray) -> list[np.ndarray]:
    """For each clip, the 0-based ranks of its own captions among all captions, in caption order.
    ``similarity`` is (clips, captions); a clip without captions gets an empty array."""
    similarity = np.asarray(similarity, dtype=np.float64)
    caption_audio = np.asarray(caption_audio, dtype=np.int64)
    out = []
    for clip in range(similarity.shape[0]):
        own = np.nonzero(caption_audio == clip)[0]
        out.append(rank_of_targets(similarity[np.full(len(own), clip)], own) if len(own) else np.zeros(0, np.int64))
    return out


def retrieval_metrics(
    audio_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    caption_audio: Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Text-to-audio and audio-to-text retrieval with several captions per clip, counted as LAION-CLAP's
    ``evaluate_clotho_audiocaps`` counts them (generalised from exactly 5 to any number of captions per clip).

    - text_to_audio: every caption is a query; its clip's rank among all clips gives R@k, mAP@10 (1/rank within
      the top 10), mean and median rank (LAION: "do 5 times and average").
    - audio_to_text: every clip with captions is a query over all captions. R@k, mean and median rank use the BEST
      rank among the clip's captions. mAP@10 keeps the clip's captions ranked in the top 10 and sums
      ``i / (rank_i)`` over them, divided by the clip's number of captions. LAION's released code takes the kept
      ranks in caption order (``audio_to_text_mAP@10``, the number its papers report); XinhaoMei's original, and
      LAION's own docstring, sort them first (``audio_to_text_mAP@10_sorted``, a true AP: never above 1).
    ``caption_audio[j]`` is the index of caption j's clip.
    """
    audio = np.asarray(audio_embeddings, dtype=np.float64)
    text = np.asarray(text_embeddings, dtype=np.float64)
    caption_audio = np.asarray(caption_audio, dtype=np.int64)
    if text.shape[0] != caption_audio.shape[0]:
        raise ValueError(f"{text.shape[0]} caption embeddings but {caption_audio.shape[0]} caption_audio entries")
    if len(caption_audio) == 0 or caption_audio.min() < 0 or caption_audio.max() >= audio.shape[0]:
        raise ValueError("caption_audio must index clips (0 <= i < number of clips) and not be empty")
    similarity = text @ audio.T  # (captions, clips)
    text_to_audio = rank_statistics(text_to_audio_ranks(similarity, caption_audio), ks)
    metrics = {f"text_to_audio_{k}": v for k, v in text_to_audio.items()}

    per_clip = [r for r in audio_to_text_ranks(similarity.T, caption_audio) if len(r)]
    best = np.array([r.min() for r in per_clip])
    for key, value in rank_statistics(best, ks).items():
        if key != "mAP@10":
            metrics[f"audio_to_text_{key}"] = value
    metrics["audio_to_text_mAP@10"] = float(np.mean([_audio_to_text_ap10(r, sort=False) for r in per_clip]))
    metrics["audio_to_text_mAP@10_sorted"] = float(np.mean([_audio_to_text_ap10(r, sort=True) for r in per_clip]))
    metrics["num_clips"] = int(audio.shape[0])
    metrics["num_captions"] = int(text.shape[0])
    return metrics


def _audio_to_text_ap10(ranks: np.ndarray, sort: bool) -> float:
    kept = ranks[ranks < 10].astype(np.float64)
    if sort:
        kept = np.sort(kept)
    return float(np.sum(np.arange(1, len(kept) + 1) / (kept + 1.0)) / len(ranks))
