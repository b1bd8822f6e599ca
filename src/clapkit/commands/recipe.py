"""``clapkit recipe default-model``: rebuild clapkit's default model offline (docs/default-model.md)."""

from __future__ import annotations

import argparse
import json
import logging


def run_default_model(args) -> int:
    from clapkit.recipes.build import run_recipe

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    numbers = run_recipe(args.corpus, args.work, max_steps=args.max_steps, max_minutes=args.max_minutes,
                         init=args.init, freeze_audio=not args.tune_audio, aisfx=args.aisfx, install=args.install,
                         force=args.force, seed=args.seed)
    print(json.dumps({k: numbers[k] for k in ("zero_shot", "retrieval", "retrieval_reclap", "training")},
                     indent=2, default=float))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    recipe = sub.add_parser("recipe", help="reproducible recipes (the default model)")
    recipes = recipe.add_subparsers(dest="recipe", required=True)
    default = recipes.add_parser(
        "default-model", help="data, captions, training, evaluation and export of the default model (CPU, offline)")
    default.add_argument("--corpus", default="/tmp/soundcorpus",
                         help="the sound corpus (scripts/data/build_sound_corpus.sh; default: %(default)s)")
    default.add_argument("--work", default="runs/default-model", help="work folder (default: %(default)s)")
    default.add_argument("--max-steps", type=int, default=1000, help="optimizer steps of batch 32 (default: 1000)")
    default.add_argument("--max-minutes", type=float, default=115.0,
                         help="safety stop: end training after this long even before --max-steps (default: 115; "
                         "a run cut short this way is not the reproducible recipe)")
    default.add_argument("--init", choices=("aisfx", "scratch"), default="aisfx",
                         help="audio tower start: aiSFX's pretrained CNN (default) or random")
    default.add_argument("--tune-audio", action="store_true",
                         help="fine-tune the audio tower too, at lr/10 (default: frozen; only heads and temperatures "
                         "train; --init scratch always trains it)")
    default.add_argument("--aisfx", help="aiSFX checkpoint.pth or wheel (default: the installed aisfx package)")
    default.add_argument("--install", action="store_true", help="copy the result into the installed package")
    default.add_argument("--force", action="store_true", help="redo every step (default: reuse finished ones)")
    default.add_argument("--seed", type=int, default=0)
    default.set_defaults(func=run_default_model)
