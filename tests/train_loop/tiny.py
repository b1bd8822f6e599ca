"""A tiny CLAP model and a generated captioned dataset for fast training tests (no files, no downloads)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.small_models import SMALL_BERT

SAMPLE_RATE = 16000
BASE_MODEL = "laion-htsat-tiny-bert"
FREQUENCIES = (220.0, 330.0, 440.0, 660.0, 880.0, 1320.0, 1760.0, 2640.0)


def tiny_model_overrides(dropout: float = 0.0, spec_augment: bool = False) -> dict[str, Any]:
    """HTSAT with a 64x64 spectrogram image and 16-wide patches, a 2-layer 32-wide BERT, a 32-d joint space, 1 s
    clips at 16 kHz: a training step takes a fraction of a second on one CPU core."""
    return {
        "frontend": {"sample_rate": SAMPLE_RATE, "clip_samples": SAMPLE_RATE, "n_fft": 512, "win_length": 512,
                     "hop_length": 160, "n_mels": 16, "f_max": 8000.0},
        "audio": {"spec_size": 64, "n_mels": 16, "htsat_embed_dim": 16, "embed_dim": 128, "depths": [1, 1, 1, 1],
                  "num_heads": [1, 2, 2, 4], "num_classes": 4, "spec_augment": spec_augment,
                  "drop_path_rate": dropout},
        "text": {"kind": "bert", "width": 32, "tokenizer": "bert",
                 "hf_config": {**SMALL_BERT, "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}},
        "joint_dim": 32,
    }


class ToneDataset:
    """Map-style: item i is a tone (with a little noise) whose caption names its pitch; lengths vary between
    ``min_seconds`` and ``max_seconds`` (above 1 s the training front end crops at random)."""

    def __init__(self, size: int = 16, sample_rate: int = SAMPLE_RATE, seed: int = 0, min_seconds: float = 0.5,
                 max_seconds: float = 1.0):
        rng = np.random.default_rng(seed)
        self.items = []
        for i in range(size):
            frequency = FREQUENCIES[i % len(FREQUENCIES)] * (1 + 0.01 * (i // len(FREQUENCIES)))
            seconds = rng.uniform(min_seconds, max_seconds)
            t = np.arange(int(seconds * sample_rate)) / sample_rate
            wave = 0.4 * np.sin(2 * np.pi * frequency * t) + 0.02 * rng.standard_normal(t.size)
            self.items.append({"id": f"tone{i:03d}", "waveform": wave.astype(np.float32),
                               "captions": [f"a steady tone at {frequency:.0f} hertz", f"a {frequency:.0f} hz beep"],
                               "keywords": ["tone"], "rewrites": []})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def make_dataset(split: str, sample_rate: int, seed: int, rank: int, world_size: int, size: int = 16,
                 max_seconds: float = 1.0, val_size: int = 8) -> ToneDataset:
    """``data.factory`` entry point (``tests.train_loop.tiny:make_dataset``)."""
    if split == "val":
        return ToneDataset(val_size, sample_rate, seed=1000 + seed, max_seconds=1.0)
    return ToneDataset(size, sample_rate, seed=seed, max_seconds=max_seconds)


def tiny_config_dict(output_dir: str, **changes: Any) -> dict[str, Any]:
    """A TrainConfig as a dict: the tiny model on the tone dataset, fp32 on CPU, no workers."""
    config = {
        "data": {"factory": "tests.train_loop.tiny:make_dataset", "factory_args": {"size": 16}, "num_workers": 0,
                 "val_batch_size": 8},
        "model": {"name": BASE_MODEL, "overrides": tiny_model_overrides()},
        "optim": {"lr": 1e-3, "warmup_steps": 2, "weight_decay": 0.01},
        "batch_size": 8, "max_steps": 4, "checkpoint_every": 2, "keep_last": 2, "eval_every": 2, "log_every": 1,
        "precision": "fp32", "device": "cpu", "seed": 3, "output_dir": output_dir,
    }
    for key, value in changes.items():
        node = config
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config
