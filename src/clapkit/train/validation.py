"""Validation during training: text-to-audio and audio-to-text retrieval R@1/5/10 on a held-out set.

The set is prepared once (evaluation front end: deterministic crops and chunks; every caption of every clip) and kept
in memory, so validation costs only the forward passes; cap it with ``data.val_max_items``. Counting follows
``clapkit.eval.metrics.retrieval_metrics`` (LAION-CLAP's protocol, any number of captions per clip).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clapkit.audio.fusion import AudioBatch, prepare_batch
from clapkit.config import ModelConfig
from clapkit.train.batches import is_iterable, usable

log = logging.getLogger(__name__)

REPORTED = ("R@1", "R@5", "R@10", "mAP@10", "mean_rank")


@dataclass
class ValidationSet:
    audio_batches: list[AudioBatch]
    caption_batches: list[dict[str, torch.Tensor]]
    caption_audio: np.ndarray  # clip index of each caption
    num_clips: int
    skipped: int = 0


def _items(dataset, limit: int | None):
    if is_iterable(dataset):
        source = iter(dataset)
    else:
        source = (dataset[i] for i in range(len(dataset)))
    count = 0
    for item in source:
        if limit is not None and count >= limit:
            return
        count += 1
        yield item


def build_validation_set(dataset, model_config: ModelConfig, tokenizer, max_items: int | None,
                         batch_size: int) -> ValidationSet:
    """Read up to ``max_items`` items; unusable ones (no audio, no caption) are skipped and counted."""
    clips, captions, owners, skipped = [], [], [], 0
    for item in _items(dataset, max_items):
        if not usable(item):
            skipped += 1
            continue
        owners += [len(clips)] * len(item["captions"])
        captions += list(item["captions"])
        clips.append(np.asarray(item["waveform"], dtype=np.float32))
    if len(clips) < 2:
        raise ValueError(f"the validation set has {len(clips)} usable clips; retrieval needs at least 2")
    fusion = model_config.audio.enable_fusion
    audio_batches = [prepare_batch(clips[i : i + batch_size], model_config.frontend, fusion=fusion, train=False)
                     for i in range(0, len(clips), batch_size)]
    caption_batches = [tokenizer(captions[i : i + batch_size]) for i in range(0, len(captions), batch_size)]
    if skipped:
        log.warning("validation: skipped %d unusable items", skipped)
    return ValidationSet(audio_batches, caption_batches, np.asarray(owners, dtype=np.int64), len(clips), skipped)


@torch.no_grad()
def embed_validation_set(module, validation: ValidationSet, device: torch.device,
                         autocast: contextlib.AbstractContextManager | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(audio (clips, D), text (captions, D)) float32 numpy embeddings; the caller sets eval/train mode."""
    autocast = autocast or contextlib.nullcontext()
    audio, text = [], []
    with autocast:
        for batch in validation.audio_batches:
            audio.append(module.encode_audio(batch.features.to(device), batch.is_longer.to(device)).float().cpu())
        for tokens in validation.caption_batches:
            text.append(module.encode_text(tokens["input_ids"].to(device),
                                           tokens["attention_mask"].to(device)).float().cpu())
    return torch.cat(audio).numpy(), torch.cat(text).numpy()


def retrieval_scores(audio: np.ndarray, text: np.ndarray, caption_audio: np.ndarray) -> dict[str, Any]:
    """R@1/5/10, mAP@10 and mean rank both ways, plus chance R@1/R@10 of text-to-audio (k / number of clips)."""
    from clapkit.eval.metrics import retrieval_metrics

    numbers = retrieval_metrics(audio, text, caption_audio)
    out: dict[str, Any] = {}
    for direction in ("text_to_audio", "audio_to_text"):
        for name in REPORTED:
            out[f"{direction}_{name}"] = float(numbers[f"{direction}_{name}"])
    clips = audio.shape[0]
    out["chance_R@1"] = 1.0 / clips
    out["chance_R@10"] = min(10, clips) / clips
    out["num_clips"] = clips
    out["num_captions"] = int(text.shape[0])
    return out
