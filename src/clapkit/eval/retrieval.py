"""Audio-text retrieval with several captions per clip (Clotho, AudioCaps, any captioned manifest).

Counted exactly as LAION-CLAP's ``evaluate_clotho_audiocaps`` counts them; see ``metrics.retrieval_metrics`` and
``docs/evaluation.md`` for a worked example.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clapkit.eval.cache import EmbeddingCache, dataset_audio_embeddings, embed_texts, model_fingerprint
from clapkit.eval.datasets import DatasetError, EvalDataset
from clapkit.eval.metrics import retrieval_metrics

PROTOCOL = (
    "LAION-CLAP evaluate_clotho_audiocaps, any number of captions per clip: text_to_audio ranks each caption's clip "
    "among all clips (R@k, mAP@10 = mean 1/rank within top 10, mean/median rank); audio_to_text uses each clip's best "
    "caption rank for R@k and mean/median rank, and mAP@10 = sum_i i/rank_i over its captions in the top 10 divided by "
    "its caption count (caption order as LAION's code; '_sorted' = ranks sorted first); ties broken by index"
)


def caption_pairs(dataset: EvalDataset) -> tuple[list[str], np.ndarray]:
    """All captions, and for each the index of its clip."""
    captions, owners = [], []
    for i, clip in enumerate(dataset.clips):
        captions += list(clip.captions)
        owners += [i] * len(clip.captions)
    return captions, np.array(owners, dtype=np.int64)


def evaluate_retrieval(
    model,
    dataset: EvalDataset,
    cache: EmbeddingCache | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, Any]:
    """Text-to-audio and audio-to-text retrieval on ``dataset``; returns the report dict."""
    if not dataset.has_captions:
        raise DatasetError(f"{dataset.name} has no captions: retrieval needs a captioned dataset (clotho, audiocaps, "
                           f"or a csv manifest with a caption column)")
    cache = cache or EmbeddingCache(None, model_fingerprint(model))
    dataset, audio, unreadable = dataset_audio_embeddings(model, dataset, cache, batch_size, progress)
    captions, owners = caption_pairs(dataset)
    text = embed_texts(model, captions, cache)
    counts = np.bincount(owners, minlength=len(dataset.clips))
    numbers = retrieval_metrics(audio, text, owners)
    return {
        "task": "retrieval",
        "dataset": dataset.summary() | {"unreadable": len(unreadable),
                                        "unreadable_examples": dict(list(unreadable.items())[:10])},
        "settings": {"protocol": PROTOCOL, "captions_per_clip": {str(k): int(v) for k, v in
                                                               zip(*np.unique(counts, return_counts=True))},
                     "similarity": "cosine of L2-normalised embeddings (the logit scale does not change ranks)"},
        "results": {"retrieval": {"metrics": numbers}},
        "cache": cache.stats(),
    }
