"""How the default model is measured: only on clips the training never saw (``default_model.prepare_data``).

(a) zero-shot top-1 on the 14 held-out classes (14-way, chance 1/14), with the dataset's template ("This is a sound
    of {label}.") and with ReCLAP prompts (offline AudioSet-ontology describer: acoustic traits x scenes);
(b) text-to-audio R@1/R@10 over every held-out clip (unseen classes + held-out clips of seen classes), each clip's
    caption as the query; (c) the same with ReCLAP-style query augmentation: a query is the mean embedding of its
    caption and its offline rewrites.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

RETRIEVAL_REWRITES = 4


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def evaluate_default(model, data_dir: str | Path, batch_size: int = 16, seed: int = 0) -> dict[str, Any]:
    from clapkit.eval.cache import EmbeddingCache, dataset_audio_embeddings, embed_texts, model_fingerprint
    from clapkit.eval.datasets import load_dataset
    from clapkit.eval.metrics import retrieval_metrics
    from clapkit.eval.reclap import OntologyDescriber
    from clapkit.eval.retrieval import caption_pairs
    from clapkit.eval.zeroshot import evaluate_zero_shot
    from clapkit.train.captions import Rewriter

    data_dir = Path(data_dir)
    cache = EmbeddingCache(None, model_fingerprint(model))
    unseen = load_dataset("csv", data_dir / "heldout_classes.csv")
    zero_shot = evaluate_zero_shot(model, unseen, reclap=OntologyDescriber(), seed=seed, cache=cache,
                                   batch_size=batch_size)
    numbers: dict[str, Any] = {"zero_shot": {
        "classes": len(unseen.classes), "clips": len(unseen.clips), "chance": 1 / len(unseen.classes),
        "class_names": list(unseen.classes),
        "top1_template": zero_shot["results"]["templates"]["metrics"]["top1_accuracy"],
        "top1_reclap": zero_shot["results"]["reclap"]["metrics"]["top1_accuracy"],
        "per_class_template": zero_shot["results"]["templates"]["per_class"],
    }}
    everything = load_dataset("csv", data_dir / "heldout_all.csv")
    everything, audio, _ = dataset_audio_embeddings(model, everything, cache, batch_size)
    captions, owners = caption_pairs(everything)
    plain = embed_texts(model, captions, cache)
    rewrites = Rewriter(seed=seed).rewrite_many(captions, RETRIEVAL_REWRITES)
    flat = [text for group in rewrites for text in group]
    rewritten = embed_texts(model, flat, cache) if flat else np.zeros((0, plain.shape[1]), np.float32)
    augmented, start = [], 0
    for i, group in enumerate(rewrites):
        stack = np.concatenate([plain[i : i + 1], rewritten[start : start + len(group)]])
        augmented.append(_normalise(_normalise(stack).mean(axis=0)))
        start += len(group)
    for name, text in (("retrieval", plain), ("retrieval_reclap", np.stack(augmented))):
        metrics = retrieval_metrics(audio, text, owners)
        numbers[name] = {"clips": len(everything.clips), "queries": len(captions),
                         "r1": metrics["text_to_audio_R@1"], "r10": metrics["text_to_audio_R@10"],
                         "chance_r10": min(1.0, 10 / len(everything.clips))}
    return numbers


def write_numbers(numbers: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(numbers, indent=2, default=float) + "\n")
    return path


def summary_lines(numbers: dict[str, Any]) -> list[str]:
    z, r, rr = numbers["zero_shot"], numbers["retrieval"], numbers["retrieval_reclap"]
    return [
        f"zero-shot on {z['classes']} held-out classes ({z['clips']} clips, chance {z['chance']:.3f}): "
        f"top-1 {z['top1_template']:.3f} (template), {z['top1_reclap']:.3f} (ReCLAP prompts)",
        f"text-to-audio over {r['clips']} held-out clips: R@1 {r['r1']:.3f} R@10 {r['r10']:.3f}; with ReCLAP query "
        f"rewrites R@1 {rr['r1']:.3f} R@10 {rr['r10']:.3f} (chance R@10 {r['chance_r10']:.3f})",
    ]
