"""Linear probe: logistic regression (scikit-learn) on frozen audio embeddings, over the dataset's official folds.

Per round (``EvalDataset.probe_splits``): standardise features on the training clips, fit
``LogisticRegression(C, lbfgs)`` (multinomial; one-vs-rest for multi-label data), score the test clips. Single-label
datasets report accuracy per fold and its mean (ESC-50: 5-fold, UrbanSound8K: 10-fold cross-validation);
multi-label datasets report mAP (FSD50K: train on dev train+val, test on eval).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clapkit.eval import metrics as M
from clapkit.eval.cache import EmbeddingCache, dataset_audio_embeddings, model_fingerprint
from clapkit.eval.datasets import DatasetError, EvalDataset, ProbeSplit


def _classifier(C: float, max_iter: int, multi_label: bool):
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DatasetError("the linear probe needs scikit-learn: pip install 'clapkit[eval]'") from exc
    model = LogisticRegression(C=C, max_iter=max_iter)
    return make_pipeline(StandardScaler(), OneVsRestClassifier(model) if multi_label else model)


def probe_split(
    embeddings: np.ndarray,
    labels: list[tuple[int, ...]],
    train: np.ndarray,
    test: np.ndarray,
    num_classes: int,
    multi_label: bool = False,
    C: float = 1.0,
    max_iter: int = 1000,
) -> dict[str, float]:
    """Fit on ``embeddings[train]``, score ``embeddings[test]`` (boolean masks); accuracy or mAP."""
    x_train, x_test = embeddings[train], embeddings[test]
    classifier = _classifier(C, max_iter, multi_label)
    if multi_label:
        targets = M.multi_hot(labels, num_classes)
        seen = targets[train].any(axis=0)  # classes never positive in training cannot be learned: scored 0
        classifier.fit(x_train, targets[train][:, seen])
        scores = np.zeros((int(test.sum()), num_classes))
        scores[:, seen] = classifier.predict_proba(x_test)
        return {"mAP": M.mean_average_precision(scores, targets[test]), "train_clips": int(train.sum()),
                "test_clips": int(test.sum())}
    y = np.array([l[0] for l in labels], dtype=np.int64)
    if len(np.unique(y[train])) < 2:
        raise DatasetError("a linear-probe training fold holds fewer than 2 classes")
    classifier.fit(x_train, y[train])
    scores = np.full((int(test.sum()), num_classes), -np.inf)
    scores[:, classifier.classes_] = classifier.predict_proba(x_test)
    return {"accuracy": M.top_k_accuracy(scores, y[test], 1), "train_clips": int(train.sum()),
            "test_clips": int(test.sum())}


def linear_probe(
    embeddings: np.ndarray, dataset: EvalDataset, C: float = 1.0, max_iter: int = 1000
) -> dict[str, Any]:
    """Every probe round of ``dataset``; the headline is the mean over rounds."""
    if not dataset.probe_splits:
        raise DatasetError(f"{dataset.name} defines no linear-probe folds (for FSD50K load split 'all')")
    folds = np.array([c.fold for c in dataset.clips], dtype=object)
    labels = [c.labels for c in dataset.clips]
    rounds: dict[str, dict[str, float]] = {}
    for split in dataset.probe_splits:
        train, test = _masks(folds, split)
        if not train.any() or not test.any():
            continue
        rounds[split.name] = probe_split(embeddings, labels, train, test, len(dataset.classes), dataset.multi_label,
                                         C, max_iter)
    if not rounds:
        raise DatasetError(f"{dataset.name}: no probe round has both training and test clips "
                           f"(folds present: {sorted(set(folds))})")
    key = "mAP" if dataset.multi_label else "accuracy"
    values = np.array([r[key] for r in rounds.values()])
    return {key: float(values.mean()), f"{key}_std": float(values.std()), "rounds": rounds}


def _masks(folds: np.ndarray, split: ProbeSplit) -> tuple[np.ndarray, np.ndarray]:
    return np.isin(folds, split.train_folds), np.isin(folds, split.test_folds)


def evaluate_linear_probe(
    model, dataset: EvalDataset, C: float = 1.0, max_iter: int = 1000, cache: EmbeddingCache | None = None,
    batch_size: int = 8, progress: bool = False,
) -> dict[str, Any]:
    """Linear probe of ``model``'s audio embeddings on ``dataset``; returns the report dict."""
    if not dataset.has_labels:
        raise DatasetError(f"{dataset.name} has no class labels: the linear probe needs a labelled dataset")
    dataset = dataset.labelled()
    cache = cache or EmbeddingCache(None, model_fingerprint(model))
    dataset, audio, unreadable = dataset_audio_embeddings(model, dataset, cache, batch_size, progress)
    result = linear_probe(audio, dataset, C, max_iter)
    rounds = result.pop("rounds")
    return {
        "task": "linear_probe",
        "dataset": dataset.summary() | {"unreadable": len(unreadable),
                                        "unreadable_examples": dict(list(unreadable.items())[:10])},
        "settings": {"classifier": f"StandardScaler + LogisticRegression(C={C}, lbfgs, max_iter={max_iter})"
                     + (" one-vs-rest" if dataset.multi_label else " multinomial"),
                     "rounds": [{"name": s.name, "train_folds": list(s.train_folds), "test_folds": list(s.test_folds)}
                                for s in dataset.probe_splits]},
        "results": {"linear_probe": {"metrics": result, "per_round": rounds}},
        "cache": cache.stats(),
    }
