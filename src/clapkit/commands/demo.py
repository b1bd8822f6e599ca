"""``clapkit demo``: the README's main job: zero-shot classification and text search over the bundled example clips,
with clapkit's offline default model (``clapkit.load("default")``; no download)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
LABELS = ["piano", "violin", "drum kit", "trumpet", "church organ", "a person speaking", "dog barking",
          "explosion", "footsteps", "running water"]
QUERIES = ["a person says hello", "a drum beat", "a bowed string instrument"]


def example_files() -> list[Path]:
    files = sorted(EXAMPLES_DIR.glob("*.flac"))
    if not files:
        raise SystemExit(f"{EXAMPLES_DIR}: no example clips; reinstall clapkit from its repository")
    return files


def run_demo(args) -> int:
    import clapkit

    model = clapkit.load(args.model, weights=args.weights, tokenizer=args.tokenizer)
    files = [Path(p) for p in args.files] if args.files else example_files()
    names = [p.stem for p in files]
    labels = args.labels.split(",") if args.labels else LABELS
    audio = model.embed_audio([str(p) for p in files])
    probabilities = model.classify([str(p) for p in files], labels)
    width = max(len(n) for n in names) + 2
    print(f"model: {model.config.name} ({model.config.description})")
    print(f"\nzero-shot classification over {len(labels)} labels, prompt 'This is a sound of {{label}}.'")
    for name, row in zip(names, probabilities):
        top = np.argsort(-row)[:3]
        guesses = ", ".join(f"{labels[i]} {row[i]:.2f}" for i in top)
        print(f"  {name:{width}s} -> {guesses}")
    for query in args.query or QUERIES:
        scores = (audio @ model.embed_text([query]).T)[:, 0]
        order = np.argsort(-scores)[:3]
        hits = ", ".join(f"{names[i]} ({scores[i]:+.2f})" for i in order)
        print(f"\ntext search {query!r}: {hits}")
    if args.model == "default":
        from clapkit.default_model import quality_note

        note = quality_note()
        if note:
            print(f"\nhow good is it? {note}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="classify and search the bundled example clips with the default model")
    demo.add_argument("files", nargs="*", help="audio files to use instead of the bundled examples")
    demo.add_argument("--model", default="default", help="model name or checkpoint (default: clapkit's default)")
    demo.add_argument("--weights")
    demo.add_argument("--tokenizer")
    demo.add_argument("--labels", help="comma-separated labels for zero-shot classification")
    demo.add_argument("--query", action="append", help="a text query (repeatable)")
    demo.set_defaults(func=run_demo)
