"""``clapkit demo``: the README's main job: zero-shot classification and text search over a few example clips.

Until the offline default model ships (it is trained by the default-model recipe), the demo runs the LAION HTSAT-tiny
architecture with a BERT text tower and RANDOM weights: the pipeline is real, the scores are meaningless.
"""

from __future__ import annotations

import argparse

import numpy as np

SAMPLE_RATE = 48000
LABELS = ["a high beep", "a low hum", "white noise", "clicks"]


def example_clips(sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Four generated 3-second clips (no files, no licences)."""
    t = np.arange(3 * sample_rate) / sample_rate
    rng = np.random.default_rng(0)
    clicks = np.zeros_like(t)
    clicks[:: sample_rate // 5] = 0.9
    return {
        "beep_2khz": 0.4 * np.sin(2 * np.pi * 2000 * t),
        "hum_60hz": 0.4 * np.sin(2 * np.pi * 60 * t) + 0.1 * np.sin(2 * np.pi * 120 * t),
        "white_noise": 0.2 * rng.standard_normal(t.size),
        "clicks_5hz": clicks,
    }


def run_demo(args) -> int:
    import torch

    import clapkit

    torch.manual_seed(0)
    if args.model == "random-demo":
        model = clapkit.load("laion-htsat-tiny-bert", weights="random")
        print("note: no trained default model yet; using laion-htsat-tiny-bert with RANDOM weights (scores are noise)")
    else:
        model = clapkit.load(args.model, weights=args.weights, tokenizer=args.tokenizer)
    clips = example_clips()
    names = list(clips)
    audio = model.embed_audio([clips[n].astype(np.float32) for n in names], sample_rate=SAMPLE_RATE)
    probs = model.classify([clips[n].astype(np.float32) for n in names], LABELS, sample_rate=SAMPLE_RATE)
    print(f"\nzero-shot classification ({model.config.name}, prompt 'This is a sound of {{}}.')")
    print(f"{'clip':14s} " + " ".join(f"{label:>12s}" for label in LABELS))
    for name, row in zip(names, probs):
        print(f"{name:14s} " + " ".join(f"{p:12.3f}" for p in row))
    query = args.query
    scores = (audio @ model.embed_text([query]).T)[:, 0]
    print(f"\ntext search: {query!r}")
    for rank, i in enumerate(np.argsort(-scores), 1):
        print(f"  {rank}. {names[i]:14s} cosine {scores[i]:+.3f}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="classify and search a few generated example clips")
    demo.add_argument("--model", default="random-demo", help="model name or checkpoint (default: the demo model)")
    demo.add_argument("--weights")
    demo.add_argument("--tokenizer")
    demo.add_argument("--query", default="a high-pitched beep")
    demo.set_defaults(func=run_demo)
